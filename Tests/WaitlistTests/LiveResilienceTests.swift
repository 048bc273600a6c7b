import Foundation
import Glibc
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

/// Crashes, outages and refusals over real SMTP: `waitlist` processes against aiosmtpd servers
/// started by the tests. Each test states what must hold whatever happens on the way.
@Suite("Delivery that never loses or doubles a mail")
struct LiveResilienceTests {
    private let enrol = "https://school.example/enrol"

    @Test("kill -9 of open halfway, then one send: every recipient has the announcement, duplicates at most the concurrency")
    func killedOpenIsFinishedBySend() async throws {
        // The relay holds the messages after the first 1,000, so open is killed with messages in flight.
        let server = try await SMTPTestServer.start(.init(holdsAfter: 1000))
        defer { server.stop() }
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        let addresses = try cli.seedConfirmed(count: 3000)
        // A short lease, so that send takes over soon after the kill.
        let environment = ["WAITLIST_SMTP_URL": server.url, "WAITLIST_SEND_LEASE": "3"]
        let open = try cli.start(["open", "--date", "2027-03-15", "--url", enrol, "--yes"], extraEnvironment: environment)
        let pid = open.processIdentifier
        let held = await onOwnThread {
            guard server.waitUntilHolding() else { return false }
            kill(pid, SIGKILL)
            return true
        }
        try #require(held, "open never got past 1,000 messages")
        open.waitUntilExit()
        #expect(open.terminationReason == .uncaughtSignal)
        server.release()
        let beforeResume = server.receivedCount()
        #expect(beforeResume < addresses.count)

        // The dead process's hold on the sending role runs out and `send` waits for it rather than leaving mail behind.
        let resumed = try cli.run("send", extraEnvironment: environment)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let recipients = try server.receivedMessages().flatMap(\.recipients)
        #expect(Set(recipients) == Set(addresses))
        let duplicates = recipients.count - Set(recipients).count
        #expect(duplicates <= 4, "\(duplicates) duplicates")
        let status = try AppDatabase.open(path: cli.databasePath).status(courseId: 1)
        #expect(status.mailQueued == 0)
        #expect(status.mailSent == addresses.count)
    }

    @Test("Ctrl-C stops open after the messages in flight and says how to resume; send finishes without duplicates")
    func interruptedOpenResumes() async throws {
        // The relay holds the messages after the first 300: Ctrl-C comes with messages in flight,
        // which must still be finished (and recorded) once the relay answers.
        let server = try await SMTPTestServer.start(.init(holdsAfter: 300))
        defer { server.stop() }
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        let addresses = try cli.seedConfirmed(count: 2000)
        let errors = Pipe()
        let open = try cli.start(
            ["open", "--date", "2027-03-15", "--url", enrol, "--yes"], extraEnvironment: ["WAITLIST_SMTP_URL": server.url], errors: errors)
        let pid = open.processIdentifier
        let interrupted = await onOwnThread { () -> String? in
            guard server.waitUntilHolding() else { return nil }
            kill(pid, SIGINT)
            // Only once open says it is stopping may the relay answer the messages in flight.
            let acknowledged = errors.read(until: "Stopping after the messages in flight")
            server.release()
            return acknowledged
        }
        let acknowledged = try #require(interrupted, "open never got past 300 messages")
        #expect(acknowledged.contains("Stopping after the messages in flight"), "\(acknowledged)")
        let stderr = acknowledged + String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        open.waitUntilExit()
        #expect(open.terminationStatus == 75)
        #expect(stderr.contains("Run `waitlist send` to finish"))
        let database = try AppDatabase.open(path: cli.databasePath)
        // Stopping gave the sending role up, so send starts at once.
        #expect(try database.sendingRoleHolder() == nil)
        let resumed = try cli.run("send", extraEnvironment: ["WAITLIST_SMTP_URL": server.url])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let recipients = try server.receivedMessages().flatMap(\.recipients)
        #expect(recipients.sorted() == addresses.sorted())
    }

