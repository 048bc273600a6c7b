import Foundation
import GRDB
import WaitlistCore

extension AppDatabase {
    // MARK: - The sending role

    /// Takes the sending role for `owner` until `now + lease`, if nobody holds it or its holder's
    /// lease ran out (or `owner` holds it already).
    ///
    /// - Returns: `nil` when `owner` now holds the role; otherwise who does.
    public func takeSendingRole(owner: String, lease: TimeInterval, now: Date = Date()) throws -> SendingRoleHolder? {
        try writer.write { db in
            if let holder = try Self.sendingRoleHolder(db, now: now), holder.owner != owner { return holder }
            try db.execute(
                sql: "INSERT OR REPLACE INTO sending_role (id, owner, expiresAt) VALUES (1, ?, ?)",
                arguments: [owner, StoredDate.value(now.addingTimeInterval(lease))])
            return nil
        }
    }

    /// Extends `owner`'s hold on the role to `now + lease`.
    ///
    /// - Returns: `false` when `owner` does not hold the role: another sender took it over once
    ///   its lease ran out. A lease that ran out with nobody taking over is still `owner`'s.
    public func renewSendingRole(owner: String, lease: TimeInterval, now: Date = Date()) throws -> Bool {
        try writer.write { db in
            try db.execute(
                sql: "UPDATE sending_role SET expiresAt = ? WHERE owner = ?",
                arguments: [StoredDate.value(now.addingTimeInterval(lease)), owner])
            return db.changesCount == 1
        }
    }

    /// Gives the role up, so that the next sender need not wait for the lease to run out. Does
    /// nothing when `owner` does not hold it.
    public func releaseSendingRole(owner: String) throws {
        try writer.write { db in
            try db.execute(sql: "DELETE FROM sending_role WHERE owner = ?", arguments: [owner])
        }
    }

    /// Who holds the role now; `nil` when nobody does (or the holder's lease ran out).
    public func sendingRoleHolder(now: Date = Date()) throws -> SendingRoleHolder? {
        try writer.read { db in try Self.sendingRoleHolder(db, now: now) }
    }

    static func sendingRoleHolder(_ db: Database, now: Date) throws -> SendingRoleHolder? {
        guard let row = try Row.fetchOne(db, sql: "SELECT owner, expiresAt FROM sending_role WHERE id = 1") else { return nil }
        let holder = SendingRoleHolder(owner: row[0], expiresAt: row[1])
        return holder.expiresAt > now ? holder : nil
    }

    /// Throws ``SendingRoleLost`` unless `owner` holds the role at `now`: the first step of every
    /// write that only the sender may make.
    static func checkSendingRole(_ db: Database, owner: String, now: Date) throws {
        let held = try db.cachedStatement(sql: "SELECT 1 FROM sending_role WHERE id = 1 AND owner = ? AND expiresAt > ?")
        guard try Bool.fetchOne(held, arguments: [owner, StoredDate.value(now)]) != nil else { throw SendingRoleLost() }
    }
}
