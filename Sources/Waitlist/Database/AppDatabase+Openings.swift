import Foundation
import GRDB

/// What `open` did.
public struct OpeningResult: Sendable, Equatable {
    public var opening: Opening
    /// False when enrolment was open already for this date and the same opening was resumed.
    public var isNew: Bool
    /// Announcements queued by this call (confirmed subscribers who had none for this opening).
    public var newlyQueued: Int
}

extension AppDatabase {
    // MARK: - Opening and closing enrolment

    /// Checks a `YYYY-MM-DD` date and returns it as written.
    public static func validateDate(_ text: String) throws(WaitlistError) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard text.count == 10, parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
            let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]),
            let date = calendar.date(from: DateComponents(year: year, month: month, day: day)),
            calendar.component(.month, from: date) == month, calendar.component(.day, from: date) == day
        else {
            throw WaitlistError(.usage, "The date must be a real day written YYYY-MM-DD, such as 2027-03-15 (got \"\(text)\").")
        }
        return text
    }

    /// How many confirmed subscribers the next `open` would mail (those without an announcement
    /// for the opening in progress, if any).
    public func recipientCount(courseId: Int64) throws -> Int {
        try writer.read { db in
            // While waiting, everyone confirmed; while open, those the opening has not queued yet.
            let openingId = try Self.currentOpening(db, courseId: courseId)?.id
            return try Int.fetchOne(
                db,
                sql: """
                    SELECT count(*) FROM subscriber s
                    WHERE s.courseId = ? AND s.status = 'confirmed'
                    AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.subscriberId = s.id AND o.openingId = ?)
                    """, arguments: [courseId, openingId]) ?? 0
        }
    }

    /// Opens enrolment for `date` and queues one announcement per confirmed subscriber, in one
    /// transaction. Run again for the same date, it resumes the same opening and queues only those
    /// who have none yet, so nobody is mailed twice.
    ///
    /// - Throws: `.data` when enrolment is open already for another date.
    public func open(courseId: Int64, date: String, enrolURL: String, now: Date = Date()) throws -> OpeningResult {
        try writer.write { db in
            var isNew = false
            var opening: Opening
            if let current = try Self.currentOpening(db, courseId: courseId) {
                guard current.date == date else {
                    throw WaitlistError(
                        .data, "Enrolment is open already for \(current.date); run `waitlist close` first to announce another date.")
                }
                opening = current
                if opening.enrolURL != enrolURL {
                    opening.enrolURL = enrolURL
                    try opening.update(db)
                }
            } else {
                opening = Opening(id: nil, courseId: courseId, date: date, enrolURL: enrolURL, openedAt: now, closedAt: nil)
                try opening.insert(db)
                isNew = true
            }
            try db.execute(
                sql: """
                    INSERT OR IGNORE INTO outbox (kind, subscriberId, openingId, state, nextAttemptAt, createdAt)
                    SELECT 'announcement', id, ?, 'queued', ?, ? FROM subscriber WHERE courseId = ? AND status = 'confirmed'
                    """, arguments: [opening.id, now, now, courseId])
            return OpeningResult(opening: opening, isNew: isNew, newlyQueued: db.changesCount)
        }
    }

    /// Closes enrolment: the course page collects signups again, and announcements of the closed
    /// opening that have not gone out are cancelled.
    ///
    /// - Returns: the opening that was closed, or `nil` when enrolment was not open.
    @discardableResult
    public func close(courseId: Int64, now: Date = Date()) throws -> Opening? {
        try writer.write { db in
            guard var opening = try Self.currentOpening(db, courseId: courseId) else { return nil }
            opening.closedAt = now
            try opening.update(db)
            try Self.applySentRecords(db)
            try db.execute(
                sql:
                    "UPDATE outbox SET state = 'cancelled' WHERE openingId = ? AND state = 'queued'",
                arguments: [opening.id])
            return opening
        }
    }
}
