import Foundation
import GRDB
import NIOConcurrencyHelpers
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

@Suite("Queuing an opening in chunks")
struct OpeningQueueTests {
    private let enrol = "https://school.example/enrol"

    /// Announcements per subscriber of the course's current opening.
    private func announcements(_ database: AppDatabase) throws -> (total: Int, distinct: Int) {
        try database.writer.read { db in
            let row = try Row.fetchOne(
                db, sql: "SELECT count(*) AS n, count(DISTINCT subscriberId) AS d FROM outbox WHERE kind = 'announcement'")!
            return (row["n"], row["d"])
        }
    }

    @Test("open queues in transactions of a chunk and records how far it got")
    func openRecordsItsProgress() async throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        _ = try cli.seedConfirmed(count: 25)
        let database = try AppDatabase.open(path: cli.databasePath)

        // When an open stops after the first of three chunks (as a crash would)
        let result = try await database.open(courseId: 1, date: "2027-03-15", enrolURL: enrol, chunks: .fixed(10), chunkLimit: 1)

        // Then ten are queued, and the progress says up to whom
        #expect(result.newlyQueued == 10)
        #expect(try announcements(database) == (10, 10))
        let progress = try await database.writer.read { db in try Int64.fetchOne(db, sql: "SELECT queuedThrough FROM opening_queue") }
        let tenth = try await database.writer.read { db in
            try Int64.fetchOne(db, sql: "SELECT id FROM subscriber WHERE status = 'confirmed' ORDER BY id LIMIT 1 OFFSET 9")
        }
        #expect(progress == tenth)

        // When it runs to the end, everyone has one announcement and the progress is gone
        let rest = try await database.open(courseId: 1, date: "2027-03-15", enrolURL: enrol, chunks: .fixed(10))
        #expect(rest.newlyQueued == 15)
        #expect(try announcements(database) == (25, 25))
        #expect(try await database.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM opening_queue") } == 0)
    }

    @Test("send completes an open interrupted while queuing: everyone is mailed once")
    func sendCompletesAnInterruptedOpen() async throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        _ = try cli.seedConfirmed(count: 25)
        let database = try AppDatabase.open(path: cli.databasePath)
        // Given an open that stopped after one chunk of ten
        _ = try await database.open(courseId: 1, date: "2027-03-15", enrolURL: enrol, chunks: .fixed(10), chunkLimit: 1)

        // When `send` runs
        let sent = try cli.run("send")

        // Then it queued the other fifteen and mailed all twenty-five, each once
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(sent.stdout.contains("15 announcements queued"))
        #expect(try announcements(database) == (25, 25))
        #expect(cli.mailFiles().count == 25)
        #expect(try cli.run("send").stdout.contains("queued") == false)
        #expect(cli.mailFiles().count == 25)
    }

    @Test("open run again completes an interrupted open without mailing anyone twice")
    func openAgainCompletesAnInterruptedOpen() async throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        _ = try cli.seedConfirmed(count: 25)
        let database = try AppDatabase.open(path: cli.databasePath)
        _ = try await database.open(courseId: 1, date: "2027-03-15", enrolURL: enrol, chunks: .fixed(10), chunkLimit: 2)
        #expect(try announcements(database) == (20, 20))

        let again = try cli.run("open", "--date", "2027-03-15", "--yes")

        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout.contains("5 announcements queued"))
        #expect(try announcements(database) == (25, 25))
        #expect(cli.mailFiles().count == 25)
    }

    @Test("Each chunk is sized from how long the one before took, growing at most twofold")
    func chunksFollowTheTimeTheyTake() async throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        _ = try cli.seedConfirmed(count: 40)
        let database = try AppDatabase.open(path: cli.databasePath)
        // A clock read at the start and the end of each chunk: the first (8 rows) takes four times
        // the target, the second a tenth of it.
        let readings = NIOLockedValueBox([0, 0.04, 1, 1.001, 2, 2.01])
        let clock: @Sendable () -> TimeInterval = {
            readings.withLockedValue { $0.count > 1 ? $0.removeFirst() : ($0.first ?? 0) + 1 }
        }
        let chunks = QueuingChunks.timed(target: 0.01, first: 8, bounds: 1...100, clock: clock)

        // When open stops after three chunks
        let result = try await database.open(courseId: 1, date: "2027-03-15", enrolURL: enrol, chunks: chunks, chunkLimit: 3)

        // Then they held 8, then a quarter of that, then twice that (not ten times)
        #expect(result.newlyQueued == 8 + 2 + 4)
        #expect(try announcements(database) == (14, 14))
    }

    @Test("Chunk sizes stay within their bounds however fast or slow the chunks are")
    func chunkSizesStayWithinBounds() {
        var sizer = QueuingChunks.timed(target: 0.025, first: 1_000, bounds: 100...20_000).sizer()
        sizer.took(10)
        #expect(sizer.size == 100)
        for _ in 0..<20 { sizer.took(0) }
        #expect(sizer.size == 20_000)
        var fixed = QueuingChunks.fixed(5_000).sizer()
        fixed.took(10)
        #expect(fixed.size == 5_000)
    }
}
