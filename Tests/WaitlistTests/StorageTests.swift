import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOConcurrencyHelpers
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

/// Another process holding SQLite's write lock on a database file: Python's sqlite3 in
/// `BEGIN IMMEDIATE` until ``release()``; or, from ``read(on:)``, a read transaction that keeps its
/// snapshot (and so the write-ahead log's frames in it) until then.
final class ForeignWriteLock: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()

    private static let script = """
        import sqlite3, sys
        connection = sqlite3.connect(sys.argv[1], isolation_level=None)
        if sys.argv[2] == "write":
            connection.execute("BEGIN IMMEDIATE")
        else:
            connection.execute("BEGIN")
            connection.execute("SELECT count(*) FROM subscriber").fetchall()
        print("locked", flush=True)
        sys.stdin.read()
        connection.execute("ROLLBACK")
        """

    /// Starts the process and returns once it holds the lock.
    static func take(on path: String) async throws -> ForeignWriteLock {
        try await start(on: path, mode: "write")
    }

    /// Starts a process that reads in a transaction, and returns once it has read.
    static func read(on path: String) async throws -> ForeignWriteLock {
        try await start(on: path, mode: "read")
    }

    private static func start(on path: String, mode: String) async throws -> ForeignWriteLock {
        let lock = ForeignWriteLock()
        lock.process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        lock.process.arguments = ["python3", "-c", script, path, mode]
        lock.process.standardInput = lock.input
        lock.process.standardOutput = lock.output
        try lock.process.run()
        let said = await onOwnThread { lock.output.read(until: "locked", timeout: .seconds(30)) }
        try #require(said.contains("locked"), "python3 could not begin its transaction")
        return lock
    }

    /// Lets go of the lock and waits for the process to end.
    func release() async {
        input.fileHandleForWriting.closeFile()
        await onOwnThread { self.process.waitUntilExit() }
    }
}

/// A tmpfs mounted on a new directory, where the machine allows it (root in a container that may mount).
struct SmallDisk {
    let directory: URL

    /// Whether a tmpfs can be mounted here at all.
    static let isAvailable: Bool = {
        guard let disk = try? SmallDisk.mount(megabytes: 1) else { return false }
        disk.unmount()
        return true
    }()

    static func mount(megabytes: Int) throws -> SmallDisk {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("waitlist-disk-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["mount", "-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", directory.path]
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            try? FileManager.default.removeItem(at: directory)
            throw CocoaError(.fileWriteNoPermission)
        }
        return SmallDisk(directory: directory)
    }

    /// Writes a file until the disk has no room left; returns it.
    func fill() throws -> URL {
        let filler = directory.appendingPathComponent("filler")
        _ = FileManager.default.createFile(atPath: filler.path, contents: nil)
        let handle = try FileHandle(forWritingTo: filler)
        defer { try? handle.close() }
        let block = Data(repeating: 0x55, count: 64 << 10)
        do {
            while true { try handle.write(contentsOf: block) }
        } catch {
            // ENOSPC: full. Smaller pieces take what is left.
        }
        let byte = Data([0x55])
        while (try? handle.write(contentsOf: byte)) != nil {}
        return filler
    }

