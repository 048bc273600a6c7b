import Foundation
import GRDB
import WaitlistCore

/// The retry schedule for transient failures.
public enum RetryPolicy {
    /// The first retry comes after this long.
    public static let firstDelay: TimeInterval = 30
    /// Retries are never further apart than this.
    public static let longestDelay: TimeInterval = 15 * 60
    /// A message still undelivered this long after it was queued is given up.
    public static let giveUpAfter: TimeInterval = 3 * 24 * 3600

    /// The wait before the next try after `attempt` tries have failed (1-based): 30 s, 1, 2, 4, 8 min, then 15 min.
    public static func delay(afterAttempt attempt: Int) -> TimeInterval {
        let exponent = max(0, min(attempt - 1, 10))
        return min(longestDelay, firstDelay * Double(1 << exponent))
    }
}

extension AppDatabase {
    // MARK: - Claims

    /// Makes and stores the tokens of up to `limit` due messages, for the sender that holds the
    /// sending role as `owner`, and cancels any that should no longer go out (the subscriber left,
    /// enrolment closed). Messages in `excluding` (those the sender's lanes have in hand) are passed over.
    ///
    /// Only the holder of the role claims (``SendingRoleLost`` otherwise), so no two processes
    /// work on the same rows, and the lanes of the one that does share its claims in memory.
    /// The tokens' hashes are stored before any of the messages can go out. An unsubscribe token
    /// is keyed by its row (``Token/generate(keyedBy:)``), its hash written into the row the claim
    /// updates anyway; the hash of an earlier attempt's token moves to the token table, since that
    /// attempt may have arrived.
    public func claimDue(owner: String, limit: Int, excluding: Set<Int64> = [], now: Date = Date()) throws -> [Delivery] {
        try writer.write { db in
            try Self.checkSendingRole(db, owner: owner, now: now)
            // A row recorded sent (by this process or one that died) is never claimed again.
            try Self.applySentRecords(db)
            // Cached statements: a sender runs these for every batch, and preparing SQL costs more than running it.
            let claim = try db.cachedStatement(
                sql: """
                    UPDATE outbox SET attempts = attempts + 1
                    WHERE id IN (
                        SELECT id FROM outbox
                        WHERE state = 'queued' AND nextAttemptAt <= ? AND id NOT IN (SELECT value FROM json_each(?))
                        ORDER BY nextAttemptAt, id LIMIT ?)
                    RETURNING id, kind, subscriberId, openingId, attempts, unsubscribeHash IS NOT NULL
                    """)
            // Turning a date into its text costs more than most statements here: once, and fast.
            let nowValue = StoredDate.value(now)
            let rows = try Row.fetchAll(claim, arguments: [nowValue, Self.jsonList(excluding), limit])
            // Only what a mail needs of each recipient, all in one query.
            // Columns by position (as RETURNING lists them): finding them by name costs more than reading them.
            let subscriberIds = rows.map { $0[2] as Int64 }
            var recipients: [Int64: (courseId: Int64, email: String, language: Language, status: SubscriberStatus)] = [:]
            let recipientsQuery = try db.cachedStatement(
                sql: "SELECT id, courseId, email, language, status FROM subscriber WHERE id IN (SELECT value FROM json_each(?))")
            for row in try Row.fetchAll(recipientsQuery, arguments: [Self.jsonList(subscriberIds)]) {
                recipients[row[0]] = (row[1], row[2], row[3], row[4])
            }
            let cancel = try db.cachedStatement(sql: "UPDATE outbox SET state = 'cancelled' WHERE id = ?")
            let keepEarlierToken = try db.cachedStatement(
                sql: """
                    INSERT INTO token (subscriberId, purpose, hash, createdAt)
                    SELECT subscriberId, 'unsubscribe', unsubscribeHash, ? FROM outbox WHERE id = ? AND unsubscribeHash IS NOT NULL
                    """)
            let storeUnsubscribeHash = try db.cachedStatement(sql: "UPDATE outbox SET unsubscribeHash = ? WHERE id = ?")
            // A batch concerns one or two courses and openings: read each once.
            var courses: [Int64: Course] = [:]
            var openings: [Int64: Opening] = [:]
            var deliveries: [Delivery] = []
            for (row, subscriberId) in zip(rows, subscriberIds) {
                let id: Int64 = row[0]
                let kind: MailKind = row[1]
                let openingId: Int64? = row[3]
                guard let subscriber = recipients[subscriberId] else { continue }
                if courses[subscriber.courseId] == nil {
                    courses[subscriber.courseId] = try Course.fetchOne(
                        db.cachedStatement(sql: "SELECT * FROM course WHERE id = ?"), arguments: [subscriber.courseId])
                }
                if let openingId, openings[openingId] == nil {
                    openings[openingId] = try Opening.fetchOne(
                        db.cachedStatement(sql: "SELECT * FROM opening WHERE id = ?"), arguments: [openingId])
                }
                guard let course = courses[subscriber.courseId] else { continue }
                let opening = openingId.flatMap { openings[$0] }
                let stillWanted =
                    switch kind {
                    case .confirmation: subscriber.status == .pending
                    case .announcement: subscriber.status == .confirmed && opening?.closedAt == nil
                    }
                guard stillWanted else {
                    try cancel.execute(arguments: [id])
                    continue
                }
                let delivery = Delivery(
                    outboxId: id, kind: kind, recipient: subscriber.email, language: subscriber.language,
                    course: course, opening: opening, confirmToken: kind == .confirmation ? Token.generate() : nil,
                    unsubscribeToken: Token.generate(keyedBy: id), attempt: row[4])
                if let confirm = delivery.confirmToken {
                    try Self.storeConfirmToken(db, confirm, subscriberId: subscriberId, now: now, nowValue: nowValue)
                }
                if row[5] as Bool { try keepEarlierToken.execute(arguments: [nowValue, id]) }
                try storeUnsubscribeHash.execute(arguments: [delivery.unsubscribeToken.hash, id])
                deliveries.append(delivery)
            }
            return deliveries
        }
    }

