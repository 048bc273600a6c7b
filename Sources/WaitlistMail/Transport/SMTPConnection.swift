import CCurl
import Foundation
import WaitlistCore

/// One connection to the relay: set up by libcurl, then used for SMTP transactions one after another.
final class SMTPConnection {
    /// The easy handle that owns the connection.
    let handle: UnsafeMutableRawPointer
    /// libcurl writes its last error message here (`CURLOPT_ERRORBUFFER`); it lives as long as the handle.
    private let errorBuffer: UnsafeMutablePointer<CChar>
    /// What the relay said while libcurl set the connection up; libcurl holds a pointer to it.
    let greeting: Greeting
    /// The connection's socket, to wait on.
    let socket: Int32
    /// How long one message may take.
    let messageTimeout: Duration
    /// `host:port`, for the reasons.
    let relay: String
    /// Bytes received and not yet read as replies.
    var received: [UInt8] = []
    /// Where `curl_easy_recv` writes.
    var scratch = [UInt8](repeating: 0, count: 16 * 1024)
    /// `false` once the connection is in a state no next message can start from (mid-DATA, timed out,
    /// closed by the relay): it must be dropped.
    var isUsable = true
    /// How many replies the current transaction has had: 0 while the relay has answered nothing of it.
    var transactionReplies = 0
    /// The envelope of the next message, sent after the end of the last one and not answered yet.
    var envelopeAhead: Envelope?
    private var isClosed = false

    /// Connects, says `EHLO`, starts TLS and logs in as `configuration` asks; throws what went wrong.
    init(configuration: SMTPConfiguration, ehloName: String) throws(DeliveryError) {
        guard let handle = curl_easy_init() else { throw .transient("libcurl could not create a handle.") }
        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        let greeting = Greeting()
        let relay = "\(configuration.hostForURL):\(configuration.port)"
        var code = Self.configure(handle, for: configuration, ehloName: ehloName, errorBuffer: errorBuffer, greeting: greeting)
        if code == CURLE_OK {
            code = withExtendedLifetime(greeting) { curl_easy_perform(handle) }
        }
        var socket: curl_socket_t = CURL_SOCKET_BAD
        if code == CURLE_OK {
            code = waitlist_curl_getinfo_socket(handle, CURLINFO_ACTIVESOCKET, &socket)
        }
        guard code == CURLE_OK, socket != CURL_SOCKET_BAD else {
            var responseCode = 0
            _ = waitlist_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &responseCode)
            let failure = SMTPFailure(
                code: code == CURLE_OK ? CURLE_COULDNT_CONNECT : code, errorText: String(cString: errorBuffer),
                responseCode: responseCode, lastErrorReply: greeting.lastErrorReply, relay: relay)
            curl_easy_cleanup(handle)
            errorBuffer.deallocate()
            throw failure.deliveryError
        }
        self.handle = handle
        self.errorBuffer = errorBuffer
        self.greeting = greeting
        self.socket = socket
        self.messageTimeout = configuration.messageTimeout
        self.relay = relay
    }

    deinit {
        close()
        errorBuffer.deallocate()
    }

    /// Ends the connection: `QUIT` when it is usable and no envelope went out ahead; otherwise it is
    /// cut, so that the relay cannot take anything sent so far as a message. Safe to call twice.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        if !isUsable || envelopeAhead != nil {
            // libcurl's cleanup says QUIT and waits for the answer: make that fail at once.
            shutdown(socket, Int32(SHUT_RDWR))
        }
        withExtendedLifetime(greeting) { curl_easy_cleanup(handle) }
    }

    /// Whether the relay has neither closed the connection nor said anything unasked (a `421`, say),
    /// on a connection with no envelope sent ahead (its replies may be in already).
    func isStillOpen() -> Bool {
        guard isUsable, envelopeAhead == nil, received.isEmpty else { return false }
        var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, 0) > 0 else { return true }
        // Readable: the end of the connection, a reply nobody asked for, or only TLS housekeeping.
        var count = 0
        let code = scratch.withUnsafeMutableBytes { curl_easy_recv(handle, $0.baseAddress, $0.count, &count) }
        guard code == CURLE_AGAIN else {
            isUsable = false  // so that closing it cuts it instead of waiting for an answer to QUIT
            return false
        }
        return true
    }

    // MARK: - Setup

    /// Sets the options of the connection; returns the first failure.
    private static func configure(
        _ handle: UnsafeMutableRawPointer,
        for configuration: SMTPConfiguration,
        ehloName: String,
        errorBuffer: UnsafeMutablePointer<CChar>,
        greeting: Greeting
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
        let context = Unmanaged.passUnretained(greeting).toOpaque()

        var settings: [() -> CURLcode] = [
            { waitlist_curl_setopt_string(handle, CURLOPT_URL, url) },
            { waitlist_curl_setopt_long(handle, CURLOPT_CONNECT_ONLY, 1) },
            { waitlist_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1) },
            { waitlist_curl_setopt_long(handle, CURLOPT_USE_SSL, Int(useSSL.rawValue)) },
            { waitlist_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, milliseconds(configuration.connectTimeout)) },
            // Bounds the whole set-up: connection, TLS, EHLO and login.
            { waitlist_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, milliseconds(configuration.messageTimeout)) },
            { waitlist_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer) },
            { waitlist_curl_setopt_header_function(handle, recordReply) },
            { waitlist_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, context) },
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
}

