import CCurl
import Foundation

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
/// commands go out together and the message in one write: two round trips a message where
/// `curl_easy_perform` takes four, and a fraction of its work per message (bench/README.md).
///
/// The session blocks while it talks to the relay, so the caller drives it from a thread of its own. It is
/// `@unchecked Sendable` because every use of the connection happens with `lock` held: the session may be
/// handed to another thread, and calls from two threads at once wait for each other instead of racing.
final class SMTPSession: RenderedMailSession, @unchecked Sendable {
    private let configuration: SMTPConfiguration
    private let ehloName: String
    private let lock = NSLock()
    /// The open connection; `nil` before the first message and after a failure that left it unusable.
    private var connection: SMTPConnection?
    private var isClosed = false

    init(configuration: SMTPConfiguration, ehloName: String) throws(DeliveryError) {
        guard CurlLibrary.isInitialized else { throw .transient("libcurl could not be initialised.") }
        self.configuration = configuration
        self.ehloName = ehloName
    }

    deinit {
        close()
    }

    func send(_ message: MailMessage) throws(DeliveryError) {
        try send(rendered: MIMERenderer.render(message), from: message.from.address, to: message.to.address)
    }

    /// Delivers bytes that are already a complete RFC 5322 message with CRLF line endings; the session does
    /// the dot-stuffing. ``send(_:)`` renders and calls this, and so does the outbox sender with bytes from a
    /// message template; tests call it to control the exact bytes.
    func send(rendered message: [UInt8], from sender: String, to recipient: String) throws(DeliveryError) {
        try send(rendered: message, from: sender, to: recipient, beforeEnd: { true })
    }

    /// ``send(rendered:from:to:)``, calling `beforeEnd` once the relay has taken the envelope, just before
    /// the message's last bytes (its last 64 KiB, with the end of DATA) go out. When `beforeEnd` returns
    /// `false` the connection is dropped without the end of DATA, so the relay never accepts the message.
    func send(rendered message: [UInt8], from sender: String, to recipient: String, beforeEnd: @escaping () -> Bool)
        throws(DeliveryError)
    {
        lock.lock()
        defer { lock.unlock() }
        guard !isClosed else { throw .transient("The SMTP session was already closed.") }
        guard Self.isSafeEnvelopeAddress(sender) else {
            throw .transient("The sender address cannot be used in an SMTP envelope.")
        }
        guard Self.isSafeEnvelopeAddress(recipient) else {
            throw .permanent("The recipient address cannot be used in an SMTP envelope.")
        }
        // A relay may drop a connection that stayed idle, or say it is closing (421): start afresh then.
        if let open = connection, !open.isStillOpen() {
            open.close()
            connection = nil
        }
        let connection: SMTPConnection
        if let open = self.connection {
            connection = open
        } else {
            connection = try SMTPConnection(configuration: configuration, ehloName: ehloName)
            self.connection = connection
        }
        do throws(DeliveryError) {
            try connection.deliver(message, from: sender, to: recipient, beforeEnd: beforeEnd)
        } catch {
            if !connection.isUsable {
                connection.close()
                self.connection = nil
            }
            throw error
        }
    }

    func close() {
        lock.lock()
        defer { lock.unlock() }
        isClosed = true
        connection?.close()
        connection = nil
    }

    /// Whether an address can go into `MAIL FROM:<...>` / `RCPT TO:<...>` without changing the command.
    private static func isSafeEnvelopeAddress(_ address: String) -> Bool {
        !address.isEmpty && !address.unicodeScalars.contains { $0.value < 0x20 || $0 == "<" || $0 == ">" || $0 == "\u{7F}" }
    }
}

/// One connection to the relay: set up by libcurl, then used for SMTP transactions one after another.
final class SMTPConnection {
    /// The easy handle that owns the connection.
    private let handle: UnsafeMutableRawPointer
    /// libcurl writes its last error message here (`CURLOPT_ERRORBUFFER`); it lives as long as the handle.
    private let errorBuffer: UnsafeMutablePointer<CChar>
    /// What the relay said while libcurl set the connection up; libcurl holds a pointer to it.
    private let greeting: Greeting
    /// The connection's socket, to wait on.
    private let socket: Int32
    /// How long one message may take.
    private let messageTimeout: Duration
    /// `host:port`, for the reasons.
    private let relay: String
    /// Bytes received and not yet read as replies.
    private var received: [UInt8] = []
    /// Where `curl_easy_recv` writes.
    private var scratch = [UInt8](repeating: 0, count: 16 * 1024)
    /// `false` once the connection is in a state no next message can start from (mid-DATA, timed out,
    /// closed by the relay): it must be dropped.
    private(set) var isUsable = true
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

