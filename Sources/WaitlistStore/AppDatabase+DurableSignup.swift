import Foundation
import GRDB
import NIOConcurrencyHelpers
import NIOPosix
import WaitlistCore

/// The course a signup is for: one the caller has looked up, or one named by its slug (`nil`:
/// the only course), looked up in the signup's own transaction.
public enum SignupCourse: Sendable, Hashable {
    case id(Int64)
    case slug(String?)
}

/// One signup handed to the signup writer: what to write. A value: the writer hands back what it
/// did as another value (``SignupWriter/Written``), so nothing is shared between the request and
/// the thread that writes.
struct PendingSignup: Sendable {
    let email: EmailAddress
    let course: SignupCourse
    /// The form's stamp, spent in the signup's own transaction (`nil`: the JSON API, the CLI).
    let stamp: FormStamp.Parts?
    let language: Language
    let client: ClientContext
    let now: Date
    /// When the request handed it over (monotonic), for the bound on the wait.
    let submitted = ContinuousClock.now
}

/// Writes the server's signups: those that arrive while a transaction is being committed go
/// together into the next one, each request answered after its own commit; a lone signup is
/// written at once. A signup that waited longer than ``longestWait`` for the writer (another process
/// holds the write lock) is answered "unavailable" without being written, and a transaction that
/// fails (locked, disk full) writes none of its signups, nor spends their stamps.
///
/// The signups waiting for the next transaction are kept behind a lock; the writer's own thread
/// takes them all, writes them in one transaction and resumes each waiting request with its own
/// result, a value, until none waits. Nothing is shared between a request and the thread but what
/// the lock hands over; and the writing needs none of Swift's cooperative threads, so requests
/// that block those (or many that wait) do not hold the writer up: a signup's wait is the
/// database's.
final class SignupWriter: Sendable {
    /// What one signup did, with the slug of its course.
    typealias Written = (outcome: SignupOutcome, courseSlug: String)
    /// A signup and the request waiting for what it did.
    private typealias Waiting = (signup: PendingSignup, request: CheckedContinuation<Result<Written, any Error>, Never>)

    /// How long a signup may wait for its transaction to begin.
    let longestWait: Duration
    let health: StorageHealth
    private let writer: any DatabaseWriter
    /// The writer's own thread: a transaction waiting for another process's lock holds it, and
    /// nothing else waits behind that (on a shared pool, two such waits took both threads of a
    /// two-core machine from every other database's signups and checkpoints).
    private let thread: NIOThreadPool
    /// The signups for the next transaction, and whether the thread is at work (it looks at
    /// `waiting` once more before it stops).
    private let queue = NIOLockedValueBox<(waiting: [Waiting], isWriting: Bool)>(([], false))

    init(writer: any DatabaseWriter, health: StorageHealth, longestWait: Duration) {
        self.writer = writer
        self.health = health
        self.longestWait = longestWait
        thread = NIOThreadPool(numberOfThreads: 1)
        thread.start()
    }

    deinit {
        // Nobody waits: a write in progress holds the writer, as does each request waiting for one.
        thread.shutdownGracefully { _ in }
    }

    /// Writes `signup` with whatever else is waiting and returns what it did.
    ///
    /// - Throws: `WaitlistError(.unavailable)` when the database could not take the write in time;
    ///   `.notFound` or `.usage` when its course is unknown or not named among several.
    func subscribe(_ signup: PendingSignup) async throws -> Written {
        let result = await withCheckedContinuation { request in
            let starts = queue.withLockedValue { queue in
                queue.waiting.append((signup, request))
                guard !queue.isWriting else { return false }
                queue.isWriting = true
                return true
            }
            if starts {
                thread.submit { state in
                    guard state == .active else { return self.refuseAll() }
                    self.writeAll()
                }
            }
        }
        return try result.get()
    }

