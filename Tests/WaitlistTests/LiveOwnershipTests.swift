import Foundation
import Glibc
import GRDB
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

/// Several `waitlist` processes on one database, as an instructor and an operator run them: the
/// server's worker always, `open`, and a `send` or two started while the relay has a bad spell.
/// Whatever they do, every subscriber gets the announcement once. One test at a time: each runs
/// several processes, and together they would starve the rest of the suite of the two cores.
@Suite("Many senders, one database: exactly once", .serialized)
struct LiveOwnershipTests {
    private let enrol = "https://school.example/enrol"

    /// Who sends besides the server's worker and `open`, and how fast the relay lets them.
    struct Scene: Sendable, CustomTestStringConvertible {
        var extraSends: Int
        var rate: String?
        var testDescription: String { "serve + open + \(extraSends) send\(extraSends == 1 ? "" : "s")\(rate.map { ", rate \($0)" } ?? "")" }
    }

    @Test(
        "serve running, open, a 421 spell longer than the lease, send started meanwhile: every subscriber exactly once",
        arguments: [Scene(extraSends: 1), Scene(extraSends: 2), Scene(extraSends: 1, rate: "60/s")])
    func spellWithManySenders(_ scene: Scene) async throws {
        // After 60 messages the relay says 421 to everything for 6 s: three times the lease.
        let server = try await SMTPTestServer.start(.init(spellAfter: 60, spellSeconds: 6))
        defer { server.stop() }
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        let addresses = try cli.seedConfirmed(count: 300)
        var environment = ["WAITLIST_SMTP_URL": server.url, "WAITLIST_SEND_LEASE": "2"]
        if let rate = scene.rate { environment["WAITLIST_SEND_RATE"] = rate }
        let serve = try cli.start(["serve", "--port", String(try SMTPTestServer.freePort())], extraEnvironment: environment)
        defer {
            kill(serve.processIdentifier, SIGTERM)
            serve.waitUntilExit()
        }
        let open = try cli.start(["open", "--date", "2027-03-15", "--url", enrol, "--yes"], extraEnvironment: environment)
        try #require(await onOwnThread { server.waitUntilSpell() }, "the relay's spell never began")
        let sends = try (0..<scene.extraSends).map { _ in try cli.start(["send"], extraEnvironment: environment) }
        for process in [open] + sends {
            await onOwnThread { process.waitUntilExit() }
            // Done, relay unreachable (the spell outlasted a command's patience), or work left for later.
            #expect([0, 69, 75].contains(process.terminationStatus), "exit \(process.terminationStatus)")
        }

        // What failed in the spell waits for its retry: make it due, and let the server's worker finish.
        let database = try AppDatabase.open(path: cli.databasePath)
        try await database.writer.write { db in
            try db.execute(sql: "UPDATE outbox SET nextAttemptAt = ? WHERE state = 'queued'", arguments: [Date()])
        }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(90)
        while try database.status(courseId: 1).mailQueued > 0, clock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }

        let recipients = try server.receivedMessages().flatMap(\.recipients)
        #expect(recipients.count == addresses.count, "\(recipients.count - Set(recipients).count) duplicates")
        #expect(Set(recipients) == Set(addresses))
        #expect(try database.status(courseId: 1).mailSent == addresses.count)
    }

    @Test("A sender frozen (SIGSTOP) past its lease is taken over; after SIGCONT at most one message per lane arrives twice")
    func frozenSenderIsTakenOver() async throws {
        let server = try await SMTPTestServer.start()
        defer { server.stop() }
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        let addresses = try cli.seedConfirmed(count: 3000)
        let environment = ["WAITLIST_SMTP_URL": server.url, "WAITLIST_SEND_LEASE": "2"]
        let open = try cli.start(["open", "--date", "2027-03-15", "--url", enrol, "--yes"], extraEnvironment: environment)
        let pid = open.processIdentifier
        let frozen = await onOwnThread { () -> Bool in
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(120)
            while server.receivedCount() < 300 {
                guard clock.now < deadline else { return false }
                usleep(5000)
            }
            return freezeOutsideTransaction(pid, databasePath: cli.databasePath, deadline: deadline)
        }
        try #require(frozen, "open never got past 300 messages, or was never frozen between its transactions")
        let frozenAt = server.receivedCount()

        // Off the test pool: the takeover takes a few seconds, and other tests need the pool meanwhile.
        let send = try await onOwnThread { Result { try cli.run("send", extraEnvironment: environment) } }.get()
        #expect(send.status == 0, "\(send.stderr)")
        let sentBySend = server.receivedCount() - frozenAt
        kill(pid, SIGCONT)
        await onOwnThread { open.waitUntilExit() }
        #expect(open.terminationStatus == 0)

        let recipients = try server.receivedMessages().flatMap(\.recipients)
        #expect(Set(recipients) == Set(addresses))
        let duplicates = recipients.count - Set(recipients).count
        #expect(duplicates <= 4, "\(duplicates) duplicates")
        #expect(sentBySend > 0, "send never took over")
        #expect(try AppDatabase.open(path: cli.databasePath).status(courseId: 1).mailSent == addresses.count)
    }

    /// Stops `pid` at a moment it holds no write lock on the database. A process frozen inside a
    /// transaction keeps SQLite's lock, and no lease lets anyone else write until it runs again
    /// (a `send` then says the database is not answering, exit 69): what this suite tests is the
    /// lease, so the freeze is retried until the lock is free.
    private func freezeOutsideTransaction(_ pid: pid_t, databasePath: String, deadline: ContinuousClock.Instant) -> Bool {
        var configuration = Configuration()
        configuration.busyMode = .immediateError
        guard let probe = try? DatabaseQueue(path: databasePath, configuration: configuration) else { return false }
        while ContinuousClock().now < deadline {
            kill(pid, SIGSTOP)
            while !isStopped(pid), ContinuousClock().now < deadline { usleep(200) }
            let lockFree = (try? probe.inDatabase { db in try db.execute(sql: "BEGIN IMMEDIATE; ROLLBACK") }) != nil
            if lockFree { return true }
            kill(pid, SIGCONT)
            usleep(1000)
        }
        return false
    }

    /// Whether the kernel has stopped every thread of `pid` (state `T` in `/proc/PID/stat`).
    private func isStopped(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let end = stat.range(of: ") ", options: .backwards)
        else { return false }
        return stat[end.upperBound...].hasPrefix("T")
    }

    @Test("status counts a message sent once the relay's 250 is recorded, before any other sender runs")
    func statusCountsRecordedMail() async throws {
        let server = try await SMTPTestServer.start(.init(holdsAfter: 500))
        defer { server.stop() }
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        _ = try cli.seedConfirmed(count: 1000)
        let open = try cli.start(
            ["open", "--date", "2027-03-15", "--url", enrol, "--yes"], extraEnvironment: ["WAITLIST_SMTP_URL": server.url])
        let pid = open.processIdentifier
        try #require(
            await onOwnThread {
                guard server.waitUntilHolding() else { return false }
                kill(pid, SIGKILL)
                return true
            }, "open never got past 500 messages")
        open.waitUntilExit()
        server.release()
        let status = try AppDatabase.open(path: cli.databasePath).status(courseId: 1)
        // Each lane may have one message accepted and not yet recorded when it died.
        #expect((500 - 4)...500 ~= status.mailSent, "\(status.mailSent) sent")
        #expect(status.mailQueued == 1000 - status.mailSent)
    }
}
