import Foundation

/// How a delivery attempt went wrong, as far as the outbox needs to know.
///
/// Only what the relay says about the connection or about us (``transient``, ``senderRefused``)
/// bears on the other messages; what it says about one recipient (``deferred``, ``permanent``)
/// is that recipient's alone.
public enum DeliveryError: Error, Sendable, Equatable {
    /// Worth trying again later, and a reason to slow down: the relay was unreachable, timed out,
    /// said `421`, or answered `4xx` to `MAIL FROM` or the message.
    case transient(String)
    /// The relay deferred this recipient (`4xx` to `RCPT TO`): tried again later; the others go on.
    case deferred(String)
    /// The relay refused this recipient or this message for good (`5xx`); never retried. `policy`
    /// when the refusal gives a policy reason (an enhanced status `5.7.x`): such refusals of every
    /// recipient, across several domains, are what a relay refusing us looks like.
    case permanent(String, policy: Bool = false)
    /// The relay refuses us, not the recipient: it refused the login or the sender (`5xx` to
    /// `MAIL FROM`). Nobody is bounced; sending stops (or, in the server, pauses).
    case senderRefused(String)

    /// The relay's explanation, for the outbox's `last_error` column and the logs.
    public var reason: String {
        switch self {
        case .transient(let reason), .deferred(let reason), .permanent(let reason, _), .senderRefused(let reason): reason
        }
    }
}

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
