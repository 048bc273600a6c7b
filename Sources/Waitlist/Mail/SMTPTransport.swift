import CCurl
import Foundation

/// Delivers mail to an SMTP relay through libcurl.
///
/// Each session owns one libcurl easy handle, so consecutive messages share one connection (and one TLS
/// handshake and login) for as long as the relay keeps it open.
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

/// One sequential SMTP sender: a libcurl easy handle reused for every message, so libcurl keeps the connection
/// open between them; ``close()`` ends it with `QUIT`.
///
/// The session blocks while it talks to the relay, so the caller drives it from a thread of its own. It is
/// `@unchecked Sendable` because every use of the handle and its buffers happens with `lock` held: the session may
/// be handed to another thread, and calls from two threads at once wait for each other instead of racing.
final class SMTPSession: RenderedMailSession, @unchecked Sendable {
    private let configuration: SMTPConfiguration
    private let lock = NSLock()
    /// The easy handle; `nil` once closed.
    private var handle: UnsafeMutableRawPointer?
    /// libcurl writes its last error message here (`CURLOPT_ERRORBUFFER`); it lives as long as the handle.
    private let errorBuffer: UnsafeMutablePointer<CChar>

    init(configuration: SMTPConfiguration, ehloName: String) throws(DeliveryError) {
        guard CurlLibrary.isInitialized else { throw .transient("libcurl could not be initialised.") }
        guard let handle = curl_easy_init() else { throw .transient("libcurl could not create a handle.") }
        self.configuration = configuration
        self.handle = handle
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        let code = Self.configure(handle, for: configuration, ehloName: ehloName, errorBuffer: errorBuffer)
        guard code == CURLE_OK else {  // deinit frees the handle
            throw .transient("libcurl refused the SMTP settings: \(String(cString: curl_easy_strerror(code))).")
        }
    }

    deinit {
        close()
        errorBuffer.deallocate()
    }

    func send(_ message: MailMessage) throws(DeliveryError) {
        try send(rendered: MIMERenderer.render(message), from: message.from.address, to: message.to.address)
    }

    /// Delivers bytes that are already a complete RFC 5322 message with CRLF line endings; libcurl does the
    /// dot-stuffing. ``send(_:)`` renders and calls this, and so does the outbox sender with bytes from a
    /// message template; tests call it to control the exact bytes.
    func send(rendered message: [UInt8], from sender: String, to recipient: String) throws(DeliveryError) {
        try send(rendered: message, from: sender, to: recipient, beforeEnd: { true })
    }

