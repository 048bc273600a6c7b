import Foundation
import Logging
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

/// Writes messages into temporary directories and checks the files, their names and the log.
@Suite struct FileTransportTests {
    // MARK: - Writing files

    @Test func writesTheRenderedMessageAsOneEmlFile() throws {
        try withTemporaryDirectory { root in
            let directory = root.appendingPathComponent("mail")
            let message = mailFileTestMessage(id: "1a2b@example.org", seconds: 1_795_913_799)
            let session = try FileTransport(directory: directory, logger: Logger(label: "test")).makeSession()
            try session.send(message)
            session.close()

            let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            #expect(names == ["20261129T005639Z-1a2b@example.org.eml"])
            let written = try Data(contentsOf: directory.appendingPathComponent(names[0]))
            #expect(Array(written) == MIMERenderer.render(message))
        }
    }

    @Test func createsTheDirectoryAndItsParentsWhenMissing() throws {
        try withTemporaryDirectory { root in
            let directory = root.appendingPathComponent("a/b/mail")
            let session = try FileTransport(directory: directory, logger: Logger(label: "test")).makeSession()
            try session.send(mailFileTestMessage(id: "x@example.org", seconds: 0))
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).count == 1)
        }
    }

    @Test func namesAreUniqueAndSortByTheMessageDate() throws {
        try withTemporaryDirectory { root in
            let session = try FileTransport(directory: root, logger: Logger(label: "test")).makeSession()
            let messages = [
                mailFileTestMessage(id: MIMERenderer.makeMessageID(domain: "example.org"), seconds: 1_795_913_799 + 3600),
                mailFileTestMessage(id: MIMERenderer.makeMessageID(domain: "example.org"), seconds: 1_795_913_799),
                mailFileTestMessage(id: MIMERenderer.makeMessageID(domain: "example.org"), seconds: 1_795_913_799),
                mailFileTestMessage(id: MIMERenderer.makeMessageID(domain: "example.org"), seconds: 1_795_913_799 + 1),
                mailFileTestMessage(id: MIMERenderer.makeMessageID(domain: "example.org"), seconds: 1_000_000_000),
            ]
            for message in messages {
                try session.send(message)
            }
            let names = try FileManager.default.contentsOfDirectory(atPath: root.path).sorted()
            #expect(names.count == messages.count)
            #expect(names.allSatisfy { $0.hasSuffix(".eml") && !$0.hasPrefix(".") }, "no temporary file is left behind")
            let datesInNameOrder = try names.map { name in
                let written = try Data(contentsOf: root.appendingPathComponent(name))
                return try #require(messages.first { MIMERenderer.render($0) == Array(written) }).date
            }
            #expect(datesInNameOrder == datesInNameOrder.sorted())
        }
    }

    @Test func sendingTheSameMessageAgainReplacesItsFile() throws {
        try withTemporaryDirectory { root in
            let session = try FileTransport(directory: root, logger: Logger(label: "test")).makeSession()
            let message = mailFileTestMessage(id: "retry@example.org", seconds: 1_795_913_799)
            try session.send(message)
            try session.send(message)
            #expect(try FileManager.default.contentsOfDirectory(atPath: root.path) == ["20261129T005639Z-retry@example.org.eml"])
        }
    }

    @Test func messageIDsAreMadeSafeAndStayDistinctInFileNames() {
        let date = Date(timeIntervalSince1970: 1_795_913_799)
        let awkward = MailMessage(
            from: Mailbox(address: "a@example.org"), to: Mailbox(address: "b@example.org"), subject: "s", text: "t",
            messageID: "../../etc/passwd\r\n я@x", date: date
        )
        let similar = MailMessage(
            from: Mailbox(address: "a@example.org"), to: Mailbox(address: "b@example.org"), subject: "s", text: "t",
            messageID: "..%2F..%2Fetc%2Fpasswd%0D%0A%20%D1%8F@x", date: date
        )
        let name = FileTransport.fileName(for: awkward)
        #expect(name == "20261129T005639Z-..%2F..%2Fetc%2Fpasswd%0D%0A%20%D1%8F@x.eml")
        #expect(FileTransport.fileName(for: similar) != name)
    }

    @Test func aDirectoryPathThatIsAFileGivesATransientError() throws {
        try withTemporaryDirectory { root in
            let notADirectory = root.appendingPathComponent("mail")
            try Data("x".utf8).write(to: notADirectory)
            let session = try FileTransport(directory: notADirectory, logger: Logger(label: "test")).makeSession()
            let error = #expect(throws: DeliveryError.self) {
                try session.send(mailFileTestMessage(id: "x@example.org", seconds: 0))
            }
            guard case .transient(let reason) = error else {
                Issue.record("expected a transient error, got \(String(describing: error))")
                return
            }
            #expect(reason.contains(notADirectory.path))
        }
    }

    @Test func aParentThatIsAFileGivesATransientError() throws {
        try withTemporaryDirectory { root in
            let file = root.appendingPathComponent("file")
            try Data("x".utf8).write(to: file)
            let session = try FileTransport(directory: file.appendingPathComponent("mail"), logger: Logger(label: "test")).makeSession()
            let error = #expect(throws: DeliveryError.self) {
                try session.send(mailFileTestMessage(id: "x@example.org", seconds: 0))
            }
            guard case .transient = error else {
                Issue.record("expected a transient error, got \(String(describing: error))")
                return
            }
        }
    }

    // MARK: - Logging

    @Test func logsOneInfoLineWithThePathAndTheLinksButNotTheRecipient() throws {
        try withTemporaryDirectory { root in
            let recorder = LogRecorder()
            let logger = Logger(label: "test") { _ in RecordingLogHandler(recorder: recorder) }
            let session = try FileTransport(directory: root, logger: logger).makeSession()
            var message = mailFileTestMessage(id: "log@example.org", seconds: 1_795_913_799)
            message.text = "Подтвердите: http://127.0.0.1:8080/confirm/tok_1.\nОтписаться (https://example.org/unsubscribe/u2)\n"
            try session.send(message)

            let entries = recorder.entries
            #expect(entries.count == 1)
            let entry = try #require(entries.first)
            #expect(entry.level == .info)
            #expect(entry.line.contains(root.appendingPathComponent("20261129T005639Z-log@example.org.eml").path))
            #expect(entry.line.contains("http://127.0.0.1:8080/confirm/tok_1"))
            #expect(entry.line.contains("https://example.org/unsubscribe/u2"))
            #expect(!entry.line.contains("student"), "the recipient must not be logged")
        }
    }

    @Test func findsEveryHTTPLinkOnceWithoutSurroundingPunctuation() {
        let text = """
            Confirm: https://a.example/confirm/x1. Or (http://c.example/e?f=g&h=i), «http://f.example/h»
            <https://a.example/confirm/x1> ftp://no.example http:// and "http://q.example/z"!
            """
        #expect(
            FileTransport.links(in: text) == [
                "https://a.example/confirm/x1", "http://c.example/e?f=g&h=i", "http://f.example/h", "http://q.example/z",
            ]
        )
    }
}

