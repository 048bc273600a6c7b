import CCurl
import Foundation
import WaitlistCore

/// Delivers mail to an SMTP relay through libcurl.
///
/// Each session keeps one connection that libcurl set up, so consecutive messages share one TLS handshake
/// and login for as long as the relay keeps the connection open.
public struct SMTPTransport: MailTransport {
    public let configuration: SMTPConfiguration
    /// The name this host gives in `EHLO`, e.g. the host of `WAITLIST_BASE_URL`.
    public let ehloName: String

    public init(configuration: SMTPConfiguration, ehloName: String) {
        self.configuration = configuration
        self.ehloName = ehloName
    }

    public func makeSession() throws(DeliveryError) -> any MailSession {
        try SMTPSession(configuration: configuration, ehloName: ehloName)
    }
}

/// libcurl's process-wide setup, which must run once before the first easy handle is made.
///
/// Swift runs a static stored property's initializer exactly once, thread-safely, on first use. Sessions set
/// `CURLOPT_NOSIGNAL` (required when several threads use libcurl), which stops libcurl from ignoring `SIGPIPE`
/// around its own writes; as its documentation advises, the process then ignores `SIGPIPE` itself, so a relay
/// that hangs up mid-write gives an error instead of killing the process.
private enum CurlLibrary {
    static let isInitialized: Bool = {
        signal(SIGPIPE, SIG_IGN)
        return curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK
    }()
}

/// One sequential SMTP sender: one connection, kept open between messages; ``close()`` ends it with
/// `QUIT`.
///
/// libcurl makes the connection: TCP, TLS (`smtps://`) or STARTTLS, `EHLO` and the login, then hands it
/// over (`CURLOPT_CONNECT_ONLY`); each message's transaction (`MAIL FROM`, `RCPT TO`, `DATA`, the
/// dot-stuffed message) goes through libcurl's `curl_easy_send` and `curl_easy_recv` on that connection,
/// and ``SMTPConnection`` reads the replies. Where the relay offers PIPELINING (RFC 2920) the three
/// commands go out together and the message in one write, and the next message's envelope right
/// after the end of the message before it: one round trip a message where `curl_easy_perform` takes
/// four, and a fraction of its work per message (bench/README.md).
///
/// The session blocks while it talks to the relay, so the caller drives it from a thread of its own. It is
/// `@unchecked Sendable` because every use of the connection happens with `lock` held: the session may be
/// handed to another thread, and calls from two threads at once wait for each other instead of racing.
final class SMTPSession: MailSession, @unchecked Sendable {
    private let configuration: SMTPConfiguration
    private let ehloName: String
    private let lock = NSLock()
    /// The open connection; `nil` before the first message and after a failure that left it unusable.
    private var connection: SMTPConnection?
    private var isClosed = false
    /// The message begun and not yet finished or abandoned.
    private var begun: SMTPConnection.Begun?

    init(configuration: SMTPConfiguration, ehloName: String) throws(DeliveryError) {
        guard CurlLibrary.isInitialized else { throw .transient("libcurl could not be initialised.") }
        self.configuration = configuration
        self.ehloName = ehloName
    }

    deinit {
        close()
    }

    /// Begins a message whose bytes are already a complete RFC 5322 message with CRLF line endings;
    /// the session does the dot-stuffing. Once the relay has taken the envelope, the body goes out
    /// up to its last bytes (``SMTPConnection/begin(_:from:to:following:)``); ``finish()`` sends them.
    ///
    /// `following`, the message the caller sends next through this session, has its envelope sent
    /// right after this message's end where the relay offers PIPELINING.
    func begin(_ mail: OutgoingMail, following: OutgoingMail?) throws(DeliveryError) {
        let (message, sender, recipient) = (mail.bytes, mail.sender, mail.recipient)
        lock.lock()
        defer { lock.unlock() }
        guard !isClosed else { throw .transient("The SMTP session was already closed.") }
        guard begun == nil else { throw .transient("The SMTP session has a message begun and not finished.") }
        guard Self.isSafeEnvelopeAddress(sender) else {
            throw .transient("The sender address cannot be used in an SMTP envelope.")
        }
        guard Self.isSafeEnvelopeAddress(recipient) else {
            throw .permanent("The recipient address cannot be used in an SMTP envelope.")
        }
        let next = following.flatMap { following in
            Self.isSafeEnvelopeAddress(following.sender) && Self.isSafeEnvelopeAddress(following.recipient)
                ? SMTPConnection.Envelope(sender: following.sender, recipient: following.recipient, size: following.bytes.count) : nil
        }
        // A relay may drop a connection that stayed idle, or say it is closing (421): start afresh then.
        // (One with this message's envelope sent ahead has its replies waiting: they tell.)
        if let open = connection, open.envelopeAhead == nil, !open.isStillOpen() {
            open.close()
            connection = nil
        }
        if let reused = self.connection {
            do throws(DeliveryError) {
                begun = try begin(message, from: sender, to: recipient, following: next, over: reused)
                return
            } catch {
                // A kept connection the relay closed just now (its hang-up still on the way) fails before
                // any reply: nothing of this message reached the relay, so it goes once more, on a new one.
                guard !reused.isUsable, reused.transactionReplies == 0 else { throw error }
            }
        }
        let fresh = try SMTPConnection(configuration: configuration, ehloName: ehloName)
        connection = fresh
        begun = try begin(message, from: sender, to: recipient, following: next, over: fresh)
    }

    /// Sends the end of the message begun and returns once the relay accepted it.
    func finish() throws(DeliveryError) {
        lock.lock()
        defer { lock.unlock() }
        guard let begun, let connection else { throw .transient("The SMTP session has no message begun.") }
        self.begun = nil
        try run(over: connection) { () throws(DeliveryError) in try connection.finish(begun) }
    }

    /// Cuts the connection without the end of DATA, so that the relay never accepts the message.
    func abandon() {
        lock.lock()
        defer { lock.unlock() }
        begun = nil
        connection?.close()
        connection = nil
    }

    /// Begins one transaction over `connection`.
    private func begin(
        _ message: [UInt8], from sender: String, to recipient: String, following: SMTPConnection.Envelope?,
        over connection: SMTPConnection
    ) throws(DeliveryError) -> SMTPConnection.Begun {
        try run(over: connection) { () throws(DeliveryError) in
            try connection.begin(message, from: sender, to: recipient, following: following)
        }
    }

    /// Runs one phase of a transaction over `connection`; a connection the failure left unusable is dropped.
    private func run<T>(over connection: SMTPConnection, _ phase: () throws(DeliveryError) -> T) throws(DeliveryError) -> T {
        do throws(DeliveryError) {
            return try phase()
        } catch {
            if !connection.isUsable {
                connection.close()
                if self.connection === connection { self.connection = nil }
            }
            throw error
        }
    }

    func close() {
        lock.lock()
        defer { lock.unlock() }
        isClosed = true
        begun = nil
        connection?.close()
        connection = nil
    }

    /// Whether an address can go into `MAIL FROM:<...>` / `RCPT TO:<...>` without changing the command.
    private static func isSafeEnvelopeAddress(_ address: String) -> Bool {
        !address.isEmpty && !address.unicodeScalars.contains { $0.value < 0x20 || $0 == "<" || $0 == ">" || $0 == "\u{7F}" }
    }
}