    /// ``send(rendered:from:to:)``, calling `beforeEnd` from libcurl's read callback just before it hands
    /// libcurl the message's last bytes: libcurl sends the end of DATA only after them. When `beforeEnd`
    /// returns `false` the callback aborts the transfer, so the relay never accepts the message.
    func send(rendered message: [UInt8], from sender: String, to recipient: String, beforeEnd: @escaping () -> Bool)
        throws(DeliveryError)
    {
        lock.lock()
        defer { lock.unlock() }
        guard let handle else { throw .transient("The SMTP session was already closed.") }
        guard Self.isSafeEnvelopeAddress(sender) else {
            throw .transient("The sender address cannot be used in an SMTP envelope.")
        }
        guard Self.isSafeEnvelopeAddress(recipient) else {
            throw .permanent("The recipient address cannot be used in an SMTP envelope.")
        }

        let exchange = MessageExchange(message: message, beforeEnd: beforeEnd)
        let context = Unmanaged.passUnretained(exchange).toOpaque()
        guard let recipients = curl_slist_append(nil, "<\(recipient)>") else {
            throw .transient("libcurl could not allocate the recipient list.")
        }
        defer { curl_slist_free_all(recipients) }

        var code = waitlist_curl_setopt_string(handle, CURLOPT_MAIL_FROM, "<\(sender)>")
        code = code == CURLE_OK ? waitlist_curl_setopt_slist(handle, CURLOPT_MAIL_RCPT, recipients) : code
        code = code == CURLE_OK ? waitlist_curl_setopt_long(handle, CURLOPT_INFILESIZE, exchange.message.count) : code
        code = code == CURLE_OK ? waitlist_curl_setopt_pointer(handle, CURLOPT_READDATA, context) : code
        code = code == CURLE_OK ? waitlist_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, context) : code
        if code == CURLE_OK {
            errorBuffer[0] = 0
            code = withExtendedLifetime(exchange) { curl_easy_perform(handle) }
        }
        // The exchange and the recipient list die with this call; libcurl must not keep pointers to them.
        _ = waitlist_curl_setopt_pointer(handle, CURLOPT_READDATA, nil)
        _ = waitlist_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, nil)
        _ = waitlist_curl_setopt_slist(handle, CURLOPT_MAIL_RCPT, nil)

        guard code != CURLE_OK else { return }
        if exchange.isAbandoned { throw .transient("The message was abandoned before its end; the relay did not accept it.") }
        var responseCode = 0
        _ = waitlist_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &responseCode)
        let failure = SMTPFailure(
            code: code,
            errorText: String(cString: errorBuffer),
            responseCode: responseCode,
            lastErrorReply: exchange.lastErrorReply,
            messageWasUploaded: exchange.isUploadComplete,
            relay: "\(configuration.hostForURL):\(configuration.port)"
        )
        throw failure.deliveryError
    }

    func close() {
        lock.lock()
        defer { lock.unlock() }
        guard let handle else { return }
        curl_easy_cleanup(handle)
        self.handle = nil
    }

    // MARK: - Setup

    /// Sets the options that stay the same for every message of the session; returns the first failure.
    private static func configure(
        _ handle: UnsafeMutableRawPointer,
        for configuration: SMTPConfiguration,
        ehloName: String,
        errorBuffer: UnsafeMutablePointer<CChar>
    ) -> CURLcode {
        // libcurl takes the EHLO name from the URL's path.
        var pathAllowed = CharacterSet.urlPathAllowed
        pathAllowed.remove("/")
        let encodedEHLOName = ehloName.addingPercentEncoding(withAllowedCharacters: pathAllowed) ?? "localhost"
        let scheme = configuration.usesImplicitTLS ? "smtps" : "smtp"
        let url = "\(scheme)://\(configuration.hostForURL):\(configuration.port)/\(encodedEHLOName)"
        let useSSL =
            switch configuration.tlsPolicy {
            case .startTLSWhenOffered: CURLUSESSL_TRY
            case .startTLSRequired, .implicitTLS: CURLUSESSL_ALL
            }

        var settings: [() -> CURLcode] = [
            { waitlist_curl_setopt_string(handle, CURLOPT_URL, url) },
            { waitlist_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1) },
            { waitlist_curl_setopt_long(handle, CURLOPT_UPLOAD, 1) },
            { waitlist_curl_setopt_long(handle, CURLOPT_USE_SSL, Int(useSSL.rawValue)) },
            { waitlist_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, milliseconds(configuration.connectTimeout)) },
            { waitlist_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, milliseconds(configuration.messageTimeout)) },
            { waitlist_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer) },
            { waitlist_curl_setopt_read_function(handle, readMessage) },
            { waitlist_curl_setopt_header_function(handle, recordReply) },
        ]
        if let credentials = configuration.credentials {
            settings.append { waitlist_curl_setopt_string(handle, CURLOPT_USERNAME, credentials.user) }
            settings.append { waitlist_curl_setopt_string(handle, CURLOPT_PASSWORD, credentials.password) }
        }
        if let caFile = configuration.caFile {
            settings.append { waitlist_curl_setopt_string(handle, CURLOPT_CAINFO, caFile) }
        }
        for setting in settings {
            let code = setting()
            if code != CURLE_OK { return code }
        }
        return CURLE_OK
    }

    private static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }

    /// Whether an address can go into `MAIL FROM:<...>` / `RCPT TO:<...>` without changing the command.
    private static func isSafeEnvelopeAddress(_ address: String) -> Bool {
        !address.isEmpty && !address.unicodeScalars.contains { $0.value < 0x20 || $0 == "<" || $0 == ">" || $0 == "\u{7F}" }
    }
}