    /// Gives back claimed messages that never went to the relay (the sender is stopping): the claim
    /// no longer counts as an attempt, and the unsubscribe token made for it, which nobody received,
    /// is dropped. Only while `owner` holds the role: once another sender has it, the rows are its own.
    public func releaseClaims(ids: [Int64], owner: String, now: Date = Date()) throws {
        guard !ids.isEmpty else { return }
        try writer.write { db in
            try Self.checkSendingRole(db, owner: owner, now: now)
            try db.execute(
                sql: """
                    UPDATE outbox SET attempts = max(attempts - 1, 0), unsubscribeHash = NULL
                    WHERE id IN (SELECT value FROM json_each(?)) AND state = 'queued'
                    """, arguments: [Self.jsonList(ids)])
        }
    }

    /// `[1,2,3]`, for `json_each`: one statement whatever the number of ids.
    private static func jsonList<S: Sequence<Int64>>(_ ids: S) -> String {
        "[" + ids.map(String.init).joined(separator: ",") + "]"
    }

    // MARK: - Outcomes

    /// Records that the relay accepted these messages, for the sender's lanes: one appended row a
    /// message in `outbox_sent`, in one transaction for the whole group (the sender's group commit).
    /// The outbox rows become `sent` when the records are applied (``applySentRecords()``), which
    /// every claim does first, so no claim takes a recorded row again.
    ///
    /// Unlike every other commit, these are not synced to the disk on their own (`synchronous =
    /// NORMAL` for this transaction only): the next synced commit or checkpoint takes them there. A
    /// crashed process loses none of them; a power cut may lose the last ones, and their messages go
    /// out again, as SMTP allows after any lost reply. A sync per group of four records cost a
    /// third of the fan-out's rate (`bench/run`: 4,799 messages a second against 7,000 and more).
    /// Claims stay synced, so the links in every message sent keep working.
    public func recordSent(ids: [Int64], now: Date = Date()) throws {
        guard !ids.isEmpty else { return }
        try writer.writeWithoutTransaction { db in
            try db.cachedStatement(sql: "PRAGMA synchronous = NORMAL").execute()
            defer { Self.restoreFullSync(db) }
            try db.inTransaction(.immediate) {
                let record = try db.cachedStatement(sql: "INSERT OR REPLACE INTO outbox_sent (outboxId, sentAt) VALUES (?, ?)")
                let nowValue = StoredDate.value(now)
                for id in ids { try record.execute(arguments: [id, nowValue]) }
                return .commit
            }
        }
    }

