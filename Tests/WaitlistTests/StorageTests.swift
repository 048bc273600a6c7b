import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

@testable import Waitlist

/// Another process holding SQLite's write lock on a database file: Python's sqlite3 in
/// `BEGIN IMMEDIATE` until ``release()``.
final class ForeignWriteLock: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()

    private static let script = """
        import sqlite3, sys
        connection = sqlite3.connect(sys.argv[1], isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        print("locked", flush=True)
        sys.stdin.read()
        connection.execute("ROLLBACK")
        """

    /// Starts the process and returns once it holds the lock.
    static func take(on path: String) async throws -> ForeignWriteLock {
        let lock = ForeignWriteLock()
        lock.process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        lock.process.arguments = ["python3", "-c", script, path]
        lock.process.standardInput = lock.input
        lock.process.standardOutput = lock.output
        try lock.process.run()
        let said = await onOwnThread { lock.output.read(until: "locked", timeout: .seconds(30)) }
        try #require(said.contains("locked"), "python3 could not take the write lock")
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
    let count = Mutex<Int>(0)
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

    private func count(_ table: String, in database: AppDatabase) throws -> Int {
        try database.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table)") ?? -1 }
    }

    @Test("While another process holds the write lock, pages and /healthz answer, signups get a bounded 503, and succeed after")
    func anotherProcessHoldingTheWriteLock() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("waitlist-lock-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
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
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("waitlist-group-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
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
                    answered.count.withLock { $0 += 1 }
                }
            }
            try await Task.sleep(for: .milliseconds(300))
            #expect(answered.count.withLock { $0 } == 0, "answered before the commit")
            await lock.release()
            try await group.waitForAll()
        }
        // Then the twenty shared transactions: the one begun as the first came, and one or two for the rest
        #expect(answered.count.withLock { $0 } == 20)
        #expect(try count("subscriber", in: world.database) == 21)
        #expect(world.database.signups.health.commits <= 4)
    }
}