    /// On the writer's thread: writes what waits, one transaction at a time, until nothing does.
    private func writeAll() {
        while true {
            let batch = takeBatch()
            guard !batch.isEmpty else { return }
            let results = Self.write(batch.map(\.signup), to: writer, health: health, longestWait: longestWait)
            for (waiting, result) in zip(batch, results) { waiting.request.resume(returning: result) }
        }
    }

    /// The thread was shut down before it could write: nothing was written.
    private func refuseAll() {
        while true {
            let batch = takeBatch()
            guard !batch.isEmpty else { return }
            for waiting in batch { waiting.request.resume(returning: .failure(AppDatabase.unavailable(nil))) }
        }
    }

    /// Everything waiting; when nothing is, the thread stops (under the same lock a new signup looks at).
    private func takeBatch() -> [Waiting] {
        queue.withLockedValue { queue in
            let batch = queue.waiting
            queue.waiting = []
            if batch.isEmpty { queue.isWriting = false }
            return batch
        }
    }

    /// One transaction for every signup that has not waited too long; a result for each, in order.
    private static func write(
        _ signups: [PendingSignup], to writer: any DatabaseWriter, health: StorageHealth, longestWait: Duration
    ) -> [Result<Written, any Error>] {
        var results = [Result<Written, any Error>?](repeating: nil, count: signups.count)
        var due: [Int] = []
        for (index, signup) in signups.enumerated() {
            if signup.submitted.duration(to: .now) > longestWait {
                results[index] = .failure(AppDatabase.unavailable(nil))
            } else {
                due.append(index)
            }
        }
        if due.count < signups.count { health.recordFailure("signups waited too long for the database's write lock") }
        if !due.isEmpty {
            do {
                let written = try writeTogether(due.map { signups[$0] }, to: writer)
                for (index, result) in zip(due, written) { results[index] = result }
                health.recordSuccess()
            } catch let error as DatabaseError where AppDatabase.isUnavailability(error) {
                // The transaction was rolled back: none of its signups is written.
                let refusal = AppDatabase.unavailable(error)
                for index in due { results[index] = .failure(refusal) }
                health.recordFailure(AppDatabase.describe(error))
            } catch {
                // One signup failed halfway and took the others' writes with it: each is written alone.
                // (A savepoint per signup would keep the others, at two more statements each; a valid
                // signup breaks no constraint, so this path is for the unforeseen.)
                for index in due {
                    results[index] =
                        due.count == 1
                        ? .failure(error)
                        : write([signups[index]], to: writer, health: health, longestWait: .seconds(Int64.max))[0]
                }
            }
        }
        return results.map { $0 ?? .failure(AppDatabase.unavailable(nil)) }
    }

    /// Writes `signups` in one transaction and returns what each did; a signup whose course is not
    /// found is left out (its result a failure) before it writes anything, and one whose stamp was
    /// spent before is ``SignupOutcome/replayed`` and writes nothing but finds the stamp spent. Each
    /// course named is looked up once.
    static func writeTogether(_ signups: [PendingSignup], to writer: any DatabaseWriter) throws -> [Result<Written, any Error>] {
        try writer.write { db in
            let statements = try AppDatabase.SignupStatements(db)
            var courses: [SignupCourse: Result<(id: Int64, slug: String), WaitlistError>] = [:]
            var results: [Result<Written, any Error>] = []
            for signup in signups {
                let found: Result<(id: Int64, slug: String), WaitlistError>
                if let known = courses[signup.course] {
                    found = known
                } else {
                    do {
                        found = .success(try AppDatabase.signupCourse(db, signup.course))
                    } catch let error as WaitlistError {
                        found = .failure(error)
                    }
                    courses[signup.course] = found
                }
                switch found {
                case .failure(let error):
                    results.append(.failure(error))
                case .success(let course):
                    if let stamp = signup.stamp, try !AppDatabase.spendFormStamp(db, stamp) {
                        results.append(.success((.replayed, course.slug)))
                        continue
                    }
                    let outcome = try AppDatabase.subscribe(
                        db, statements: statements, email: signup.email, courseId: course.id, language: signup.language,
                        client: signup.client, now: signup.now)
                    results.append(.success((outcome, course.slug)))
                }
            }
            return results
        }
    }
}