    /// Sets the writer's `synchronous` back to `FULL` before anything else is written on it: the
    /// next write may be a signup answered `202`, which must be on the disk. The writer runs one
    /// call at a time, and this one holds it until the setting is back.
    ///
    /// Setting the pragma only changes a flag of the connection (no I/O, no lock); it can fail only
    /// when the statement is interrupted as it runs, and an interruption ends with the statement,
    /// so it is tried again at once. Should it still fail, the process stops
    /// (`preconditionFailure`) rather than answer a signup it may lose: everything committed before
    /// is on the disk, and the service manager starts the process again with new connections.
    private static func restoreFullSync(_ db: Database) {
        var lastError: (any Error)?
        for _ in 0..<3 {
            do {
                try db.cachedStatement(sql: "PRAGMA synchronous = FULL").execute()
                return
            } catch {
                lastError = error
            }
        }
        preconditionFailure(
            "The database writer cannot sync its commits again (\(describe(lastError!))): stopping rather than lose signups.")
    }

    /// Marks every row recorded by ``recordSent(ids:now:)`` sent, and clears the records.
    public func applySentRecords() throws {
        try writer.write { db in try Self.applySentRecords(db) }
    }

    /// ``applySentRecords()`` within a write: claims and cancellations call it first, so that a
    /// message the relay accepted is neither sent again nor counted cancelled.
    static func applySentRecords(_ db: Database) throws {
        // Row by row through the primary key: a join would walk the index of every queued row.
        try db.cachedStatement(
            sql: """
                UPDATE outbox SET state = 'sent', lastError = NULL,
                    sentAt = (SELECT sentAt FROM outbox_sent WHERE outboxId = outbox.id)
                WHERE id IN (SELECT outboxId FROM outbox_sent)
                """
        ).execute()
        try db.cachedStatement(sql: "DELETE FROM outbox_sent").execute()
    }

    /// Records a failed attempt of the sender holding the role as `owner`: a permanent refusal marks
    /// the message failed and its subscriber bounced; any other failure schedules a retry with
    /// back-off, or gives up after three days. Throws ``SendingRoleLost`` when `owner` no longer
    /// holds the role (the message is then another sender's).
    ///
    /// - Returns: the row's new state.
    @discardableResult
    public func markFailed(id: Int64, error: DeliveryError, owner: String, now: Date = Date()) throws -> OutboxState {
        try writer.write { db in
            try Self.checkSendingRole(db, owner: owner, now: now)
            guard var message = try OutboxMessage.fetchOne(db, key: id), message.state == .queued else { return .failed }
            message.lastError = String(error.reason.prefix(1000))
            switch error {
            case .permanent:
                message.state = .failed
                try Self.markBounced(db, subscriberId: message.subscriberId, reply: error.reason, now: now)
            case .transient, .deferred, .senderRefused:
                if now.timeIntervalSince(message.createdAt) >= RetryPolicy.giveUpAfter {
                    message.state = .failed
                } else {
                    message.nextAttemptAt = now.addingTimeInterval(RetryPolicy.delay(afterAttempt: message.attempts))
                }
            }
            try message.update(db)
            return message.state
        }
    }

