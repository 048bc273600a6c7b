import Foundation
import Glibc
import NIOConcurrencyHelpers
import Testing

/// A running `Tests/support/smtp_server.py` (aiosmtpd) on a free port, for live SMTP tests.
///
/// Each test starts its own with ``start(_:)`` and ends it with ``stop()`` (`defer { server.stop() }`); `deinit`
/// stops it too. The server also exits by itself when this process dies, because its stdin is a pipe from here.
final class SMTPTestServer {
    /// What the server offers and demands.
    struct Options {
        /// A login the server requires before `MAIL FROM`.
        var credentials: (user: String, password: String)?
        /// Offer AUTH on a connection that is not encrypted (aiosmtpd's `auth_require_tls=False`).
        var offersAuthWithoutTLS = false
        /// Offer STARTTLS with a self-signed certificate for `127.0.0.1`, made at start; trust ``certificateFile``.
        var offersStartTLS = false
        /// Refuse every command but EHLO, NOOP and QUIT until STARTTLS.
        var requiresStartTLS = false
        /// Accept connections but never say a word, to test timeouts.
        var staysSilent = false
        /// Refuse every recipient with `554`, as a relay that refuses us does.
        var refusesAllRecipients = false
        /// Offer PIPELINING, as the relays in use do; without it the client waits for each reply.
        var offersPipelining = true
        /// Hang up after this many messages on one connection, right after the last one's `250`.
        var hangsUpAfter: Int?
        /// Listen on this port (0: a free one).
        var port = 0
        /// Hold every message after the first this many at the end of DATA, unanswered, until ``release()``.
        var holdsAfter: Int?
        /// After this many messages, answer `421` to every `MAIL FROM` for ``spellSeconds``.
        var spellAfter: Int?
        var spellSeconds = 10.0
    }

    /// One message the server accepted: its envelope, its connection, and its DATA with dot-stuffing undone.
    struct ReceivedMessage: Decodable {
        var mailFrom: String
        var recipients: [String]
        /// The `MAIL FROM` parameters, e.g. `SIZE=1234`, `SMTPUTF8`.
        var mailOptions: [String]
        /// The client's `address:port`; equal for messages that came over one connection.
        var peer: String
        var tls: Bool
        var authenticated: Bool
        /// Whether `RCPT TO` had arrived with `MAIL FROM`, before its answer (RFC 2920 pipelining).
        var pipelined: Bool
        /// Whether the next message's `MAIL FROM` had arrived with this one's end of DATA, before its answer.
        var nextEnvelopeAhead: Bool
        var data: [UInt8] = []

        enum CodingKeys: String, CodingKey {
            case mailFrom = "mail_from"
            case recipients = "rcpt_tos"
            case mailOptions = "mail_options"
            case nextEnvelopeAhead = "next_envelope_ahead"
            case peer, tls, authenticated, pipelined
        }
    }

    /// One AUTH command the server received, whether or not it succeeded.
    struct AuthAttempt: Decodable {
        var login: String?
        var success: Bool
        var tls: Bool
    }

    /// Why the server could not be started.
    struct StartError: Error, CustomStringConvertible {
        var description: String
    }

    let port: Int
    /// Where the server writes accepted messages.
    let maildir: URL
    /// The PEM certificate the server presents for STARTTLS, when ``Options/offersStartTLS`` is set.
    let certificateFile: String?
    private let directory: URL
    private let process: Process
    private let stdinPipe: Pipe
    private var isStopped = false