/// What the server knows of its database's health without writing: the last result of the signup
/// writer. ``AppDatabase/healthReport()`` adds a read and the free disk space.
final class StorageHealth: @unchecked Sendable {
    private let lock = NSLock()
    private var lastFailure: (at: ContinuousClock.Instant, reason: String)?
    private var committed = 0

    /// How many signup transactions were committed.
    var commits: Int { lock.withLock { committed } }

    func recordSuccess() {
        lock.withLock {
            lastFailure = nil
            committed += 1
        }
    }

    func recordFailure(_ reason: String) {
        lock.withLock { lastFailure = (.now, reason) }
    }

    /// The reason of the last write when it failed within `window` and nothing was written since.
    func recentFailure(within window: Duration) -> String? {
        lock.withLock {
            guard let lastFailure, lastFailure.at.duration(to: .now) <= window else { return nil }
            return lastFailure.reason
        }
    }
}

/// What `/healthz` says.
public struct StorageReport: Sendable, Equatable {
    /// `nil` when all is well, else why the database cannot take signups.
    public var problem: String?
    /// Free bytes on the database's file system, when it is a file.
    public var freeBytes: Int64?
}

extension AppDatabase {
    /// How long a server's signup (and any other write) waits for SQLite's write lock.
    public static let defaultBusyTimeout: TimeInterval = 3
    /// What a client told "unavailable" is asked to wait before trying again (`Retry-After`, seconds).
    public static let retryAfterSeconds = 5
    /// Below this much free disk space, `/healthz` reports the database as unable to take writes.
    public static let lowestFreeSpace: Int64 = 16 << 20
    /// How long a failed write keeps `/healthz` at `503` when no write succeeded since.
    static let failureMemory: Duration = .seconds(30)

    /// The error of a write the database could not take in time or for lack of space.
    static func unavailable(_ error: (any Error)?) -> WaitlistError {
        if let error = error as? DatabaseError, [.SQLITE_FULL].contains(error.resultCode) {
            return WaitlistError(.unavailable, "The database's disk is full; try again later.")
        }
        return WaitlistError(.unavailable, "The database is busy; try again in a few seconds.")
    }

    /// Whether a database error is one of the moment (locked, busy, disk full or failing) rather than of the request.
    static func isUnavailability(_ error: DatabaseError) -> Bool {
        [.SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_FULL, .SQLITE_IOERR, .SQLITE_CANTOPEN, .SQLITE_READONLY, .SQLITE_PROTOCOL]
            .contains(error.resultCode)
    }

    // MARK: - Durable signups

    /// Records a signup and queues its confirmation mail in the same transaction.
    ///
    /// A new address becomes `pending` with one confirmation queued. A pending or unsubscribed
    /// address gets another confirmation only if none went out in the last 24 hours and fewer than
    /// three went out since it last confirmed (counting those of signups for the course that were
    /// purged unconfirmed). Confirmed and bounced addresses get nothing. Whatever the course, no
    /// confirmation goes to an address that got three in the last 24 hours for any courses.
    ///
    /// Whatever the address's state, the transaction runs the same statements, writes and commits
    /// (rows are written, or left as they were, by the same upsert and inserts), so the time a
    /// signup takes tells nobody whether the address was on the list.
    ///
    /// The signup goes through the signup writer, with the signups that arrive at about the same
    /// time: the call returns once its transaction is committed (`synchronous=FULL`), without
    /// holding a thread meanwhile. Every signup, the form's, the API's and the tests', takes this path.
    ///
    /// - Throws: `WaitlistError(.unavailable)` when the database cannot take the write within a few
    ///   seconds (another process holds the write lock, the disk is full); nothing is written then.
    public func subscribeDurably(
        email: EmailAddress, courseId: Int64, language: Language, client: ClientContext, now: Date = Date()
    ) async throws -> SignupOutcome {
        try await signups.subscribe(
            PendingSignup(email: email, course: .id(courseId), stamp: nil, language: language, client: client, now: now)
        ).outcome
    }

