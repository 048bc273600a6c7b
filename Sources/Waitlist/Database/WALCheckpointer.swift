import Foundation
import GRDB
import Logging
import NIOPosix
import ServiceLifecycle

/// Runs inside `serve`: copies the write-ahead log back into the database file from a connection
/// of its own, so that no commit of the server's writer does that work.
///
/// SQLite's automatic checkpoint runs inside whichever connection's commit finds the log past
/// 1,000 pages: on a busy server, a signup's commit, which then copies some 4 MB into the file and
/// syncs it while every other signup waits. With the automatic checkpoint off on the server's
/// writer, this job checkpoints every ``interval`` in `PASSIVE` mode, which waits for no reader
/// and no writer. (`bench/signup`, 64 connections: 2,880–3,526 durable signups a second with the
/// automatic checkpoint, 4,006–4,728 with this job.)
public struct WALCheckpointer: Service {
    let database: AppDatabase
    let interval: Duration
    let logger: Logger
    private let connection: DatabaseQueue

    /// Turns the automatic checkpoint of the server's writer off and opens the connection that
    /// checkpoints instead.
    ///
    /// - Throws: `WaitlistError(.unavailable)` when the database file cannot be opened again.
    public init(database: AppDatabase, interval: Duration = .seconds(1), logger: Logger) throws(WaitlistError) {
        self.database = database
        self.interval = interval
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

    /// One `PASSIVE` checkpoint: the frames in the log and how many of them are in the file now.
    /// `nil` when another connection was checkpointing already.
    @discardableResult
    public func checkpoint() throws -> (walFrames: Int, checkpointed: Int)? {
        do {
            let counts = try connection.writeWithoutTransaction { db in try db.checkpoint(.passive) }
            return (counts.walFrameCount, counts.checkpointedFrameCount)
        } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY {
            return nil
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
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            guard let problem = try? await NIOThreadPool.singleton.runIfActive({ checkpointReportingFailure() }) else {
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