// MARK: - Helpers

/// A message to write, with a fixed recipient whose address the log must never show.
private func mailFileTestMessage(id: String, seconds: TimeInterval) -> MailMessage {
    MailMessage(
        from: Mailbox(displayName: "Waitlist", address: "waitlist@example.org"),
        to: Mailbox(displayName: "Student", address: "student@example.net"),
        subject: "Подтвердите подписку",
        text: "http://127.0.0.1:8080/confirm/abc\n",
        html: "<p>hi</p>",
        messageID: id,
        date: Date(timeIntervalSince1970: seconds)
    )
}

/// Runs `body` with a fresh empty directory that is removed afterwards.
private func withTemporaryDirectory(_ body: (URL) throws -> Void) throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("waitlist-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    try body(directory)
}

/// Log lines collected by ``RecordingLogHandler``.
private final class LogRecorder: @unchecked Sendable {
    /// One logged line: its level and its message with metadata.
    struct Entry {
        var level: Logger.Level
        var line: String
    }

    private let lock = NSLock()
    private var recorded: [Entry] = []

    var entries: [Entry] { lock.withLock { recorded } }

    func record(_ entry: Entry) {
        lock.withLock { recorded.append(entry) }
    }
}

/// A log handler that keeps every line in a ``LogRecorder``, for tests that check what is logged.
private struct RecordingLogHandler: LogHandler {
    let recorder: LogRecorder
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let allMetadata = metadata.merging(event.metadata ?? [:]) { $1 }
        recorder.record(LogRecorder.Entry(level: event.level, line: "\(event.message) \(allMetadata)"))
    }
}
