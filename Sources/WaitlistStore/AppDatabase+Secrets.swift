import Foundation
import GRDB
import WaitlistCore

extension AppDatabase {
    /// The secret key with this name, made from 256 random bits the first time it is asked for and
    /// kept in the database, so every process sharing the file uses the same key.
    public func secret(named name: String) throws -> Data {
        try writer.write { db in try Self.secret(db, named: name) }
    }

    /// ``secret(named:)`` inside a write of the caller's.
    static func secret(_ db: Database, named name: String) throws -> Data {
        if let existing = try Data.fetchOne(db.cachedStatement(sql: "SELECT value FROM secret WHERE name = ?"), arguments: [name]) {
            return existing
        }
        let key = Data(SecureRandom.bytes(32))
        try db.execute(sql: "INSERT INTO secret (name, value, createdAt) VALUES (?, ?, ?)", arguments: [name, key, Date()])
        return key
    }
}