    /// The same for a course given by id or by
    /// slug; a slug is looked up in the signup's own transaction, with no read before it. A form's
    /// stamp (`spending`) is spent in that transaction too: a signup that is not written leaves it
    /// unspent, and one whose stamp was spent before writes nothing (``SignupOutcome/replayed``).
    ///
    /// - Returns: what the signup did, and the slug of its course.
    /// - Throws: also as ``resolveCourse(slug:)`` when the course is unknown or not named among several.
    public func subscribeDurably(
        email: EmailAddress, course: SignupCourse, spending stamp: FormStamp.Parts? = nil, language: Language, client: ClientContext,
        now: Date = Date()
    ) async throws -> (outcome: SignupOutcome, courseSlug: String) {
        try await signups.subscribe(PendingSignup(email: email, course: course, stamp: stamp, language: language, client: client, now: now))
    }

    /// The id and slug of a signup's course, with one cached statement (a signup's transaction
    /// looks it up for every signup); the errors are ``resolveCourse(_:slug:)``'s.
    static func signupCourse(_ db: Database, _ course: SignupCourse) throws -> (id: Int64, slug: String) {
        let row: Row?
        switch course {
        case .id(let id):
            row = try Row.fetchOne(db.cachedStatement(sql: "SELECT id, slug FROM course WHERE id = ?"), arguments: [id])
        case .slug(let slug?):
            row = try Row.fetchOne(db.cachedStatement(sql: "SELECT id, slug FROM course WHERE slug = ?"), arguments: [slug])
        case .slug(nil):
            let rows = try Row.fetchAll(db.cachedStatement(sql: "SELECT id, slug FROM course ORDER BY slug LIMIT 2"))
            row = rows.count == 1 ? rows[0] : nil
        }
        guard let row else {
            if case .slug(let slug) = course { _ = try resolveCourse(db, slug: slug) }  // throws the sentence that says why
            throw WaitlistError(.notFound, "There is no such course.")
        }
        return (row["id"], row["slug"])
    }

    // MARK: - Off the cooperative pool

    /// The threads blocking database calls of requests run on: never Swift's cooperative pool,
    /// whose few threads every request needs.
    private static let blockingQueue = DispatchQueue(label: "waitlist.database", qos: .userInitiated, attributes: .concurrent)

    /// Runs `work` (blocking database calls) on the database's own threads and awaits its result.
    public func perform<T: Sendable>(_ work: @escaping @Sendable (AppDatabase) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Self.blockingQueue.async { continuation.resume(with: Result { try work(self) }) }
        }
    }

    // MARK: - Health

    /// A read, the signup writer's last result and the free disk space: never a write.
    public func healthReport() async -> StorageReport {
        let path = writer.path
        let readable = (try? await perform { database in try database.writer.read { db in try Int.fetchOne(db, sql: "SELECT 1") } }) == 1
        var report = StorageReport(problem: nil, freeBytes: Self.freeBytes(near: path))
        if !readable {
            report.problem = "the database cannot be read"
        } else if let failure = signups.health.recentFailure(within: Self.failureMemory) {
            report.problem = "the last write failed: \(failure)"
        } else if let free = report.freeBytes, free < Self.lowestFreeSpace {
            report.problem = "the database's disk is nearly full (\(free >> 10) KiB free)"
        }
        return report
    }

    /// The free bytes on the file system holding `path` (`nil` in memory or when unknown).
    static func freeBytes(near path: String) -> Int64? {
        guard !path.isEmpty, path != ":memory:" else { return nil }
        var stats = statvfs()
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        guard statvfs(directory, &stats) == 0 else { return nil }
        return Int64(stats.f_bavail) * Int64(stats.f_frsize)
    }
}