    /// A port nothing listens on right now, for a relay that is down (and may come up there later).
    static func freePort() throws -> Int {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw StartError(description: "socket() failed") }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(socket, $0, length) == 0 && getsockname(socket, $0, &length) == 0
            }
        }
        guard bound else { throw StartError(description: "bind() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// `smtp://127.0.0.1:<port>`.
    var url: String { "smtp://127.0.0.1:\(port)" }

    /// `smtp://user:password@127.0.0.1:<port>` with both parts percent-encoded.
    func url(user: String, password: String) -> String {
        let allowed = CharacterSet.alphanumerics
        let encode = { (text: String) in text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text }
        return "smtp://\(encode(user)):\(encode(password))@127.0.0.1:\(port)"
    }

    private init(
        port: Int, maildir: URL, certificateFile: String?, directory: URL, process: Process, stdinPipe: Pipe
    ) {
        self.port = port
        self.maildir = maildir
        self.certificateFile = certificateFile
        self.directory = directory
        self.process = process
        self.stdinPipe = stdinPipe
    }

    deinit {
        stop()
    }

    /// Starts `smtp_server.py` on a free port and waits (up to 20 s) until it listens.
    ///
    /// Throws a ``StartError`` that says what is missing when python3 or aiosmtpd is not installed.
    static func start(_ options: Options = Options()) async throws -> SMTPTestServer {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("waitlist-smtp-\(UUID().uuidString)")
        let maildir = directory.appendingPathComponent("maildir")
        try FileManager.default.createDirectory(at: maildir, withIntermediateDirectories: true)

        var arguments = ["python3", scriptPath, "--port", String(options.port), "--maildir", maildir.path]
        if let credentials = options.credentials {
            arguments += ["--auth", "\(credentials.user):\(credentials.password)"]
        }
        if options.offersAuthWithoutTLS { arguments.append("--auth-without-tls") }
        var certificateFile: String?
        if options.offersStartTLS {
            let (certificate, key) = try makeSelfSignedCertificate(in: directory)
            arguments += ["--starttls", certificate, key]
            certificateFile = certificate
        }
        if options.requiresStartTLS { arguments.append("--require-starttls") }
        if options.staysSilent { arguments.append("--silent") }
        if options.refusesAllRecipients { arguments.append("--refuse-all") }
        if options.offersPipelining { arguments.append("--pipelining") }
        if let hangsUpAfter = options.hangsUpAfter { arguments += ["--close-after", String(hangsUpAfter)] }
        if let holdsAfter = options.holdsAfter { arguments += ["--hold-after", String(holdsAfter)] }
        if let spellAfter = options.spellAfter {
            arguments += ["--spell-after", String(spellAfter), "--spell-seconds", String(options.spellSeconds)]
        }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let stdinPipe = Pipe()
        let stdoutPipe = Pipe()
        let stderrFile = directory.appendingPathComponent("stderr.txt")
        _ = FileManager.default.createFile(atPath: stderrFile.path, contents: nil)
        process.standardInput = stdinPipe
        process.standardOutput = stdoutPipe
        process.standardError = try FileHandle(forWritingTo: stderrFile)
        try process.run()

        let readyLine = await readFirstLine(of: stdoutPipe.fileHandleForReading, killingAfter: 20, process: process)
        guard let readyLine, readyLine.hasPrefix("READY "), let port = Int(readyLine.dropFirst("READY ".count)) else {
            process.terminate()
            process.waitUntilExit()
            let stderr = ((try? String(contentsOf: stderrFile, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            try? FileManager.default.removeItem(at: directory)
            throw StartError(description: explainStartFailure(status: process.terminationStatus, stderr: stderr))
        }
        return SMTPTestServer(
            port: port, maildir: maildir, certificateFile: certificateFile, directory: directory, process: process,
            stdinPipe: stdinPipe
        )
    }

    /// How many messages were accepted so far (cheaper than reading them).
    func receivedCount() -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: maildir.path)) ?? []).filter { $0.hasSuffix(".json") }.count
    }

    /// Every message accepted so far, in the order they arrived.
    func receivedMessages() throws -> [ReceivedMessage] {
        let names = try FileManager.default.contentsOfDirectory(atPath: maildir.path)
        let numbers = names.compactMap { $0.hasSuffix(".json") ? Int($0.dropLast(".json".count)) : nil }.sorted()
        return try numbers.map { number in
            let envelope = try Data(contentsOf: maildir.appendingPathComponent("\(number).json"))
            var message = try JSONDecoder().decode(ReceivedMessage.self, from: envelope)
            message.data = Array(try Data(contentsOf: maildir.appendingPathComponent("\(number).eml")))
            return message
        }
    }

    /// Waits until the server holds a message (see ``Options/holdsAfter``), up to `timeout`.
    ///
    /// It blocks its thread: call it inside ``onOwnThread(_:)``, with what must follow at once.
    func waitUntilHolding(timeout: Duration = .seconds(120)) -> Bool {
        waitForMarker("held", timeout: timeout)
    }

    /// Waits until the server's 421 spell has begun (see ``Options/spellAfter``), up to `timeout`.
    func waitUntilSpell(timeout: Duration = .seconds(120)) -> Bool {
        waitForMarker("spell", timeout: timeout)
    }

    /// Waits until the server has written the file `name` into its mail directory, up to `timeout`.
    private func waitForMarker(_ name: String, timeout: Duration) -> Bool {
        let marker = maildir.appendingPathComponent(name).path
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while !FileManager.default.fileExists(atPath: marker) {
            guard clock.now < deadline else { return false }
            usleep(10_000)
        }
        return true
    }

    /// How many connections the server has hung up on (see ``Options/hangsUpAfter``).
    func hangUps() -> Int {
        (try? String(contentsOf: maildir.appendingPathComponent("hung-up"), encoding: .utf8)).flatMap { Int($0) } ?? 0
    }

    /// Lets the held messages (and every later one) through.
    func release() {
        _ = FileManager.default.createFile(atPath: maildir.appendingPathComponent("release").path, contents: nil)
    }

    /// Every AUTH command received so far.
    func authAttempts() throws -> [AuthAttempt] {
        let log = maildir.appendingPathComponent("auth.jsonl")
        guard FileManager.default.fileExists(atPath: log.path) else { return [] }
        return try String(contentsOf: log, encoding: .utf8).split(separator: "\n").map { line in
            try JSONDecoder().decode(AuthAttempt.self, from: Data(line.utf8))
        }
    }

    /// Ends the server, waits for it to exit (so no zombie is left) and removes its files; safe to call twice.
    func stop() {
        guard !isStopped else { return }
        isStopped = true
        if !process.isRunning {
            // It should run until told to stop: whatever ended it explains the test's failures.
            let stderr = (try? String(contentsOf: directory.appendingPathComponent("stderr.txt"), encoding: .utf8)) ?? ""
            Issue.record(
                "The test SMTP server had ended by itself (status \(process.terminationStatus), \(process.terminationReason)): \(stderr)")
        }
        try? stdinPipe.fileHandleForWriting.close()
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: - Helpers

    /// `Tests/support/smtp_server.py`, found from this file's own path.
    private static var scriptPath: String {
        URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("support/smtp_server.py").path
    }

    /// Reads up to the first newline on a background thread; kills `process` if that takes longer than `seconds`.
    private static func readFirstLine(of handle: FileHandle, killingAfter seconds: Double, process: Process) async -> String? {
        let pid = process.processIdentifier
        // Whichever comes first, the line or the deadline, settles it. The line settles it right
        // where it is read, not when the awaiting task runs again: on a busy test run that can take
        // longer than `seconds`, and a server that did start would be killed.
        let outcome = FirstComer()
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds) {
            if outcome.arrive() { kill(pid, SIGKILL) }
        }
        return await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var line: [UInt8] = []
                while let byte = try? handle.read(upToCount: 1)?.first, byte != UInt8(ascii: "\n") {
                    line.append(byte)
                }
                _ = outcome.arrive()
                continuation.resume(returning: line.isEmpty ? nil : String(decoding: line, as: UTF8.self))
            }
        }
    }

    /// One sentence saying why the server did not start, naming what to install where that is the cause.
    private static func explainStartFailure(status: Int32, stderr: String) -> String {
        if stderr.contains("No module named 'aiosmtpd'") {
            return "The live SMTP tests need aiosmtpd for python3; install it with `pip install aiosmtpd`."
        }
        if status == 127 {
            return "The live SMTP tests need python3 on PATH (with aiosmtpd); env could not run it: \(stderr)"
        }
        return "smtp_server.py exited with status \(status) before it was ready: \(stderr)"
    }

    /// Makes a self-signed certificate for `127.0.0.1` and `localhost` with openssl; returns (certificate, key).
    private static func makeSelfSignedCertificate(in directory: URL) throws -> (String, String) {
        let certificate = directory.appendingPathComponent("certificate.pem").path
        let key = directory.appendingPathComponent("key.pem").path
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        openssl.arguments = [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", key, "-out", certificate,
        ]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        guard openssl.terminationStatus == 0 else {
            throw StartError(description: "openssl could not make a test certificate (status \(openssl.terminationStatus)).")
        }
        return (certificate, key)
    }
}

/// Tells the first of several threads that it came first.
private final class FirstComer: Sendable {
    private let anyoneArrived = NIOLockedValueBox(false)

    /// `true` for the first caller only.
    func arrive() -> Bool {
        anyoneArrived.withLockedValue { arrived in
            defer { arrived = true }
            return !arrived
        }
    }
}
