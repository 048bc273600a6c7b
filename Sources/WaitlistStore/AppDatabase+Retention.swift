import Crypto
import Foundation
import GRDB
import WaitlistCore

extension AppDatabase {
    /// How long an unconfirmed signup is kept after its last confirmation mail was queued.
    public static let unconfirmedRetention: TimeInterval = 7 * 24 * 3600
    /// How long, after its last confirmation mail, the count of a purged signup's confirmation
    /// mails is kept (with the keyed hash of its address), so that the cap of three per address and
    /// course holds across purges.
    public static let purgedConfirmationsRetention: TimeInterval = 365 * 24 * 3600
    /// The name of the key of ``addressDigest(_:keyed:)`` in the secret table.
    static let addressDigestSecretName = "address-digest"

    /// What one purge removed.
    public struct PurgeResult: Sendable, Equatable {
        /// Signups never confirmed whose last confirmation mail is over 7 days old.
        public var signups: Int
        /// Confirmation tokens past their expiry.
        public var tokens: Int
    }

    /// Deletes what the service promises not to keep: signups that were never confirmed (pending,
    /// cancelled or bounced) once 7 days have passed since their last confirmation mail, with their
    /// tokens and mail rows; every expired confirmation token; and the spent form stamps that
    /// would no longer be accepted anyway.
    ///
    /// Of each signup deleted, only what the per-course cap on confirmation mails needs is kept:
    /// the HMAC of its address's canonical key, its course and how many confirmation mails it
    /// got, for ``purgedConfirmationsRetention`` after the last of them; older counts are deleted.
    @discardableResult
    public func purgeUnconfirmed(now: Date = Date()) throws -> PurgeResult {
        let cutoff = now.addingTimeInterval(-Self.unconfirmedRetention)
        return try writer.write { db in
            let purged = try Row.fetchAll(
                db,
                sql: """
                    SELECT s.id, s.courseId, s.emailKey, count(o.id) AS mails, max(o.createdAt) AS lastMailedAt FROM subscriber s
                    LEFT JOIN outbox o ON o.subscriberId = s.id AND o.kind = 'confirmation' AND o.state != 'cancelled'
                    WHERE s.confirmedAt IS NULL AND s.createdAt < :cutoff
                    AND NOT EXISTS (
                        SELECT 1 FROM outbox r WHERE r.subscriberId = s.id AND (r.createdAt >= :cutoff OR r.state = 'queued'))
                    GROUP BY s.id
                    """, arguments: ["cutoff": cutoff])
            try Self.keepConfirmationCounts(db, of: purged)
            try db.execute(
                sql: "DELETE FROM subscriber WHERE id IN (SELECT value FROM json_each(?))",
                arguments: ["[" + purged.map { String($0["id"] as Int64) }.joined(separator: ",") + "]"])
            let signups = db.changesCount
            try db.execute(sql: "DELETE FROM token WHERE purpose = 'confirm' AND expiresAt < ?", arguments: [now])
            let tokens = db.changesCount
            try db.execute(sql: "DELETE FROM spent_stamp WHERE expiresAt < ?", arguments: [now])
            try db.execute(sql: "DELETE FROM purged_confirmations WHERE keptUntil <= ?", arguments: [now])
            return PurgeResult(signups: signups, tokens: tokens)
        }
    }

    // MARK: - Confirmation counts kept after a purge

    /// The keyed hash (HMAC-SHA256) of an address's canonical key (``EmailAddress/key``): the same
    /// address gives the same 32 bytes, and without the key, kept in the database, nobody can tell
    /// which address they stand for by hashing guesses. `hmac` is ``addressHMAC(_:)``'s, fed
    /// nothing yet: a copy of it starts from the key without hashing the key again (a signup pays
    /// only for its address).
    static func addressDigest(_ emailKey: String, keyed hmac: HMAC<SHA256>) -> [UInt8] {
        var hmac = hmac
        var emailKey = emailKey
        emailKey.withUTF8 { hmac.update(data: UnsafeRawBufferPointer($0)) }
        return Array(hmac.finalize())
    }

    /// The HMAC of ``addressDigest(_:keyed:)``, keyed with the database's key for it.
    static func addressHMAC(_ db: Database) throws -> HMAC<SHA256> {
        HMAC(key: SymmetricKey(data: try secret(db, named: addressDigestSecretName)))
    }

    /// Adds the confirmation mails of signups about to be purged (rows of `id`, `courseId`,
    /// `emailKey`, `mails`, `lastMailedAt`) to their addresses' counts.
    private static func keepConfirmationCounts(_ db: Database, of purged: [Row]) throws {
        guard purged.contains(where: { $0["mails"] as Int > 0 }) else { return }
        let hmac = try addressHMAC(db)
        let keep = try db.cachedStatement(
            sql: """
                INSERT INTO purged_confirmations (addressDigest, courseId, mails, keptUntil) VALUES (?, ?, ?, ?)
                ON CONFLICT (addressDigest, courseId) DO UPDATE SET
                    mails = mails + excluded.mails, keptUntil = max(keptUntil, excluded.keptUntil)
                """)
        for row in purged where row["mails"] as Int > 0 {
            let lastMailedAt: Date = row["lastMailedAt"]
            try keep.execute(arguments: [
                Data(addressDigest(row["emailKey"], keyed: hmac)), row["courseId"] as Int64, row["mails"] as Int,
                lastMailedAt.addingTimeInterval(purgedConfirmationsRetention),
            ])
        }
    }

    /// Deletes the counts kept of an address's purged signups, in every course (`forget`).
    ///
    /// - Returns: how many courses' counts were deleted.
    static func forgetConfirmationCounts(_ db: Database, emailKey: String) throws -> Int {
        try db.execute(
            sql: "DELETE FROM purged_confirmations WHERE addressDigest = ?",
            arguments: [Data(addressDigest(emailKey, keyed: try addressHMAC(db)))])
        return db.changesCount
    }

    /// Spends a form's stamp in the transaction of the signup it admits: `true` the first time,
    /// `false` when its page's form signed someone up before (a replay). Remembered by its nonce
    /// until its expiry, after which the stamp is refused as too old anyway.
    static func spendFormStamp(_ db: Database, _ stamp: FormStamp.Parts) throws -> Bool {
        try db.cachedStatement(sql: "INSERT OR IGNORE INTO spent_stamp (stamp, expiresAt) VALUES (?, ?)")
            .execute(arguments: [stamp.nonce, stamp.expiry])
        return db.changesCount == 1
    }
}
