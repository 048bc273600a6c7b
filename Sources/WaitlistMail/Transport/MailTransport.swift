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

/// One sequential sender (one SMTP connection, reused across messages).
public protocol MailSession: AnyObject {
    /// Delivers one message; returns only once the relay has accepted it (`250` to DATA) or the
    /// file is in place.
    ///
    /// - Parameter beforeEnd: called once, at the point of no return: for SMTP once the relay took
    ///   the envelope, just before the message's last bytes go out; for a file before it is moved
    ///   into place. Until it returns, the message cannot have arrived; when it returns `false` the
    ///   message is abandoned (a transient failure). The sender checks there that the message is
    ///   still its own and that what must be recorded first is.
    func send(_ mail: OutgoingMail, beforeEnd: () -> Bool) throws(DeliveryError)
    /// Delivers one message, as ``send(_:beforeEnd:)``, knowing that `following` is the next one the
    /// caller sends through this session: SMTP sends its envelope right after this message's end
    /// where the relay offers PIPELINING. Whatever happens, the next call must be for `following`,
    /// or ``close()``; nothing of `following` is accepted before its own call's end.
    func send(_ mail: OutgoingMail, following: OutgoingMail?, beforeEnd: () -> Bool) throws(DeliveryError)
    /// Ends the session (QUIT) and frees its resources.
    func close()
}

extension MailSession {
    /// Delivers one message with nothing to check before its end.
    public func send(_ mail: OutgoingMail) throws(DeliveryError) {
        try send(mail, beforeEnd: { true })
    }

    /// A session with nothing to do ahead sends each message alone.
    public func send(_ mail: OutgoingMail, following: OutgoingMail?, beforeEnd: () -> Bool) throws(DeliveryError) {
        try send(mail, beforeEnd: beforeEnd)
    }

    /// Renders `message` with ``MIMERenderer`` and delivers it, as `waitlist test-mail` does.
    public func send(_ message: MailMessage) throws(DeliveryError) {
        try send(OutgoingMail(message))
    }
}