// MARK: - libcurl callbacks

/// What the relay said while libcurl set the connection up: the extensions of its last `EHLO` answer,
/// and its last refusal.
///
/// The header callback receives it as an unretained pointer (`CURLOPT_HEADERDATA`); ``SMTPConnection``
/// keeps it as long as the handle.
final class Greeting {
    var offersPipelining = false
    var offersSMTPUTF8 = false
    var offersSize = false
    /// The last reply line from the relay with a 4xx or 5xx code, e.g. `535 5.7.8 authentication failed`.
    var lastErrorReply: String?
}

/// `CURLOPT_HEADERFUNCTION`: for SMTP libcurl passes each reply line of the relay here. A `220` (the
/// greeting, or the go-ahead for STARTTLS, after which the client says EHLO again) starts the list of
/// extensions afresh; `250` lines name them.
private let recordReply: waitlist_curl_header_callback = { buffer, size, count, context in
    let length = size * count
    guard let buffer, let context else { return length }
    let greeting = Unmanaged<Greeting>.fromOpaque(context).takeUnretainedValue()
    let line = UnsafeRawBufferPointer(start: buffer, count: length)
    let code = line.prefix(3)
    if code.elementsEqual("220".utf8) {
        greeting.offersPipelining = false
        greeting.offersSMTPUTF8 = false
        greeting.offersSize = false
    } else if code.elementsEqual("250".utf8), line.count > 4 {
        let keyword = line.dropFirst(4).prefix { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }
        let name = String(decoding: keyword, as: UTF8.self).uppercased()
        switch name {
        case "PIPELINING": greeting.offersPipelining = true
        case "SMTPUTF8": greeting.offersSMTPUTF8 = true
        case "SIZE": greeting.offersSize = true
        default: break
        }
    } else if let first = line.first, first == UInt8(ascii: "4") || first == UInt8(ascii: "5") {
        greeting.lastErrorReply = SMTPFailure.printable(line)
    }
    return length
}

// MARK: - Failures

/// A connection libcurl could not set up, as libcurl reported it, and the ``DeliveryError`` it means.
///
/// What libcurl 7.88.1 reports, measured against aiosmtpd (code, error buffer, `CURLINFO_RESPONSE_CODE`):
///
/// | the relay's answer                | code                               | error buffer              | response |
/// | --------------------------------- | ---------------------------------- | ------------------------- | -------- |
/// | 535 to `AUTH`                     | `CURLE_LOGIN_DENIED` (67)          | empty                     | 535      |
/// | no STARTTLS but one is required   | `CURLE_USE_SSL_FAILED` (64)        | `STARTTLS not supported.` | 250      |
/// | untrusted certificate             | `CURLE_PEER_FAILED_VERIFICATION` (60) | `SSL certificate problem: ...` | 220 |
/// | nothing listening                 | `CURLE_COULDNT_CONNECT` (7)        | `Failed to connect ...`   | 0        |
/// | no answer within the timeout      | `CURLE_OPERATION_TIMEDOUT` (28)    | `Operation timed out ...` | 0        |
///
/// Refusals within a transaction (`MAIL FROM`, `RCPT TO`, the end of DATA) are read by
/// ``SMTPConnection`` itself; a refusal leaves the connection usable for the next message, which the live
/// tests check for every kind.
struct SMTPFailure {
    var code: CURLcode
    /// libcurl's error buffer, e.g. `Failed to connect to 127.0.0.1 port 25`.
    var errorText: String
    /// `CURLINFO_RESPONSE_CODE`: the relay's last reply code, 0 when it never answered.
    var responseCode: Int
    /// The relay's last 4xx/5xx reply line, when there was one.
    var lastErrorReply: String?
    /// `host:port`, for the reason.
    var relay: String

    /// Every failure to set up a connection is worth retrying.
    var deliveryError: DeliveryError {
        let reply = lastErrorReply ?? (responseCode > 0 ? String(responseCode) : "no reply")
        let detail = errorText.isEmpty ? String(cString: curl_easy_strerror(code)) : errorText
        switch code {
        case CURLE_LOGIN_DENIED:
            return .senderRefused("The relay \(relay) refused the login: \(reply).")
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
            return .transient("Connecting to the relay \(relay) failed: \(detail)\(replyNote).")
        }
    }

    /// A reply line as readable text: ASCII without control characters, at most 200 characters.
    static func printable(_ bytes: UnsafeRawBufferPointer) -> String {
        let text = String(decoding: bytes, as: UTF8.self)
            .unicodeScalars.filter { $0.isASCII && $0.value >= 0x20 && $0.value != 0x7F }
        return String(String.UnicodeScalarView(text.prefix(200)))
    }

}