    @Test("SMTP relay down, then up: everything delivered, nothing lost")
    func relayDownThenUp() async throws {
        let port = try SMTPTestServer.freePort()
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        let addresses = try cli.seedConfirmed(count: 50)
        let down = try cli.run(
            "open", "--date", "2027-03-15", "--url", enrol, "--yes", extraEnvironment: ["WAITLIST_SMTP_URL": "smtp://127.0.0.1:\(port)"])
        #expect(down.status == 69, "\(down.stderr)")
        #expect(down.stderr.contains("waitlist send"))
        let database = try AppDatabase.open(path: cli.databasePath)
        #expect(try database.status(courseId: 1).mailQueued == 50)
        #expect(try database.status(courseId: 1).mailFailed == 0)

        var options = SMTPTestServer.Options()
        options.port = port
        let server = try await SMTPTestServer.start(options)
        defer { server.stop() }
        // The failed attempts are due again after their back-off; let that time pass.
        try await database.writer.write { db in try db.execute(sql: "UPDATE outbox SET nextAttemptAt = ?", arguments: [Date()]) }
        let up = try cli.run("send", extraEnvironment: ["WAITLIST_SMTP_URL": server.url])
        #expect(up.status == 0, "\(up.stderr)")
        let recipients = try server.receivedMessages().flatMap(\.recipients)
        #expect(recipients.sorted() == addresses.sorted())
    }

    @Test("4xx then 250: retried and delivered; 5xx: bounced and never retried")
    func deferredThenDeliveredRejectedBounced() async throws {
        let server = try await SMTPTestServer.start()
        defer { server.stop() }
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        _ = try cli.seedConfirmed(count: 3, prefix: "flaky")
        _ = try cli.seedConfirmed(count: 2, prefix: "reject")
        let good = try cli.seedConfirmed(count: 5, prefix: "good")
        let smtp = ["WAITLIST_SMTP_URL": server.url]
        let first = try cli.run("open", "--date", "2027-03-15", "--url", enrol, "--yes", extraEnvironment: smtp)
        #expect(first.status == 75, "\(first.stderr)")
        #expect(Set(try server.receivedMessages().flatMap(\.recipients)) == Set(good))
        let database = try AppDatabase.open(path: cli.databasePath)
        var status = try database.status(courseId: 1)
        #expect(status.bounced == 2)
        #expect(status.mailQueued == 3)

        try await database.writer.write { db in
            try db.execute(sql: "UPDATE outbox SET nextAttemptAt = ? WHERE state = 'queued'", arguments: [Date()])
        }
        let second = try cli.run("send", extraEnvironment: smtp)
        #expect(second.status == 0, "\(second.stderr)")
        let recipients = try server.receivedMessages().flatMap(\.recipients)
        #expect(recipients.filter { $0.hasPrefix("flaky") }.count == 3)
        #expect(!recipients.contains { $0.hasPrefix("reject") })
        status = try database.status(courseId: 1)
        #expect(status.mailSent == 8)
        #expect(status.mailFailed == 2)
        let attempts = try await database.writer.read { db in
            try Int.fetchAll(
                db, sql: "SELECT o.attempts FROM outbox o JOIN subscriber s ON s.id = o.subscriberId WHERE s.email LIKE 'reject%'")
        }
        #expect(attempts == [1, 1])
    }

    @Test("A relay refusing everyone stops open with one clear message and bounces nobody")
    func refusingRelayStopsOpen() async throws {
        var options = SMTPTestServer.Options()
        options.refusesAllRecipients = true
        let server = try await SMTPTestServer.start(options)
        defer { server.stop() }
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        _ = try cli.seedConfirmed(count: 40, domains: 4)
        let result = try cli.run(
            "open", "--date", "2027-03-15", "--url", enrol, "--yes", extraEnvironment: ["WAITLIST_SMTP_URL": server.url])
        #expect(result.status == 69)
        #expect(result.stderr.contains("relay access denied"))
        let status = try AppDatabase.open(path: cli.databasePath).status(courseId: 1)
        #expect(status.bounced == 0)
        #expect(status.confirmed == 40)
        #expect(status.mailQueued == 40)
    }

    @Test("Two senders at once on one database never send the same message twice")
    func twoSendProcesses() async throws {
        let server = try await SMTPTestServer.start()
        defer { server.stop() }
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        let addresses = try cli.seedConfirmed(count: 1500)
        let database = try AppDatabase.open(path: cli.databasePath)
        _ = try await database.open(courseId: 1, date: "2027-03-15", enrolURL: enrol)
        let processes = try (0..<2).map { _ in try cli.start(["send"], extraEnvironment: ["WAITLIST_SMTP_URL": server.url]) }
        for process in processes {
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
        }
        let recipients = try server.receivedMessages().flatMap(\.recipients)
        #expect(recipients.count == addresses.count)
        #expect(Set(recipients) == Set(addresses))
    }
}