// MARK: - libcurl callbacks

/// What one `curl_easy_perform` shares with the C callbacks: the message being uploaded and the relay's replies.
///
/// The callbacks receive it as an unretained pointer (`CURLOPT_READDATA`, `CURLOPT_HEADERDATA`); ``SMTPSession``
/// keeps it alive for the duration of the transfer and clears the pointers afterwards.
private final class MessageExchange {
    /// The rendered message.
    let message: [UInt8]
    /// How many bytes of `message` libcurl has taken.
    var bytesUploaded = 0
    /// The last reply line from the relay with a 4xx or 5xx code, e.g. `550 5.1.1 no such user`.
    var lastErrorReply: String?
    /// Called before the last bytes are handed over, then dropped.
    var beforeEnd: (() -> Bool)?
    /// Whether `beforeEnd` said no and the transfer was aborted.
    var isAbandoned = false

    init(message: [UInt8], beforeEnd: @escaping () -> Bool) {
        self.message = message
        self.beforeEnd = beforeEnd
    }

    var isUploadComplete: Bool { bytesUploaded == message.count }
}

/// `CURLOPT_READFUNCTION`: copies the next part of the message into libcurl's buffer; 0 means the end.
private let readMessage: waitlist_curl_read_callback = { buffer, size, count, context in
    guard let buffer, let context else { return 0 }
    let exchange = Unmanaged<MessageExchange>.fromOpaque(context).takeUnretainedValue()
    let length = min(size * count, exchange.message.count - exchange.bytesUploaded)
    if exchange.bytesUploaded + length == exchange.message.count, let beforeEnd = exchange.beforeEnd {
        exchange.beforeEnd = nil
        guard beforeEnd() else {
            exchange.isAbandoned = true
            return Int(CURL_READFUNC_ABORT)
        }
    }
    guard length > 0 else { return 0 }
    exchange.message.withUnsafeBytes { bytes in
        UnsafeMutableRawPointer(buffer).copyMemory(from: bytes.baseAddress! + exchange.bytesUploaded, byteCount: length)
    }
    exchange.bytesUploaded += length
    return length
}

/// `CURLOPT_HEADERFUNCTION`: for SMTP libcurl passes each reply line of the relay here; keeps the last failing one.
private let recordReply: waitlist_curl_header_callback = { buffer, size, count, context in
    let length = size * count
    guard let buffer, let context else { return length }
    let exchange = Unmanaged<MessageExchange>.fromOpaque(context).takeUnretainedValue()
    let bytes = UnsafeRawBufferPointer(start: buffer, count: length)
    if let first = bytes.first, first == UInt8(ascii: "4") || first == UInt8(ascii: "5") {
        exchange.lastErrorReply = SMTPFailure.printable(bytes)
    }
    return length
}

// MARK: - Failures

