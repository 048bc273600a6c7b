import Foundation

/// How a delivery attempt went wrong, as far as the outbox needs to know.
public enum DeliveryError: Error, Sendable, Equatable {
    /// Worth trying again later: the relay was unreachable, timed out, or answered 4xx.
    case transient(String)
    /// The relay refused this recipient or this message for good (5xx); never retried.
    case permanent(String)

    /// The relay's explanation, for the outbox's `last_error` column and the logs.
    public var reason: String {
        switch self {
        case .transient(let reason), .permanent(let reason): reason
        }
    }
}

/// Something that delivers rendered messages: SMTP through libcurl, or `.eml` files on disk.
///
/// A session is used by one task at a time; it may keep a connection open between messages, so
/// a worker asks for one session and sends all its messages through it.
public protocol MailTransport: Sendable {
    /// Opens a session; the caller sends through it sequentially and then closes it.
    func makeSession() throws(DeliveryError) -> any MailSession
}

/// One sequential sender (one SMTP connection, reused across messages).
public protocol MailSession: AnyObject {
    /// Delivers one message; returns only once the relay has accepted it (`250` to DATA).
    func send(_ message: MailMessage) throws(DeliveryError)
    /// Ends the session (QUIT) and frees its resources.
    func close()
}

/// A session that also takes messages already rendered to bytes, which spares the sender making a
/// ``MailMessage`` for every recipient of an announcement (``MailComposer/renderedMessage(for:now:)``).
///
/// ``SMTPTransport``'s sessions take them; the file transport and test doubles, which look into
/// each message, take ``MailMessage`` only.
public protocol RenderedMailSession: MailSession {
    /// Delivers the bytes of a complete RFC 5322 message with CRLF line ends, from and to the
    /// envelope addresses given; returns only once the relay has accepted it.
    ///
    /// - Parameter beforeEnd: called once, if the relay takes the envelope, before the message's
    ///   last bytes go out: until it returns the relay cannot have accepted the message, and when
    ///   it returns `false` the message is abandoned (a transient failure). The sender waits
    ///   there for what must be recorded first.
    func send(rendered message: [UInt8], from sender: String, to recipient: String, beforeEnd: @escaping () -> Bool)
        throws(DeliveryError)
}