    /// Takes back permanent refusals that turned out to be the relay's fault: the messages are
    /// queued again, due now, and their subscribers are no longer bounced.
    ///
    /// - Returns: how many refusals were taken back.
    @discardableResult
    public func revertRefusals(outboxIds: [Int64], now: Date = Date()) throws -> Int {
        guard !outboxIds.isEmpty else { return 0 }
        return try writer.write { db in
            var retaken = 0
            for id in outboxIds {
                guard var message = try OutboxMessage.fetchOne(db, key: id), message.state == .failed else { continue }
                message.state = .queued
                message.nextAttemptAt = now
                try message.update(db)
                // It was no bounce: the consent record does not keep it either.
                try db.execute(
                    sql: """
                        DELETE FROM consent_event WHERE subscriberId = ?1 AND kind = 'bounce'
                        AND at = (SELECT bouncedAt FROM subscriber WHERE id = ?1 AND status = 'bounced')
                        """, arguments: [message.subscriberId])
                try db.execute(
                    sql: "UPDATE subscriber SET status = ?, bouncedAt = NULL, bounceReply = NULL WHERE id = ? AND status = 'bounced'",
                    arguments: [
                        message.kind == .announcement ? SubscriberStatus.confirmed : SubscriberStatus.pending, message.subscriberId,
                    ])
                // Mail that the bounce had cancelled goes back in the queue too.
                try db.execute(
                    sql: """
                        UPDATE outbox SET state = 'queued', nextAttemptAt = ?
                        WHERE subscriberId = ? AND state = 'cancelled' AND id != ?
                        AND (openingId IS NULL OR openingId IN (SELECT id FROM opening WHERE closedAt IS NULL))
                        """, arguments: [now, message.subscriberId, id])
                retaken += 1
            }
            return retaken
        }
    }

    // MARK: - What is left

    /// Whether any queued message is due now: what an idle sender asks every second, through the
    /// index of queued rows, without counting them. A message recorded sent is not due, as in
    /// ``backlog(now:)``.
    public func hasDueMail(now: Date = Date()) throws -> Bool {
        try writer.read { db in
            try Bool.fetchOne(
                db,
                sql: """
                    SELECT EXISTS (
                        SELECT 1 FROM outbox WHERE state = 'queued' AND nextAttemptAt <= ? AND id NOT IN (SELECT outboxId FROM outbox_sent))
                    """, arguments: [now]) ?? false
        }
    }

    /// Counts what is still queued, by whether it is due now. A message recorded sent and not yet
    /// folded into the outbox is not queued.
    public func backlog(now: Date = Date()) throws -> OutboxBacklog {
        try writer.read { db in
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT
                        count(*) FILTER (WHERE nextAttemptAt <= :now) AS ready,
                        count(*) FILTER (WHERE nextAttemptAt > :now) AS later,
                        min(nextAttemptAt) FILTER (WHERE nextAttemptAt > :now) AS nextAttemptAt
                    FROM outbox WHERE state = 'queued' AND id NOT IN (SELECT outboxId FROM outbox_sent)
                    """, arguments: ["now": now])!
            return OutboxBacklog(ready: row["ready"], later: row["later"], nextAttemptAt: row["nextAttemptAt"])
        }
    }

    /// Counts one opening's announcements by state, for the progress of `waitlist open`.
    public func announcementCounts(openingId: Int64) throws -> [OutboxState: Int] {
        try writer.read { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT CASE WHEN s.outboxId IS NULL THEN o.state ELSE 'sent' END AS state, count(*) AS n
                    FROM outbox o LEFT JOIN outbox_sent s ON s.outboxId = o.id WHERE o.openingId = ? GROUP BY 1
                    """, arguments: [openingId])
            var counts: [OutboxState: Int] = [:]
            for row in rows { counts[row["state"] as OutboxState] = row["n"] }
            return counts
        }
    }
}