    func unmount() {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["umount", "-l", directory.path]
        try? process.run()
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// A count several tasks add to.
final class Tally: Sendable {
    let count = NIOLockedValueBox<Int>(0)
}

@Suite("Storage that never blocks the server")
struct StorageTests {
    /// A world whose database is a file (WAL, as `serve` opens it) with a short busy timeout.
    private func fileWorld(at directory: URL, busyTimeout: TimeInterval = 1) async throws -> TestWorld {
        let path = directory.appendingPathComponent("waitlist.sqlite").path
        var world = TestWorld(database: try AppDatabase.open(path: path, busyTimeout: busyTimeout), templates: try await Templates.load())
        world.settings.signupRateLimit = nil
        return world
    }

    /// A fresh directory for one test's database files, which the test removes.
    private func scratchDirectory(_ name: String) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("waitlist-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// Writes `count` new pending subscribers (`PREFIX-i@example.com`), each with a user agent of
    /// `bytes` random bytes in hex: a quick way to fill pages.
    private static func insertFiller(_ db: Database, prefix: String, count: Int, bytes: Int) throws {
        try db.execute(
            sql: """
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
                INSERT INTO subscriber (courseId, email, emailKey, language, status, createdAt, signupUserAgent)
                SELECT 1, ? || '-' || i || '@example.com', ? || '-' || i || '@example.com', 'ru', 'pending', ?, hex(randomblob(?)) FROM n
                """, arguments: [count, prefix, prefix, Date(), bytes])
    }

    private func count(_ table: String, in database: AppDatabase) throws -> Int {
        try database.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table)") ?? -1 }
    }

    @Test("While another process holds the write lock, pages and /healthz answer, signups get a bounded 503, and succeed after")
    func anotherProcessHoldingTheWriteLock() async throws {
        let directory = try scratchDirectory("lock")
        defer { try? FileManager.default.removeItem(at: directory) }
        let world = try await fileWorld(at: directory)
        let path = directory.appendingPathComponent("waitlist.sqlite").path
        try await world.application().test(.router) { client async throws in
            // Given another process holding the write lock
            let lock = try await ForeignWriteLock.take(on: path)

            // Then pages and the health probe are reads and answer
            #expect(try await client.get("/courses/negotiation").status == .ok)
            let health = try await client.get("/healthz")
            #expect(health.status == .ok)
            #expect(String(buffer: health.body) == "ok\n")

            // When signups come, they are refused with 503 and Retry-After, well before any client gives up
            let started = ContinuousClock.now
            let refused = try await client.postJSON("/api/subscribe", #"{"email": "ann@example.com"}"#)
            #expect(started.duration(to: .now) < .seconds(15), "no hang")
            #expect(refused.status == .serviceUnavailable)
            #expect(refused.headers[.retryAfter] == String(AppDatabase.retryAfterSeconds))
            let json = try JSONSerialization.jsonObject(with: Data(buffer: refused.body)) as? [String: String]
            #expect(json?["error"] == "unavailable")

            let form = try await client.signUpOnPage("bob@example.com", clock: world.clock)
            #expect(form.status == .serviceUnavailable)
            #expect(form.headers[.retryAfter] == String(AppDatabase.retryAfterSeconds))
            #expect(String(buffer: form.body).contains(PageWords.russian.unavailableTitle))

            // And /healthz says why
            let sick = try await client.get("/healthz")
            #expect(sick.status == .serviceUnavailable)
            #expect(String(buffer: sick.body).contains("the last write failed"))

            // When the lock is let go, the same signup goes through, and nothing of the refused ones was written
            await lock.release()
            #expect(try count("subscriber", in: world.database) == 0)
            #expect(try await client.postJSON("/api/subscribe", #"{"email": "ann@example.com"}"#).status == .accepted)
            #expect(try await client.get("/healthz").status == .ok)
            #expect(try count("subscriber", in: world.database) == 1)
            #expect(try count("outbox", in: world.database) == 1)
        }
    }

    @Test("Signups sent together while another process holds the write lock for longer than they may wait all get 503, then succeed")
    func concurrentSignupsUnderAHeldLock() async throws {
        // The scene of a crash in `serve` (an error object released twice on the signup writer's
        // thread); `make test-threads` runs it under Thread Sanitizer, which reports such a race.
        let directory = try scratchDirectory("held")
        defer { try? FileManager.default.removeItem(at: directory) }
        let world = try await fileWorld(at: directory, busyTimeout: 0.5)
        let path = directory.appendingPathComponent("waitlist.sqlite").path
        try await world.application().test(.router) { client async throws in
            // Given another process holding the write lock for longer than a signup may wait
            let lock = try await ForeignWriteLock.take(on: path)
            // When signups come in waves meanwhile, by the API and by the form
            for wave in 0..<3 {
                let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                    for index in 0..<8 {
                        group.addTask {
                            if index == 0 {
                                return try await client.signUpOnPage("form\(wave)@example.com", clock: world.clock).status
                            }
                            return try await client.postJSON("/api/subscribe", #"{"email": "api\#(wave)-\#(index)@example.com"}"#).status
                        }
                    }
                    return try await group.reduce(into: [HTTPResponse.Status]()) { $0.append($1) }
                }
                // Then each is answered 503, none written
                #expect(statuses == Array(repeating: .serviceUnavailable, count: 8), "wave \(wave)")
            }
            #expect(try count("subscriber", in: world.database) == 0)
            // When the lock is let go, signups go through again
            await lock.release()
            #expect(try await client.postJSON("/api/subscribe", #"{"email": "after@example.com"}"#).status == .accepted)
            #expect(try count("subscriber", in: world.database) == 1)
        }
    }

    @Test(
        "A full disk answers signups 503 with Retry-After and /healthz 503, writes nothing, and signups succeed once there is room",
        .enabled(if: SmallDisk.isAvailable, "mounting a tmpfs needs root and a machine that allows it"))
    func fullDisk() async throws {
        let disk = try SmallDisk.mount(megabytes: 48)
        defer { disk.unmount() }
        let world = try await fileWorld(at: disk.directory)
        try await world.application().test(.router) { client async throws in
            // Given a database whose log has no room to grow on a full disk
            try await world.database.writer.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
            let filler = try disk.fill()

            // When a signup comes
            let refused = try await client.postJSON("/api/subscribe", #"{"email": "ann@example.com"}"#)

            // Then it is refused for now, and the health probe tells why
            #expect(refused.status == .serviceUnavailable)
            #expect(refused.headers[.retryAfter] == String(AppDatabase.retryAfterSeconds))
            let json = try JSONSerialization.jsonObject(with: Data(buffer: refused.body)) as? [String: String]
            #expect(json?["error"] == "unavailable")
            let sick = try await client.get("/healthz")
            #expect(sick.status == .serviceUnavailable)
            #expect(String(buffer: sick.body).contains("full"))

            // When room is made, the signup goes through and nothing of the refused one was left
            try FileManager.default.removeItem(at: filler)
            #expect(try count("subscriber", in: world.database) == 0)
            #expect(try await client.postJSON("/api/subscribe", #"{"email": "ann@example.com"}"#).status == .accepted)
            #expect(try await client.get("/healthz").status == .ok)
            #expect(try count("subscriber", in: world.database) == 1)
            #expect(try count("outbox", in: world.database) == 1)
        }
    }

    @Test("Signups that arrive while a commit is in flight are written together, each answered after its own commit")
    func signupsShareTransactions() async throws {
        let directory = try scratchDirectory("group")
        defer { try? FileManager.default.removeItem(at: directory) }
        let world = try await fileWorld(at: directory, busyTimeout: 10)
        let path = directory.appendingPathComponent("waitlist.sqlite").path
        let courseId = try world.course.id!
        // Given a lone signup: written alone, at once
        #expect(
            try await world.database.subscribeDurably(
                email: try EmailAddress("first@example.com"), courseId: courseId, language: .ru, client: ClientContext())
                == .confirmationQueued)
        // Given a writer held up by another process, and twenty signups arriving meanwhile
        let lock = try await ForeignWriteLock.take(on: path)
        let answered = Tally()
        let database = world.database
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<20 {
                group.addTask {
                    let outcome = try await database.subscribeDurably(
                        email: try EmailAddress("person\(index)@example.com"), courseId: courseId, language: .ru, client: ClientContext())
                    #expect(outcome == .confirmationQueued)
                    // Answered only once committed: the row is there for another connection to read.
                    let address = "person\(index)@example.com"
                    let seen = try await database.writer.read { db in
                        try Int.fetchOne(db, sql: "SELECT count(*) FROM subscriber WHERE email = ?", arguments: [address])
                    }
                    #expect(seen == 1)
                    answered.count.withLockedValue { $0 += 1 }
                }
            }
            try await Task.sleep(for: .milliseconds(300))
            #expect(answered.count.withLockedValue { $0 } == 0, "answered before the commit")
            await lock.release()
            try await group.waitForAll()
        }
        // Then the twenty shared transactions: the one begun as the first came, and one or two for the rest
        #expect(answered.count.withLockedValue { $0 } == 20)
        #expect(try count("subscriber", in: world.database) == 21)
        #expect(world.database.signups.health.commits <= 4)
    }

    @Test("A write gets in between the short transactions of another process that keeps taking the write lock back")
    func writesGetInBetweenAnotherProcesssTransactions() async throws {
        let directory = try scratchDirectory("gaps")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("waitlist.sqlite").path
        let database = try AppDatabase.open(path: path, busyTimeout: 10)
        let courseId = try database.resolveCourse(slug: nil).id!
        // Given another process that holds the write lock 100 ms at a time and lets it go for 3 ms
        let cycling = Process()
        cycling.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        cycling.arguments = [
            "python3", "-c",
            """
            import sqlite3, sys, time
            connection = sqlite3.connect(sys.argv[1], isolation_level=None)
            print("cycling", flush=True)
            end = time.monotonic() + 60
            while time.monotonic() < end:
                connection.execute("BEGIN IMMEDIATE")
                time.sleep(0.1)
                connection.execute("COMMIT")
                time.sleep(0.003)
            """, path,
        ]
        let output = Pipe()
        cycling.standardOutput = output
        try cycling.run()
        defer { cycling.terminate() }
        let said = await onOwnThread { output.read(until: "cycling", timeout: .seconds(30)) }
        try #require(said.contains("cycling"))
        // When ten signups are written one after another, each at another moment of the cycle
        // (the signup writer's own transaction, on a thread of its own, so that the wait measured
        // is the database's and not that of a cooperative thread busy with other tests)
        let waits = await onOwnThread {
            (0..<10).map { index -> Duration in
                Thread.sleep(forTimeInterval: .random(in: 0...0.1))
                let clock = ContinuousClock()
                let started = clock.now
                _ = try? SignupWriter.writeTogether([pendingSignup("gap\(index)@example.com", courseId: courseId)], to: database.writer)
                return started.duration(to: clock.now)
            }
        }
        // Then each got in within a few of its gaps, not after seconds of ever longer sleeps
        // (SQLite's own wait looks again after up to 100 ms, and mostly misses a 3 ms gap)
        #expect(try await database.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM subscriber") } == 10)
        #expect(waits.allSatisfy { $0 < .seconds(1) }, "waits: \(waits)")
    }

    @Test("A signup is written while another process's `open` is still queuing, between its chunks")
    func signupsGetInBetweenChunks() async throws {
        let directory = try scratchDirectory("chunks")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("waitlist.sqlite").path
        let server = try AppDatabase.open(path: path, busyTimeout: 30)
        let command = try AppDatabase.open(path: path, busyTimeout: 30)
        let courseId = try server.resolveCourse(slug: nil).id!
        try await server.writer.write { db in
            try db.execute(
                sql: """
                    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000)
                    INSERT INTO subscriber (courseId, email, emailKey, language, status, createdAt, confirmedAt)
                    SELECT ?, 'r' || i || '@example.com', 'r' || i || '@example.com', 'ru', 'confirmed', ?, ? FROM n
                    """, arguments: [courseId, Date(), Date()])
        }
        // Given `open` queuing twenty chunks in its own connection, as another process would (with
        // pauses long enough for a test machine busy with the other tests)
        let opening = Task { @Sendable in
            _ = try? await command.open(
                courseId: courseId, date: "2027-03-15", enrolURL: "https://school.example/enrol", chunks: .fixed(2000), pause: 0.05)
        }
        let announcements = "SELECT count(*) FROM outbox WHERE kind = 'announcement'"
        // When a signup comes meanwhile, in the signup writer's transaction (on a thread of its own:
        // the cooperative pool of a machine busy with the other tests may keep a task waiting for
        // longer than `open` takes)
        let answered = await onOwnThread {
            Result { () throws -> Int in
                while try server.writer.read({ db in try Int.fetchOne(db, sql: announcements) ?? 0 }) == 0 { usleep(1000) }
                _ = try SignupWriter.writeTogether([pendingSignup("late@example.com", courseId: courseId)], to: server.writer)
                return try server.writer.read { db in try Int.fetchOne(db, sql: announcements) ?? 0 }
            }
        }
        let queuedWhenAnswered = try answered.get()
        await opening.value
        // Then it was written before `open` was done (one transaction for all would have kept it
        // waiting to the end), and `open` queued everyone
        #expect(queuedWhenAnswered < 40000, "the signup waited for the whole of `open`")
        #expect(try await server.writer.read { db in try Int.fetchOne(db, sql: announcements) } == 40000)
    }

    @Test("forget empties the write-ahead log of the erased rows; while another process reads it says it could not, and a second run does")
    func forgetClearsTheLog() async throws {
        // Given a signup in a database file, and another process reading in a transaction
        let directory = try scratchDirectory("forget-log")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("waitlist.sqlite").path
        let database = try AppDatabase.open(path: path, busyTimeout: 1)
        _ = try await database.subscribeDurably(
            email: try EmailAddress("anna@example.com"), courseId: 1, language: .ru, client: ClientContext())
        let reader = try await ForeignWriteLock.read(on: path)
        // When the address is forgotten meanwhile, its rows are erased but the log cannot be emptied
        #expect(try database.forget(email: "anna@example.com") == .init(subscriptions: 1, logCleared: false))
        #expect(try database.status(courseId: 1).pending == 0)
        // Then, once the reader is done, forgetting again empties it
        await reader.release()
        #expect(try database.forget(email: "anna@example.com") == .init(subscriptions: 0, logCleared: true))
        let log = try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int
        #expect(log == 0)
    }

    @Test("A database file's writer syncs its commits to the disk (synchronous=FULL), also after GRDB switched it to WAL")
    func writerSyncsItsCommits() async throws {
        let directory = try scratchDirectory("synchronous")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("waitlist.sqlite").path
        // A new file and one opened again
        for _ in 0..<2 {
            let database = try AppDatabase.open(path: path)
            let setting = try await database.writer.write { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") }
            #expect(setting == 2, "synchronous is \(String(describing: setting)) (1: NORMAL, 2: FULL)")
            #expect(try await database.writer.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") } == "wal")
            // The sender's records of messages sent, the one kind of commit left to the next sync,
            // leave the writer syncing every other commit
            try database.recordSent(ids: [1, 2, 3])
            #expect(try await database.writer.write { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") } == 2)
            #expect(try await database.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox_sent") } == 3)
        }
    }

    @Test("The server's commits never copy the log into the file: its checkpointer does, from a connection of its own")
    func checkpointsLeaveTheWriter() async throws {
        let directory = try scratchDirectory("checkpoints")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("waitlist.sqlite").path
        let database = try AppDatabase.open(path: path)
        let checkpointer = try WALCheckpointer(database: database, logger: Logger(label: "test"))
        // When the server's writer commits 24 MiB in 24 transactions (6,000 pages; SQLite's own
        // checkpoint would copy them back whenever the log passed 1,000)
        for batch in 0..<24 {
            try await database.writer.write { db in try Self.insertFiller(db, prefix: "b\(batch)", count: 256, bytes: 2000) }
        }
        // Then the log holds all of it, and one checkpoint puts all of it into the file
        let log = try #require(try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int)
        #expect(log > 20 << 20, "the log was copied back by a commit: \(log) bytes")
        let counts = try #require(try checkpointer.checkpoint())
        #expect(counts.walFrames > 5000)
        #expect(counts.checkpointed == counts.walFrames)
        let file = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        #expect(file > 20 << 20)
    }

    @Test("Under writes that keep coming, the checkpointer starts the log again from its beginning: it does not grow with every commit")
    func logRestartsUnderEndlessWrites() async throws {
        let directory = try scratchDirectory("restarts")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("waitlist.sqlite").path
        let database = try AppDatabase.open(path: path)
        let checkpointer = try WALCheckpointer(database: database, restartFrames: 200, logger: Logger(label: "test"))
        // Given the server's writer committing new rows, one commit right after the other (about
        // 20 new pages a commit), on a thread of its own (a task may wait long for the full
        // suite's busy cooperative threads: the checkpoints then ran while nothing was written)
        let writing = WritingLoop()
        let finished = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            while !writing.isStopped {
                let batch = writing.commits + 1
                try? database.writer.write { db in try Self.insertFiller(db, prefix: "r\(batch)", count: 40, bytes: 1000) }
                writing.committed()
            }
            finished.signal()
        }
        // When, once the writes have begun, the checkpointer runs every 100 ms, until the log was
        // started again twice (SQLite counts the restarts in the log's header) or 20 s have passed
        let begun = try Self.logRestarts(path)
        let restarts = await onOwnThread { () -> Int in
            var restarts = 0
            let end = Date().addingTimeInterval(20)
            while writing.commits == 0 && Date() < end { Thread.sleep(forTimeInterval: 0.01) }
            while Date() < end {
                Thread.sleep(forTimeInterval: 0.1)
                if (try? checkpointer.checkpoint())?.restarted == true { restarts += 1 }
                if let now = try? Self.logRestarts(path), now >= begun + 2 { break }
            }
            return restarts
        }
        let restarted = try Self.logRestarts(path) - begun
        writing.stop()
        await onOwnThread { finished.wait() }
        let commits = writing.commits
        // Then the log was started again from its beginning while the writes went on (without the
        // `RESTART`, never: every frame was appended, some 5,700 bytes a row)
        #expect(restarts > 0)
        #expect(restarted >= 2, "the log was started again \(restarted) times in \(commits) commits")
        let rows = try await database.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM subscriber") }
        #expect(rows == commits * 40)
    }

    @Test("The restart takes its turn after the server's own transaction in progress, however long, instead of giving up on it")
    func restartWaitsForTheWritersTransaction() async throws {
        let directory = try scratchDirectory("restart-turn")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("waitlist.sqlite").path
        let database = try AppDatabase.open(path: path)
        let checkpointer = try WALCheckpointer(database: database, restartFrames: 10, logger: Logger(label: "test"))
        try await database.writer.write { db in try Self.insertFiller(db, prefix: "a", count: 40, bytes: 1000) }
        // Given the server's writer in a transaction that lasts 300 ms (15 times the restart's
        // wait for another's lock)
        let (inside, committed) = (DispatchSemaphore(value: 0), DispatchSemaphore(value: 0))
        Thread.detachNewThread {
            try? database.writer.write { db in
                try Self.insertFiller(db, prefix: "b", count: 40, bytes: 1000)
                inside.signal()
                usleep(300_000)
            }
            committed.signal()
        }
        // When the checkpointer runs meanwhile
        let counts = await onOwnThread { () -> (walFrames: Int, checkpointed: Int, restarted: Bool)? in
            inside.wait()
            return try? checkpointer.checkpoint()
        }
        await onOwnThread { committed.wait() }
        // Then its `RESTART` ran once the transaction had committed, and copied all of the log (from
        // a connection of its own it gave up after 20 ms, as it did behind every commit under load)
        #expect(counts?.restarted == true)
        #expect(counts.map { $0.checkpointed == $0.walFrames } == true)
        #expect(try count("subscriber", in: database) == 80)
    }

    @Test("A reader that stays in the log makes the restart give up after its short wait, not the writer's, and the writes go on")
    func restartGivesUpOnAReaderThatStays() async throws {
        let directory = try scratchDirectory("reader-stays")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("waitlist.sqlite").path
        // Given a server whose writes wait up to a minute for another's lock, a log longer than
        // the restart's threshold, and a reader (as Litestream holds one) in a transaction begun
        // before the last of those commits
        let database = try AppDatabase.open(path: path, busyTimeout: 60)
        let checkpointer = try WALCheckpointer(database: database, restartFrames: 10, logger: Logger(label: "test"))
        try await database.writer.write { db in try Self.insertFiller(db, prefix: "a", count: 40, bytes: 1000) }
        let reader = try DatabaseQueue(path: path)
        let (entered, release) = (DispatchSemaphore(value: 0), DispatchSemaphore(value: 0))
        Thread.detachNewThread {
            try? reader.read { db in
                _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM subscriber")
                entered.signal()
                release.wait()
            }
        }
        entered.wait()
        defer { release.signal() }
        try await database.writer.write { db in try Self.insertFiller(db, prefix: "b", count: 40, bytes: 1000) }
        // When the checkpointer runs
        let started = ContinuousClock.now
        let counts = await onOwnThread { try? checkpointer.checkpoint() }
        let waited = ContinuousClock.now - started
        // Then its `RESTART` gave up after its own short wait (20 ms; the writer's minute would
        // have held every signup that long), and the server's next write waits for nothing
        #expect(counts?.restarted == false)
        #expect(waited < .seconds(10), "the restart waited \(waited) for the reader")
        try await database.writer.write { db in try Self.insertFiller(db, prefix: "c", count: 1, bytes: 10) }
        #expect(try count("subscriber", in: database) == 81)
    }

    @Test("A busy wait ends once its time has passed, however long each look's sleep took; shortened for one call, then whole again")
    func busyWaitEndsByTheClock() {
        // Given sleeps that take 3 ms for each millisecond asked (a busy machine)
        let wait = BusyWait(timeout: 0.06) { usleep(useconds_t($0 * 3_000_000)) }
        let callback = wait.callback
        func looks() -> (count: Int, took: Duration) {
            let started = ContinuousClock.now
            var tries = 0
            while callback(tries) { tries += 1 }
            return (tries, ContinuousClock.now - started)
        }
        // Then a wait of 60 ms lasts at least 60 ms, in fewer than 60 looks (counting looks, it
        // lasted 180 ms)
        let whole = looks()
        #expect(whole.took >= .milliseconds(60))
        #expect(whole.count < 60, "\(whole.count) looks in \(whole.took)")
        // And shortened to 9 ms for one call it ends after 9 ms; after the call, the whole wait is back
        let short = wait.shortened(to: 0.009) { looks() }
        #expect(short.took >= .milliseconds(9) && short.count < 9, "\(short.count) looks in \(short.took)")
        #expect(looks().took >= .milliseconds(60))
    }

    /// How many times the write-ahead log at `path` was started again from its beginning: its
    /// header's checkpoint sequence number (bytes 12–15, big-endian), which SQLite adds one to then.
    private static func logRestarts(_ path: String) throws -> Int {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path + "-wal"))
        defer { try? handle.close() }
        let header = try #require(try handle.read(upToCount: 32))
        try #require(header.count == 32)
        return header[12..<16].reduce(0) { $0 << 8 | Int($1) }
    }

