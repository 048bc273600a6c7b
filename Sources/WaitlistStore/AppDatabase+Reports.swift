import Foundation
import GRDB
import WaitlistCore

/// The counts `waitlist status` prints for one course.
public struct CourseStatus: Codable, Sendable, Equatable {
    public var course: String
    public var title: String
    /// The date enrolment is open for, or `nil` while waiting.
    public var openFor: String?
    public var pending: Int
    public var confirmed: Int
    public var unsubscribed: Int
    public var bounced: Int
    /// Mail (confirmations and announcements) by state.
    public var mailQueued: Int
    public var mailSent: Int
    public var mailFailed: Int
}

/// One subscriber with the consent record, as `waitlist export` writes it.
public struct ConsentRecord: Codable, Sendable, Equatable {
    public var email: String
    public var course: String
    public var language: String
    public var signedUpAt: Date
    public var signupSource: String?
    public var signupIP: String?
    public var signupUserAgent: String?
    public var confirmedAt: Date?
    public var confirmIP: String?
    public var confirmUserAgent: String?
    /// Every signup, confirmation, unsubscription and bounce, oldest first (the fields above say the latest).
    public var events: [ConsentEvent] = []
    /// Where the subscriber stands now.
    public var status: SubscriberStatus = .confirmed
    public var unsubscribedAt: Date?
    public var bouncedAt: Date?
    /// For a bounced subscriber, the refusing server's reply, without addresses.
    public var bounceReply: String?
}

extension AppDatabase {
    // MARK: - Reports

    /// Subscriber and mail counts for a course. A message recorded sent by a sender's lane counts
    /// as sent at once, before the record is folded into the outbox (and after any crash).
    public func status(courseId: Int64) throws -> CourseStatus {
        try writer.read { db in
            guard let course = try Course.fetchOne(db, key: courseId) else {
                throw WaitlistError(.notFound, "The course no longer exists.")
            }
            var people: [SubscriberStatus: Int] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT status, count(*) AS n FROM subscriber WHERE courseId = ? GROUP BY status", arguments: [courseId])
            {
                people[row["status"] as SubscriberStatus] = row["n"]
            }
            var mail: [OutboxState: Int] = [:]
            for row in try Row.fetchAll(
                db,
                sql: """
                    SELECT CASE WHEN r.outboxId IS NULL THEN o.state ELSE 'sent' END AS state, count(*) AS n
                    FROM outbox o JOIN subscriber s ON s.id = o.subscriberId LEFT JOIN outbox_sent r ON r.outboxId = o.id
                    WHERE s.courseId = ? GROUP BY 1
                    """, arguments: [courseId])
            {
                mail[row["state"] as OutboxState] = row["n"]
            }
            return CourseStatus(
                course: course.slug, title: course.title, openFor: try Self.currentOpening(db, courseId: courseId)?.date,
                pending: people[.pending, default: 0], confirmed: people[.confirmed, default: 0],
                unsubscribed: people[.unsubscribed, default: 0], bounced: people[.bounced, default: 0],
                mailQueued: mail[.queued, default: 0], mailSent: mail[.sent, default: 0], mailFailed: mail[.failed, default: 0])
        }
    }

    /// Calls `body` with each confirmed subscriber of a course (or of all courses), in signup
    /// order, without loading the whole list into memory.
    public func forEachConfirmed(courseId: Int64?, _ body: (ConsentRecord) throws -> Void) throws {
        try forEachSubscriber(courseId: courseId, status: .confirmed, body)
    }

    /// Calls `body` with each subscriber of a course (or of all courses) in this state (`nil`:
    /// every subscriber), in signup order, without loading the whole list into memory.
    public func forEachSubscriber(courseId: Int64?, status: SubscriberStatus?, _ body: (ConsentRecord) throws -> Void) throws {
        try writer.read { db in
            let cursor = try Row.fetchCursor(
                db,
                sql: """
                    SELECT s.*, c.slug FROM subscriber s JOIN course c ON c.id = s.courseId
                    WHERE (?2 IS NULL OR s.status = ?2) AND (?1 IS NULL OR s.courseId = ?1) ORDER BY s.id
                    """, arguments: [courseId, status])
            let events = try db.cachedStatement(
                sql: "SELECT kind, at, source, ip, userAgent FROM consent_event WHERE subscriberId = ? ORDER BY at, id")
            while let row = try cursor.next() {
                try body(
                    ConsentRecord(
                        email: row["email"], course: row["slug"], language: row["language"], signedUpAt: row["createdAt"],
                        signupSource: row["signupSource"], signupIP: row["signupIP"], signupUserAgent: row["signupUserAgent"],
                        confirmedAt: row["confirmedAt"], confirmIP: row["confirmIP"], confirmUserAgent: row["confirmUserAgent"],
                        events: try ConsentEvent.fetchAll(events, arguments: [row["id"] as Int64]), status: row["status"],
                        unsubscribedAt: row["unsubscribedAt"], bouncedAt: row["bouncedAt"], bounceReply: row["bounceReply"]))
            }
        }
    }

    /// Every event of an address's consent record, in every course, oldest first.
    public func consentEvents(email: String) throws -> [ConsentEvent] {
        try writer.read { db in
            try ConsentEvent.fetchAll(
                db,
                sql: """
                    SELECT e.kind, e.at, e.source, e.ip, e.userAgent FROM consent_event e JOIN subscriber s ON s.id = e.subscriberId
                    WHERE s.emailKey = ? ORDER BY e.at, e.id
                    """, arguments: [EmailAddress.key(of: email)])
        }
    }

    /// What ``forget(email:)`` erased.
    public struct Erasure: Sendable, Equatable {
        /// Subscriptions erased (a count kept of a purged signup is what remained of one, and counts as one).
        public var subscriptions: Int
        /// Whether the write-ahead log was folded into the file and emptied, so that no copy of the
        /// erased rows is left in it. `false` when another connection kept reading old pages for
        /// longer than the busy timeout: the rows are gone from the database, but their old
        /// copies stay in the log until a later checkpoint.
        public var logCleared: Bool
    }

    /// Erases every row about an address, in every course: the subscriber, its tokens, its mail,
    /// and the count of confirmation mails kept of a signup purged unconfirmed; then folds the
    /// write-ahead log into the file and empties it, also when nothing was found (a second run
    /// finishes what a first could not).
    public func forget(email: String) throws -> Erasure {
        let key = EmailAddress.key(of: email)
        return try writer.writeWithoutTransaction { db in
            // Overwrite the deleted rows' bytes, and fold the WAL back into the file, so that the
            // address does not linger in free pages.
            try db.execute(sql: "PRAGMA secure_delete = ON")
            // Only what this connection deletes is concerned; failing to switch it back costs
            // later deletes some writes, and loses nothing.
            defer { try? db.execute(sql: "PRAGMA secure_delete = OFF") }
            var erased = 0
            try db.inTransaction {
                erased = try Subscriber.filter(Subscriber.Columns.emailKey == key).deleteAll(db)
                erased += try Self.forgetConfirmationCounts(db, emailKey: key)
                return .commit
            }
            do {
                _ = try db.checkpoint(.truncate)
                return Erasure(subscriptions: erased, logCleared: true)
            } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED {
                return Erasure(subscriptions: erased, logCleared: false)
            }
        }
    }
}
