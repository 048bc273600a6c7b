import Foundation
import GRDB
import WaitlistCore

/// The waitlist's database: every read and write the service makes, as named operations that keep
/// the data consistent. Handlers and commands never write SQL themselves.
public struct AppDatabase: Sendable {
    /// The connection pool (a file) or queue (in memory, for tests).
    let writer: any DatabaseWriter
    /// The server's signups, written together while a commit is in flight (``subscribeDurably(email:courseId:language:client:now:)``).
    let signups: SignupWriter
    /// How the writer's connection waits for another's lock, when it was configured here
    /// (``open(path:busyTimeout:)``, ``inMemory()``); `nil` for a writer configured by its caller.
    let busyWait: BusyWait?

    /// Wraps a writer and brings its schema up to date.
    ///
    /// - Parameter longestSignupWait: how long a server's signup may wait for the write lock before
    ///   it is answered "unavailable".
    public init(_ writer: any DatabaseWriter, longestSignupWait: Duration = .seconds(AppDatabase.defaultBusyTimeout)) throws {
        try self.init(writer, busyWait: nil, longestSignupWait: longestSignupWait)
    }

    private init(_ writer: any DatabaseWriter, busyWait: BusyWait?, longestSignupWait: Duration) throws {
        self.writer = writer
        self.busyWait = busyWait
        self.signups = SignupWriter(writer: writer, health: StorageHealth(), longestWait: longestSignupWait)
        try Self.migrator.migrate(writer)
    }

    /// Opens (creating and migrating if needed) the SQLite file at `path` in WAL mode, so that the
    /// server and the command line can use it at the same time.
    ///
    /// An existing file is looked at first (``inspect(path:)``): another program's file, a damaged
    /// one or one of a newer version is refused and left as it was.
    ///
    /// - Parameter busyTimeout: how long a write waits for another connection's write lock (seconds).
    public static func open(path: String, busyTimeout: TimeInterval = defaultBusyTimeout) throws(WaitlistError) -> AppDatabase {
        try inspect(path: path)
        do {
            try StateFiles.createFolder(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path)
            let busyWait = BusyWait(timeout: busyTimeout)
            let pool = try DatabasePool(path: path, configuration: makeConfiguration(busyWait: busyWait))
            // GRDB sets `synchronous = NORMAL` on a pool's writer when it switches the file to WAL,
            // after `prepareDatabase`; a commit would then reach the disk only at the next
            // checkpoint, and a power cut could take back signups already answered `202`.
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
            let database = try AppDatabase(pool, busyWait: busyWait, longestSignupWait: .seconds(busyTimeout))
            // SQLite made a new file 0644 masked by the umask, and the `-wal` and `-shm` (which exist
            // now that the file is in WAL mode) with the file's mode masked by the umask.
            for file in [path, path + "-wal", path + "-shm"] {
                try StateFiles.settle(fileAt: file, mode: StateFiles.dataMode)
            }
            return database
        } catch let error as StateFiles.Failure {
            throw WaitlistError(.unavailable, "Cannot open the database \(path): \(error).")
        } catch let error as DatabaseError where [.SQLITE_NOTADB, .SQLITE_CORRUPT].contains(error.resultCode) {
            throw WaitlistError(.data, "The database \(path) is damaged: \(Self.describe(error)). Restore it from a backup.")
        } catch {
            throw WaitlistError(.unavailable, "Cannot open the database \(path): \(Self.describe(error)).")
        }
    }

    /// A fresh empty database in memory, for tests.
    public static func inMemory() throws -> AppDatabase {
        let busyWait = BusyWait(timeout: defaultBusyTimeout)
        let queue = try DatabaseQueue(configuration: makeConfiguration(busyWait: busyWait))
        return try AppDatabase(queue, busyWait: busyWait, longestSignupWait: .seconds(defaultBusyTimeout))
    }

    private static func makeConfiguration(busyWait: BusyWait) -> Configuration {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        // Another process (the server's worker, a `waitlist send`, an `open` queuing a chunk) may
        // hold the write lock briefly; every write is short, so a longer wait means trouble.
        configuration.busyMode = .callback(busyWait.callback)
        // A commit is on the disk when it returns: a `202` survives a power cut.
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        configuration.label = "waitlist"
        return configuration
    }

    /// How often a connection waiting for another's write lock looks again.
    static let busyPollInterval: TimeInterval = 0.001

    /// Whether `error` is SQLite's (locked past the busy timeout, disk full, I/O): the database
    /// cannot answer now, so callers answer "try again later" rather than "bad request".
    public static func isStorageFailure(_ error: any Error) -> Bool {
        error is DatabaseError
    }

    /// Whether `error` says the file is damaged or no database at all: a backup is the way back.
    public static func isDamage(_ error: any Error) -> Bool {
        guard let error = error as? DatabaseError else { return false }
        return [ResultCode.SQLITE_CORRUPT, .SQLITE_NOTADB].contains(error.resultCode)
    }

    /// A short human explanation of a database error, without SQL.
    package static func describe(_ error: any Error) -> String {
        if let error = error as? DatabaseError {
            return error.message ?? "SQLite error \(error.resultCode.rawValue)"
        }
        return String(describing: error)
    }

    /// True when the database answers a trivial query.
    public func isHealthy() async -> Bool {
        (try? await writer.read { db in try Int.fetchOne(db, sql: "SELECT 1") }) == 1
    }

    /// Writes a consistent copy of the database, taken online, to a new file at `path`, mode 0660
    /// (``StateFiles/dataMode``): it holds the same keys as the database.
    public func backup(to path: String) throws(WaitlistError) {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw WaitlistError(.usage, "\(path) already exists; give a new file name for the backup.")
        }
        let temporary = path + ".partial"
        do {
            try? FileManager.default.removeItem(atPath: temporary)
            // An empty file of the database's mode: SQLite would make it 0644 masked by the umask.
            try StateFiles.createEmptyFile(atPath: temporary, mode: StateFiles.dataMode)
            let destination = try DatabaseQueue(path: temporary)
            try writer.backup(to: destination)
            try destination.close()
            try FileManager.default.moveItem(atPath: temporary, toPath: path)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw WaitlistError(.unavailable, "Cannot write the backup to \(path): \(Self.describe(error)).")
        }
    }
}
