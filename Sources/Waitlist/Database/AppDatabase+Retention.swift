import Foundation
import GRDB

extension AppDatabase {
    /// How long an unconfirmed signup is kept after its last confirmation mail was queued.
    public static let unconfirmedRetention: TimeInterval = 7 * 24 * 3600

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
    @discardableResult
    public func purgeUnconfirmed(now: Date = Date()) throws -> PurgeResult {
        let cutoff = now.addingTimeInterval(-Self.unconfirmedRetention)
        return try writer.write { db in
            try db.execute(
                sql: """
                    DELETE FROM subscriber
                    WHERE confirmedAt IS NULL AND createdAt < :cutoff
                    AND NOT EXISTS (
                        SELECT 1 FROM outbox o WHERE o.subscriberId = subscriber.id AND (o.createdAt >= :cutoff OR o.state = 'queued'))
                    """, arguments: ["cutoff": cutoff])
            let signups = db.changesCount
            try db.execute(sql: "DELETE FROM token WHERE purpose = 'confirm' AND expiresAt < ?", arguments: [now])
            let tokens = db.changesCount
            try db.execute(sql: "DELETE FROM spent_stamp WHERE expiresAt < ?", arguments: [now])
            return PurgeResult(signups: signups, tokens: tokens)
        }
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
