import Foundation
import GRDB
import Logging
import NIOConcurrencyHelpers
import NIOPosix
import ServiceLifecycle
import WaitlistCore

/// Runs inside `serve`: copies the write-ahead log back into the database file from a connection
/// of its own, so that no commit of the server's writer does that work.
///
/// SQLite's automatic checkpoint runs inside whichever connection's commit finds the log past
/// 1,000 pages: on a busy server, a signup's commit, which then copies some 4 MB into the file and
/// syncs it while every other signup waits. With the automatic checkpoint off on the server's
/// writer, this job checkpoints every ``interval`` in `PASSIVE` mode, which waits for no reader
/// and no writer. (`bench/signup`, 64 connections: 2,880–3,526 signups a second with the
/// automatic checkpoint, 4,006–4,728 with this job, both before commits were synced: see
/// bench/README.md.)
///
/// A `PASSIVE` checkpoint copies the frames that were in the log when it began; while signups
/// keep coming, more have always been added by the time it ends, so the log is never complete and
/// SQLite never starts it again from the beginning: it grew by 50 MB a second under a stream of
/// signups, 935 MB in 20 s, every frame written past its end. So when the log a `PASSIVE`
/// checkpoint found held at least ``restartFrames`` frames, a `RESTART` checkpoint follows: it
/// holds writers off while it copies the few frames added meanwhile and waits for readers to leave
/// the log (at most ``longestRestartWait``), and the next commit writes the log from its start.
/// The `RESTART` runs on the server's writer, between two of its transactions: from a connection
/// of its own it had to catch the write lock in a gap between them, and gave up behind any of the
/// writer's transactions longer than that wait (a synced commit on a busy disk). A reader that
/// stays in the log (Litestream holds one), or another process's transaction longer than that
/// wait, makes it give up; it is tried again after 1 s, then 2, 4 … up to ``longestBackoff``
/// while it keeps giving up.
public final class WALCheckpointer: Service, Sendable {
    let database: AppDatabase
    let interval: Duration
    let logger: Logger
    /// A log this long is restarted after its `PASSIVE` checkpoint.
    let restartFrames: Int
    private let connection: DatabaseQueue
    /// How many `RESTART`s in a row gave up, and when the next may be tried.
    private let restarts = NIOLockedValueBox<(failures: Int, next: ContinuousClock.Instant)>((0, .now))

    /// How long a `RESTART` checkpoint, on the server's writer, may wait for another process's
    /// write lock, and then for the log's readers while it holds writers off.
    static let longestRestartWait: TimeInterval = 0.02
    /// The longest pause between `RESTART`s that keep giving up.
    static let longestBackoff: Duration = .seconds(30)

    /// Turns the automatic checkpoint of the server's writer off and opens the connection that
    /// checkpoints instead.
    ///
    /// - Parameter restartFrames: how long the log may be before a `RESTART` checkpoint follows the
    ///   `PASSIVE` one (1,000 frames: SQLite's automatic checkpoint's size).
    /// - Throws: `WaitlistError(.unavailable)` when the database file cannot be opened again.
    public init(database: AppDatabase, interval: Duration = .seconds(1), restartFrames: Int = 1000, logger: Logger) throws(WaitlistError) {
        self.database = database
        self.interval = interval
        self.restartFrames = restartFrames
        self.logger = logger
        do {
            var configuration = Configuration()
            configuration.label = "waitlist.checkpoints"
            connection = try DatabaseQueue(path: database.writer.path, configuration: configuration)
            try database.writer.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_autocheckpoint = 0") }
        } catch {
            throw WaitlistError(
                .unavailable, "Cannot open the database \(database.writer.path) for checkpoints: \(AppDatabase.describe(error)).")
        }
    }

    /// One `PASSIVE` checkpoint, and a `RESTART` after it when the log was long: the
    /// frames in the log and how many of them are in the file now (after a `RESTART`, both the
    /// frames it copied, and `restarted` true: the next commit writes the log from its start).
    /// `nil` when another connection was checkpointing already.
    @discardableResult
    public func checkpoint() throws -> (walFrames: Int, checkpointed: Int, restarted: Bool)? {
        let passive: (walFrameCount: Int, checkpointedFrameCount: Int)
        do {
            passive = try connection.writeWithoutTransaction { db in try db.checkpoint(.passive) }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY {
            return nil
        }
        guard passive.walFrameCount >= restartFrames, restarts.withLockedValue({ $0.next <= .now })
        else { return (passive.walFrameCount, passive.checkpointedFrameCount, false) }
        do {
            let counts = try database.writer.writeWithoutTransaction { db in
                guard let busyWait = database.busyWait else { return try db.checkpoint(.restart) }
                return try busyWait.shortened(to: Self.longestRestartWait) { try db.checkpoint(.restart) }
            }
            restarts.withLockedValue { $0.failures = 0 }
            return (counts.walFrameCount, counts.checkpointedFrameCount, true)
        } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY {
            restarts.withLockedValue { restarts in
                restarts.failures += 1
                let pause = Duration.seconds(1 << min(restarts.failures - 1, 5))
                restarts.next = .now + min(pause, Self.longestBackoff)
            }
            return (passive.walFrameCount, passive.checkpointedFrameCount, false)
        }
    }

    /// One checkpoint whose failure `/healthz` reports as a failed write (the disk full, say).
    ///
    /// - Returns: why it failed, or `nil`.
    func checkpointReportingFailure() -> String? {
        do {
            try checkpoint()
            return nil
        } catch {
            let problem = AppDatabase.describe(error)
            database.signups.health.recordFailure("a checkpoint failed: \(problem)")
            return problem
        }
    }

    public func run() async throws {
        var lastProblem: String?
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
            guard let problem = try? await NIOThreadPool.singleton.runIfActive({ self.checkpointReportingFailure() }) else {
                if lastProblem != nil { logger.info("Checkpoints work again") }
                lastProblem = nil
                continue
            }
            // Once per kind of failure, not once a second.
            if problem != lastProblem { logger.warning("Cannot checkpoint the database", metadata: ["error": "\(problem)"]) }
            lastProblem = problem
        }
        try? connection.close()
    }
}