    /// Ends the connection: `QUIT` when it is usable; otherwise it is cut, so that the relay cannot take
    /// anything sent so far as a message. Safe to call twice.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        if !isUsable {
            // libcurl's cleanup says QUIT and waits for the answer: make that fail at once.
            shutdown(socket, Int32(SHUT_RDWR))
        }
        withExtendedLifetime(greeting) { curl_easy_cleanup(handle) }
    }

    /// Whether the relay has neither closed the connection nor said anything unasked (a `421`, say).
    func isStillOpen() -> Bool {
        guard isUsable, received.isEmpty else { return false }
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

    // MARK: - One message

    /// Runs one SMTP transaction: the envelope, then the dot-stuffed message; returns once the relay has
    /// answered the end of DATA with `250`.
    func deliver(_ message: [UInt8], from sender: String, to recipient: String, beforeEnd: () -> Bool)
        throws(DeliveryError)
    {
        let deadline = ContinuousClock.now + messageTimeout
        var mailFrom = "MAIL FROM:<\(sender)>"
        if greeting.offersSize { mailFrom += " SIZE=\(message.count)" }
        if greeting.offersSMTPUTF8 && !(sender.utf8.allSatisfy { $0 < 0x80 } && recipient.utf8.allSatisfy { $0 < 0x80 }) {
            mailFrom += " SMTPUTF8"
        }
        let commands = [mailFrom, "RCPT TO:<\(recipient)>", "DATA"]
        var replies: [Reply] = []
        if greeting.offersPipelining {
            try write(Array(commands.joined(separator: "\r\n").utf8 + [0x0D, 0x0A])[...], until: deadline)
            for _ in commands { replies.append(try readReply(until: deadline)) }
        } else {
            for command in commands {
                try write(Array((command + "\r\n").utf8)[...], until: deadline)
                let reply = try readReply(until: deadline)
                replies.append(reply)
                if !reply.isPositive { break }
            }
        }
        if replies.contains(where: { $0.code == 421 }) { isUsable = false }  // the relay is closing the connection
        let dataTaken = replies.count == 3 && replies[2].code == 354
        if replies[0].code / 100 != 2 {
            if dataTaken { isUsable = false }  // it waits for a message that will not come
            throw .transient("The relay \(relay) refused the sender: \(replies[0].line).")
        }
        if replies[1].code / 100 != 2 {
            if dataTaken { isUsable = false } else { try reset(until: deadline) }
            throw replies[1].code / 100 == 5
                ? .permanent("The relay \(relay) refused the recipient: \(replies[1].line).")
                : .transient("The relay \(relay) deferred the recipient: \(replies[1].line).")
        }
        guard dataTaken else {
            try reset(until: deadline)
            throw .transient("The relay \(relay) did not take the message: \(replies[2].line).")
        }

        let data = Self.dotStuffed(message)
        let endStart = max(0, data.count - Self.lastPart)
        isUsable = false  // until the relay has answered the end of DATA
        try write(data[..<endStart], until: deadline)
        guard beforeEnd() else { throw .transient("The message was abandoned before its end; the relay did not accept it.") }
        try write(data[endStart...], until: deadline)
        let reply = try readReply(until: deadline)
        isUsable = reply.code != 421
        switch reply.code / 100 {
        case 2: return
        case 5: throw .permanent("The relay \(relay) refused the message: \(reply.line).")
        default: throw .transient("The relay \(relay) deferred the message: \(reply.line).")
        }
    }

    /// Ends a transaction that will not carry a message (`RSET`), so the next can start; a connection
    /// whose relay does not agree is dropped.
    private func reset(until deadline: ContinuousClock.Instant) throws(DeliveryError) {
        guard isUsable else { return }
        try write(Array("RSET\r\n".utf8)[...], until: deadline)
        if try readReply(until: deadline).code / 100 != 2 { isUsable = false }
    }

    /// How much of the message, at most, goes out after `beforeEnd`: all of a usual one, in one write.
    static let lastPart = 64 * 1024

    /// `message` as DATA carries it (RFC 5321 §4.5.2): a dot doubled at the start of every line, and the
    /// end-of-data line after it.
    static func dotStuffed(_ message: [UInt8]) -> [UInt8] {
        let dot = UInt8(ascii: "."), cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n")
        var data: [UInt8] = []
        data.reserveCapacity(message.count + 64)
        message.withUnsafeBufferPointer { bytes in
            guard let start = bytes.baseAddress else { return }
            var copiedUpTo = 0
            var index = 0
            // memchr: a sender stuffs every message, and a generic search costs several times more.
            while index < bytes.count, let match = memchr(start + index, Int32(dot), bytes.count - index) {
                let found = UnsafeRawPointer(match).assumingMemoryBound(to: UInt8.self) - start
                if found == 0 || (found >= 2 && bytes[found - 1] == lf && bytes[found - 2] == cr) {
                    data.append(contentsOf: bytes[copiedUpTo...found])
                    copiedUpTo = found  // the dot goes out twice
                }
                index = found + 1
            }
            data.append(contentsOf: bytes[copiedUpTo...])
        }
        if !(data.count >= 2 && data[data.count - 2] == cr && data[data.count - 1] == lf) { data += [cr, lf] }
        data += [dot, cr, lf]
        return data
    }

    // MARK: - Reading and writing

    /// One reply of the relay: its code and, for a refusal, its last line.
    struct Reply {
        var code: Int
        /// The last line of a 4xx or 5xx reply; empty for the others, which nobody reads.
        var refusal: [UInt8]
        /// 2xx or 3xx.
        var isPositive: Bool { (200...399).contains(code) }
        /// The reply as readable text, for reasons: the last line of a refusal, else the code.
        var line: String { refusal.isEmpty ? String(code) : refusal.withUnsafeBytes { SMTPFailure.printable($0) } }
    }

    private func write(_ bytes: ArraySlice<UInt8>, until deadline: ContinuousClock.Instant) throws(DeliveryError) {
        var offset = bytes.startIndex
        while offset < bytes.endIndex {
            var count = 0
            let code = bytes.withUnsafeBytes { buffer in
                curl_easy_send(handle, buffer.baseAddress! + (offset - bytes.startIndex), bytes.endIndex - offset, &count)
            }
            if code == CURLE_OK {
                offset += count
            } else if code == CURLE_AGAIN {
                try wait(for: POLLOUT, until: deadline)
            } else {
                throw failed(code)
            }
        }
    }

    /// The next complete reply, reading from the connection as needed.
    private func readReply(until deadline: ContinuousClock.Instant) throws(DeliveryError) -> Reply {
        while true {
            if let reply = try takeReply() { return reply }
            var count = 0
            let code = scratch.withUnsafeMutableBytes { curl_easy_recv(handle, $0.baseAddress, $0.count, &count) }
            if code == CURLE_OK {
                guard count > 0 else {
                    isUsable = false
                    throw .transient("The relay \(relay) closed the connection.")
                }
                received.append(contentsOf: scratch[..<count])
            } else if code == CURLE_AGAIN {
                try wait(for: POLLIN, until: deadline)
            } else {
                throw failed(code)
            }
        }
    }

    /// Takes a whole reply (`250-…` lines up to `250 …`) off the front of `received`, if one is there.
    private func takeReply() throws(DeliveryError) -> Reply? {
        var lineStart = 0
        while let newline = received[lineStart...].firstIndex(of: UInt8(ascii: "\n")) {
            let line = received[lineStart..<newline]
            let digits = line.prefix(3)
            guard digits.count == 3, digits.allSatisfy({ (0x30...0x39).contains($0) }) else {
                isUsable = false
                let text = line.withUnsafeBytes { SMTPFailure.printable($0) }
                throw .transient("The relay \(relay) answered something that is not SMTP: \(text).")
            }
            if line.dropFirst(3).first != UInt8(ascii: "-") {
                let code = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
                let reply = Reply(code: code, refusal: code >= 400 ? Array(line) : [])
                received.removeSubrange(...newline)
                return reply
            }
            lineStart = newline + 1
        }
        if received.count > 64 * 1024 {
            isUsable = false
            throw .transient("The relay \(relay) sent a reply longer than 64 KiB.")
        }
        return nil
    }

    /// Waits until the connection can be read or written (`events`), or throws once `deadline` has passed.
    private func wait(for events: Int32, until deadline: ContinuousClock.Instant) throws(DeliveryError) {
        let left = deadline - ContinuousClock.now
        guard left > .zero else {
            isUsable = false
            throw .transient("The relay \(relay) did not answer in time: no reply within \(messageTimeout.components.seconds) s.")
        }
        let (seconds, attoseconds) = left.components
        let milliseconds = Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
        var descriptor = pollfd(fd: socket, events: Int16(events), revents: 0)
        if poll(&descriptor, 1, milliseconds) < 0 && errno != EINTR {
            isUsable = false
            throw .transient("Waiting for the relay \(relay) failed: \(String(cString: strerror(errno))).")
        }
    }

    /// A failed `curl_easy_send` or `curl_easy_recv`, which leaves the connection unusable.
    private func failed(_ code: CURLcode) -> DeliveryError {
        isUsable = false
        return .transient("Sending through the relay \(relay) failed: \(String(cString: curl_easy_strerror(code))).")
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
private final class Greeting {
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