/// A failed transfer as libcurl reported it, and the ``DeliveryError`` it means for the outbox.
///
/// What libcurl 7.88.1 reports, measured against aiosmtpd (code, error buffer, `CURLINFO_RESPONSE_CODE`):
///
/// | the relay's answer                | code                               | error buffer              | response |
/// | --------------------------------- | ---------------------------------- | ------------------------- | -------- |
/// | 5xx / 4xx to `RCPT TO`            | `CURLE_SEND_ERROR` (55)            | `RCPT failed: 550`        | 550      |
/// | 5xx to `MAIL FROM`                | `CURLE_SEND_ERROR` (55)            | `MAIL failed: 553`        | 553      |
/// | 5xx to the end of DATA            | `CURLE_WEIRD_SERVER_REPLY` (8)     | empty                     | 554      |
/// | 535 to `AUTH`                     | `CURLE_LOGIN_DENIED` (67)          | empty                     | 535      |
/// | no STARTTLS but one is required   | `CURLE_USE_SSL_FAILED` (64)        | `STARTTLS not supported.` | 250      |
/// | untrusted certificate             | `CURLE_PEER_FAILED_VERIFICATION` (60) | `SSL certificate problem: ...` | 220 |
/// | nothing listening                 | `CURLE_COULDNT_CONNECT` (7)        | `Failed to connect ...`   | 0        |
/// | no answer within the timeout      | `CURLE_OPERATION_TIMEDOUT` (28)    | `Operation timed out ...` | 0        |
///
/// libcurl drops the connection after a failure in the middle of a transaction (RCPT, MAIL, AUTH, timeouts) and
/// keeps it after a refusal at the end of DATA, where the transaction is over; either way the session's next
/// message goes through, which the live tests check for every kind of refusal.
struct SMTPFailure {
    var code: CURLcode
    /// libcurl's error buffer, e.g. `RCPT failed: 550`.
    var errorText: String
    /// `CURLINFO_RESPONSE_CODE`: the relay's last reply code, 0 when it never answered.
    var responseCode: Int
    /// The relay's last 4xx/5xx reply line, when there was one.
    var lastErrorReply: String?
    /// Whether libcurl had read the whole message, i.e. the failure came at or after the end of DATA.
    var messageWasUploaded: Bool
    /// `host:port`, for the reason.
    var relay: String

    /// Only a 5xx about this recipient or this message is permanent; everything else is worth retrying.
    var deliveryError: DeliveryError {
        let reply = lastErrorReply ?? (responseCode > 0 ? String(responseCode) : "no reply")
        let detail = errorText.isEmpty ? String(cString: curl_easy_strerror(code)) : errorText
        let isPermanentReply = (500...599).contains(responseCode)
        switch code {
        case CURLE_SEND_ERROR where errorText.hasPrefix("RCPT failed"):
            return isPermanentReply
                ? .permanent("The relay \(relay) refused the recipient: \(reply).")
                : .transient("The relay \(relay) deferred the recipient: \(reply).")
        case CURLE_SEND_ERROR where errorText.hasPrefix("MAIL failed"):
            return .transient("The relay \(relay) refused the sender: \(reply).")
        case CURLE_WEIRD_SERVER_REPLY where messageWasUploaded && responseCode >= 400:
            return isPermanentReply
                ? .permanent("The relay \(relay) refused the message: \(reply).")
                : .transient("The relay \(relay) deferred the message: \(reply).")
        case CURLE_LOGIN_DENIED:
            return .transient("The relay \(relay) refused the login: \(reply).")
        case CURLE_USE_SSL_FAILED:
            return .transient("The relay \(relay) offers no STARTTLS, which is required when a password is configured.")
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST:
            return .transient("Could not connect to the relay \(relay): \(detail).")
        case CURLE_OPERATION_TIMEDOUT:
            return .transient("The relay \(relay) did not answer in time: \(detail).")
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE:
            return .transient("TLS with the relay \(relay) failed: \(detail).")
        default:
            let replyNote = lastErrorReply.map { " (last reply: \($0))" } ?? ""
            return .transient("Sending through the relay \(relay) failed: \(detail)\(replyNote).")
        }
    }

    /// A reply line as readable text: ASCII without control characters, at most 200 characters.
    static func printable(_ bytes: UnsafeRawBufferPointer) -> String {
        let text = String(decoding: bytes, as: UTF8.self)
            .unicodeScalars.filter { $0.isASCII && $0.value >= 0x20 && $0.value != 0x7F }
        return String(String.UnicodeScalarView(text.prefix(200)))
    }
}
