import Foundation
import WaitlistCore

/// One message on its way: the bytes of a complete RFC 5322 message with CRLF line ends, and the
/// envelope it goes in.
public struct OutgoingMail: Sendable {
    public var bytes: [UInt8]
    /// `MAIL FROM`.
    public var sender: String
    /// `RCPT TO`.
    public var recipient: String

    public init(bytes: [UInt8], sender: String, recipient: String) {
        self.bytes = bytes
        self.sender = sender
        self.recipient = recipient
    }

    /// A message rendered by ``MIMERenderer``, from its `From` to its `To` address.
    public init(_ message: MailMessage) {
        self.init(bytes: MIMERenderer.render(message), sender: message.from.address, recipient: message.to.address)
    }
}

/// Something that delivers mail: SMTP through libcurl, or `.eml` files on disk.
///
/// A session is used by one lane at a time; it may keep a connection open between messages, so a
/// lane asks for one session and sends all its messages through it.
public protocol MailTransport: Sendable {
    /// Opens a session; the caller sends through it sequentially and then closes it.
    func makeSession() throws(DeliveryError) -> any MailSession
}

/// One sequential sender (one SMTP connection, reused across messages), in two phases a message:
/// ``begin(_:following:)`` takes it up to its point of no return, and ``finish()`` (the relay
/// accepts it) or ``abandon()`` (it never arrives) decides. Between the two the caller checks what
/// must hold before the message may arrive: that it is still the sender's own to send.
public protocol MailSession: AnyObject {
    /// Takes `mail` up to its point of no return: for SMTP the envelope (answered by the relay)
    /// and the body up to its last bytes; for a file, the file written beside its place. Until
    /// ``finish()`` the message cannot have arrived. When it throws, the message failed and
    /// neither ``finish()`` nor ``abandon()`` follows.
    ///
    /// - Parameter following: the message the caller sends next through this session, if any:
    ///   SMTP sends its envelope right after this message's end where the relay offers
    ///   PIPELINING. Whatever happens, the next ``begin(_:following:)`` must be for `following`,
    ///   or the session is closed; nothing of `following` is accepted before its own end.
    func begin(_ mail: OutgoingMail, following: OutgoingMail?) throws(DeliveryError)
    /// Ends the message begun; returns only once the relay has accepted it (`250` to the end of
    /// DATA) or the file is in place.
    func finish() throws(DeliveryError)
    /// Drops the message begun without its end, so that it never arrives: SMTP cuts the connection
    /// (an envelope sent ahead goes with it), a file is removed. The next message needs a new
    /// connection, which the session opens.
    func abandon()
    /// Ends the session (QUIT) and frees its resources.
    func close()
}

extension MailSession {
    /// Delivers one message with nothing to check before its end.
    public func send(_ mail: OutgoingMail) throws(DeliveryError) {
        try begin(mail, following: nil)
        try finish()
    }

    /// Renders `message` with ``MIMERenderer`` and delivers it, as `waitlist test-mail` does.
    public func send(_ message: MailMessage) throws(DeliveryError) {
        try send(OutgoingMail(message))
    }
}