    @Test("In one group of signups, one for an unknown course and one that fails halfway are refused alone; the others are written")
    func oneRefusedSignupLeavesTheOthersIn() async throws {
        let directory = try scratchDirectory("refusals")
        defer { try? FileManager.default.removeItem(at: directory) }
        let world = try await fileWorld(at: directory, busyTimeout: 10)
        let path = directory.appendingPathComponent("waitlist.sqlite").path
        let database = world.database
        // A signup from the source "refuse" fails after its subscriber row is written
        try await database.writer.write { db in
            try db.execute(
                sql: """
                    CREATE TRIGGER refuse_signup BEFORE INSERT ON consent_event WHEN NEW.source = 'refuse'
                    BEGIN SELECT RAISE(ABORT, 'refused by the test'); END
                    """)
        }
        // Given ten signups gathered behind another process's lock: one for a course that does not
        // exist, one that fails halfway
        let lock = try await ForeignWriteLock.take(on: path)
        let results = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
            for index in 0..<10 {
                group.addTask {
                    let course: SignupCourse = index == 3 ? .slug("nope") : .slug("negotiation")
                    let client = ClientContext(source: index == 7 ? "refuse" : "test")
                    let written = try? await database.subscribeDurably(
                        email: try EmailAddress("group\(index)@example.com"), course: course, language: .ru, client: client)
                    return (index, written != nil)
                }
            }
            try await Task.sleep(for: .milliseconds(300))
            await lock.release()
            return try await group.reduce(into: [Int: Bool]()) { $0[$1.0] = $1.1 }
        }
        // Then exactly those two are refused, and nothing of them was written
        #expect(results.filter { !$0.value }.map(\.key).sorted() == [3, 7])
        let stored = try await database.writer.read { db in try String.fetchAll(db, sql: "SELECT email FROM subscriber ORDER BY email") }
        #expect(stored == [0, 1, 2, 4, 5, 6, 8, 9].map { "group\($0)@example.com" })
        #expect(try count("outbox", in: database) == 8)
    }

    @Test(
        "A checkpoint that fails for a full disk turns /healthz to 503 with the reason",
        .enabled(if: SmallDisk.isAvailable, "mounting a tmpfs needs root and a machine that allows it"))
    func failedCheckpointIsReported() async throws {
        let disk = try SmallDisk.mount(megabytes: 32)
        defer { disk.unmount() }
        let world = try await fileWorld(at: disk.directory)
        let checkpointer = try WALCheckpointer(database: world.database, logger: Logger(label: "test"))
        // Given 4 MiB in the log that the file does not have yet, and a full disk
        try await world.database.writer.write { db in try Self.insertFiller(db, prefix: "f", count: 1000, bytes: 2000) }
        let filler = try disk.fill()
        defer { try? FileManager.default.removeItem(at: filler) }
        // When the checkpointer copies the log into the file
        let problem = checkpointer.checkpointReportingFailure()
        // Then it fails, and the health probe says so
        #expect(problem != nil)
        let report = await world.database.healthReport()
        #expect(report.problem?.contains("checkpoint") == true, "\(report)")
    }
}

/// Tells a loop of writes on another thread to stop, and counts its commits.
private final class WritingLoop: Sendable {
    private let state = NIOLockedValueBox((stopped: false, commits: 0))

    var isStopped: Bool { state.withLockedValue { $0.stopped } }

    /// How many commits the loop this flag stops has made.
    var commits: Int { state.withLockedValue { $0.commits } }

    func stop() {
        state.withLockedValue { $0.stopped = true }
    }

    func committed() {
        state.withLockedValue { $0.commits += 1 }
    }
}

/// A signup as the API hands it to the signup writer.
private func pendingSignup(_ address: String, courseId: Int64) throws -> PendingSignup {
    PendingSignup(email: try EmailAddress(address), course: .id(courseId), stamp: nil, language: .ru, client: ClientContext(), now: Date())
}
