import Foundation
import GRDB
import WaitlistCore

extension AppDatabase {
    // MARK: - The guarded file

    /// The tables a waitlist database holds besides SQLite's own (`sqlite_*`), the migrator's
    /// (`grdb_migrations`) and Litestream's (`_litestream_*`).
    static let ownTables: Set<String> = [
        "course", "opening", "subscriber", "token", "outbox", "secret", "outbox_sent", "sending_role", "consent_event", "spent_stamp",
        "opening_queue", "purged_confirmations",
    ]

    /// Looks at an existing file before it is opened for use (and so switched to WAL, and migrated):
    /// refuses a file that is not an SQLite database, holds tables that are not the waitlist's, or
    /// was migrated by a newer version, leaving it exactly as it was.
    ///
    /// - Throws: ``WaitlistError`` of kind `.data` (exit 65) with one sentence.
    static func inspect(path: String) throws(WaitlistError) {
        guard let size = try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int, size > 0 else { return }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(10)
        let found: (tables: [String], migrations: [String])
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            defer { try? queue.close() }  // read-only: closing can lose nothing
            found = try queue.read { db in
                let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
                let migrations =
                    tables.contains("grdb_migrations") ? try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations") : []
                return (tables, migrations)
            }
        } catch let error as DatabaseError where [.SQLITE_NOTADB, .SQLITE_CORRUPT].contains(error.resultCode) {
            throw WaitlistError(.data, "\(path) is not a waitlist database, or it is damaged: \(describe(error)). It was left as it was.")
        } catch {
            throw WaitlistError(.unavailable, "Cannot read the database \(path): \(describe(error)).")
        }
        let foreign = found.tables.filter {
            !ownTables.contains($0) && $0 != "grdb_migrations" && !$0.hasPrefix("sqlite_") && !$0.hasPrefix("_litestream_")
        }
        guard foreign.isEmpty else {
            throw WaitlistError(
                .data,
                "\(path) belongs to another program (it has tables the waitlist does not know: \(foreign.sorted().joined(separator: ", "))); "
                    + "it was left as it was: set WAITLIST_DATABASE to a file of the waitlist's own.")
        }
        let known = Set(migrator.migrations)
        if let unknown = found.migrations.first(where: { !known.contains($0) }) {
            throw WaitlistError(
                .data,
                "\(path) was written by a newer version of the waitlist (its schema step \"\(unknown)\" is unknown to this one); "
                    + "run that version or a newer one.")
        }
    }

    /// `PRAGMA quick_check`, which `serve` runs at start: a damaged file is refused with one sentence.
    public func checkIntegrity(path: String) throws(WaitlistError) {
        let result: [String]
        do {
            result = try writer.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check") }
        } catch {
            throw WaitlistError(.data, "The database \(path) is damaged: \(Self.describe(error)). Restore it from a backup.")
        }
        guard result == ["ok"] else {
            throw WaitlistError(
                .data, "The database \(path) is damaged (\(result.first ?? "no answer")). Restore it from a backup.")
        }
    }
}
