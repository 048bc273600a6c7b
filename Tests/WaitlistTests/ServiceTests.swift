import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistStore

@Suite("The service as serve runs it")
struct ServiceTests {
    @Test("The service serve runs (Runtime.makeService) mails a visitor's form signup with its own worker, nobody running send")
    func serviceMailsASignupByItself() async throws {
        // Given the service built as `serve` builds it, on a fresh database, mail to files
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("waitlist-service-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let mail = directory.appendingPathComponent("mail")
        let settings = try Settings(environment: [
            "WAITLIST_DATABASE": directory.appendingPathComponent("waitlist.sqlite").path, "WAITLIST_MAIL_DIR": mail.path,
        ])
        let runtime = try await Runtime.start(settings: settings, logger: Logger(label: "test"), signsMail: true)
        let (ports, bound) = AsyncStream.makeStream(of: Int.self)
        let service = try runtime.makeService(hostname: "127.0.0.1", port: 0, metrics: PrometheusCollectorRegistry()) { channel in
            bound.yield(channel.localAddress?.port ?? 0)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await service.runService(gracefulShutdownSignals: []) }
            var listening = ports.makeAsyncIterator()
            let port = try #require(await listening.next())
            // When a visitor loads the course page, takes a few seconds, and sends the form
            let page = String(
                decoding: try await URLSession.shared.data(from: try #require(URL(string: "http://127.0.0.1:\(port)/courses/negotiation")))
                    .0,
                as: UTF8.self)
            try await Task.sleep(for: .seconds(FormStamp.minimumFillTime + 0.5))
            var request = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(port)/subscribe")))
            request.httpMethod = "POST"
            request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
            let fields = [
                ("email", "anna@example.com"), ("course", "negotiation"), ("locale", "ru"), ("website", ""),
                ("stamp", formStamp(in: page) ?? ""),
            ]
            request.httpBody = Data(fields.map { "\(formEncode($0.0))=\(formEncode($0.1))" }.joined(separator: "&").utf8)
            let (_, response) = try await URLSession.shared.data(for: request)
            #expect((response as? HTTPURLResponse)?.statusCode == 200)
            // Then its confirmation is written by the service's own mail worker, with nobody running `send`
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(30)
            var files: [String] = []
            while files.isEmpty && clock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
                files = ((try? FileManager.default.contentsOfDirectory(atPath: mail.path)) ?? []).filter { $0.hasSuffix(".eml") }
            }
            #expect(files.count == 1, "mail files: \(files)")
            let message = try String(contentsOf: mail.appendingPathComponent(try #require(files.first)), encoding: .utf8)
            #expect(message.contains("To: anna@example.com"))
            #expect(try runtime.database.status(courseId: 1).mailQueued == 0)
            group.cancelAll()
        }
    }
}
