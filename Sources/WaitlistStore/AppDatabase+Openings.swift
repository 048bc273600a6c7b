import Foundation
import GRDB
import WaitlistCore

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

    /// How `open` sizes its transactions: each chunk as many announcements as fit in about 25 ms
    /// of the write lock on this machine, so that a signup waiting behind a chunk waits
    /// milliseconds however fast the disk and CPU are, while a million still take seconds. (A fixed 5,000 held the lock some 42 ms in a fast hour of the benchmark
    /// machine and 75 ms in a slow one, and the signups' p99 while a million were queued followed
    /// it: 97 ms in the slow hour, 46 ms with chunks of 25 ms, a million queued in 11.2 s against 9.8.)
    public static let queuingChunks = QueuingChunks.timed(target: 0.025)

    /// How long `open` leaves the write lock free after each chunk: several of a waiting
    /// connection's looks (``busyPollInterval``), so the server's signups get in between chunks
    /// rather than by luck (a million queued alone in 11.2 s at about 30 ms a chunk with its pause
    /// makes some 370 chunks: about 2 s of pauses).
    public static let pauseBetweenChunks: TimeInterval = 0.005

    /// Opens enrolment for `date` and queues one announcement per confirmed subscriber in short
    /// transactions (``queuingChunks``), recording after each how far it got. Run
    /// again for the same date, it resumes the same opening and queues only those who have none
    /// yet, so nobody is mailed twice; an interrupted run is also completed by
    /// ``completeInterruptedQueuing(now:)``.
    ///
    /// - Parameters:
    ///   - chunks: how many announcements each transaction queues.
    ///   - chunkLimit: stop after this many chunks, as a crash would (for tests); `nil` queues everyone.
    ///   - pause: how long the write lock is left free between chunks.
    /// - Throws: `.data` when enrolment is open already for another date.
    public func open(
        courseId: Int64, date: String, enrolURL: String, now: Date = Date(), chunks: QueuingChunks = queuingChunks, chunkLimit: Int? = nil,
        pause: TimeInterval = pauseBetweenChunks
    ) async throws -> OpeningResult {
        let (opening, isNew) = try await writer.write { db -> (Opening, Bool) in
            var opening: Opening
            var isNew = false
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
            // An interrupted run goes on from where it got; a finished one is checked from the start.
            try db.execute(
                sql: "INSERT OR IGNORE INTO opening_queue (openingId, queuedThrough) VALUES (?, 0)", arguments: [opening.id])
            return (opening, isNew)
        }
        let queued = try await queueAnnouncements(openingId: opening.id!, now: now, chunks: chunks, chunkLimit: chunkLimit, pause: pause)
        return OpeningResult(opening: opening, isNew: isNew, newlyQueued: queued)
    }

    /// Completes the queuing of every open opening whose `open` was interrupted.
    ///
    /// - Returns: how many announcements were queued.
    @discardableResult
    public func completeInterruptedQueuing(now: Date = Date()) async throws -> Int {
        let openings = try await writer.read { db in
            try Int64.fetchAll(
                db,
                sql: """
                    SELECT q.openingId FROM opening_queue q JOIN opening o ON o.id = q.openingId
                    WHERE o.closedAt IS NULL ORDER BY q.openingId
                    """)
        }
        var queued = 0
        for openingId in openings {
            queued += try await queueAnnouncements(
                openingId: openingId, now: now, chunks: Self.queuingChunks, chunkLimit: nil, pause: Self.pauseBetweenChunks)
        }
        return queued
    }

    /// Queues the announcements of an opening chunk by chunk from its recorded progress, each
    /// chunk and its progress in one short transaction; the progress row goes with the last chunk.
    /// Between chunks it leaves the write lock free for `pause`, waiting without holding a thread.
    private func queueAnnouncements(
        openingId: Int64, now: Date, chunks: QueuingChunks, chunkLimit: Int?, pause: TimeInterval
    ) async throws -> Int {
        var queued = 0
        var chunkCount = 0
        var sizer = chunks.sizer()
        while chunkLimit.map({ chunkCount < $0 }) ?? true {
            chunkCount += 1
            let chunkSize = sizer.size
            // The transaction is IMMEDIATE: from its first statement it holds the write lock.
            let (isDone, chunkQueued, locked) = try await writer.write { db -> (Bool, Int, Double) in
                let locked = chunks.clock()
                guard
                    let progress = try Row.fetchOne(
                        db,
                        sql: """
                            SELECT q.queuedThrough, o.courseId, o.closedAt FROM opening_queue q JOIN opening o ON o.id = q.openingId
                            WHERE q.openingId = ?
                            """, arguments: [openingId])
                else { return (true, 0, locked) }
                let from: Int64 = progress["queuedThrough"]
                let courseId: Int64 = progress["courseId"]
                let chunk = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT count(*) AS n, max(id) AS through FROM (
                            SELECT id FROM subscriber WHERE courseId = ? AND status = 'confirmed' AND id > ? ORDER BY id LIMIT ?)
                        """, arguments: [courseId, from, chunkSize])!
                let count: Int = chunk["n"]
                var chunkQueued = 0
                if (progress["closedAt"] as Date?) == nil, let through = chunk["through"] as Int64? {
                    try db.execute(
                        sql: """
                            INSERT OR IGNORE INTO outbox (kind, subscriberId, openingId, state, nextAttemptAt, createdAt)
                            SELECT 'announcement', id, ?, 'queued', ?, ? FROM subscriber
                            WHERE courseId = ? AND status = 'confirmed' AND id > ? AND id <= ?
                            """, arguments: [openingId, now, now, courseId, from, through])
                    chunkQueued = db.changesCount
                    try db.execute(
                        sql: "UPDATE opening_queue SET queuedThrough = ? WHERE openingId = ?", arguments: [through, openingId])
                }
                guard count < chunkSize || (progress["closedAt"] as Date?) != nil else { return (false, chunkQueued, locked) }
                try db.execute(sql: "DELETE FROM opening_queue WHERE openingId = ?", arguments: [openingId])
                return (true, chunkQueued, locked)
            }
            queued += chunkQueued
            if isDone { break }
            sizer.took(chunks.clock() - locked)  // the lock held, not the wait for it: signups sharing it do not shrink it
            try await Task.sleep(for: .seconds(pause))
        }
        return queued
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
            try db.execute(sql: "DELETE FROM opening_queue WHERE openingId = ?", arguments: [opening.id])
            try Self.applySentRecords(db)
            try db.execute(
                sql:
                    "UPDATE outbox SET state = 'cancelled' WHERE openingId = ? AND state = 'queued'",
                arguments: [opening.id])
            return opening
        }
    }
}
