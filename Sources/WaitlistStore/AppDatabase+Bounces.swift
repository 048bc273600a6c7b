import Foundation
import GRDB
import WaitlistCore

/// What a bounce that arrived later did (``AppDatabase/recordLateBounce(outboxId:verdict:now:)``).
public enum LateBounceOutcome: Sendable, Equatable {
    /// The subscriber is now bounced and gets nothing more.
    case bounced(email: String)
    /// A permanent failure for a subscriber already bounced or unsubscribed: nothing changed.
    case alreadyStopped
    /// A delay: only the message's count of delay notices went up, to this.
    case delayCounted(Int)
    /// The report says nothing about a failure: nothing changed.
    case ignored
    /// No message of that number (forgotten, or never ours): nothing changed.
    case unknownMessage
}

extension AppDatabase {
    // MARK: - Bounces

    /// Records what a bounce that came back to the message `outboxId`'s envelope sender says: a
    /// permanent failure marks its subscriber bounced, as a refusal at `RCPT TO` does; a delay
    /// only counts.
    public func recordLateBounce(outboxId: Int64, verdict: BounceVerdict, now: Date = Date()) throws -> LateBounceOutcome {
        try writer.write { db in
            guard let message = try OutboxMessage.fetchOne(db, key: outboxId),
                let subscriber = try Subscriber.fetchOne(db, key: message.subscriberId)
            else { return .unknownMessage }
            switch verdict {
            case .permanent(let diagnostic):
                guard subscriber.status != .bounced, subscriber.status != .unsubscribed else { return .alreadyStopped }
                try Self.markBounced(db, subscriberId: subscriber.id!, reply: diagnostic, now: now)
                return .bounced(email: subscriber.email)
            case .delayed:
                try db.execute(sql: "UPDATE outbox SET delayNotices = delayNotices + 1 WHERE id = ?", arguments: [outboxId])
                return .delayCounted(try Int.fetchOne(db, sql: "SELECT delayNotices FROM outbox WHERE id = ?", arguments: [outboxId]) ?? 0)
            case .other:
                return .ignored
            }
        }
    }

    /// Marks a subscriber bounced unless it unsubscribed: the consent record gets a bounce, the
    /// refusing server's `reply` is kept (without addresses) and its queued mail is cancelled.
    static func markBounced(_ db: Database, subscriberId: Int64, reply: String, now: Date) throws {
        guard var subscriber = try Subscriber.fetchOne(db, key: subscriberId), subscriber.status != .unsubscribed else { return }
        subscriber.status = .bounced
        subscriber.bouncedAt = now
        try subscriber.update(db)
        try db.execute(
            sql: "UPDATE subscriber SET bounceReply = ? WHERE id = ?",
            arguments: [String(RelayReply.withoutAddresses(reply).prefix(1000)), subscriberId])
        try recordEvent(db, .bounce, subscriberId: subscriberId, now: now)
        try cancelQueuedMail(db, subscriberId: subscriberId)
    }

    /// How many delay notices came back for a message (tests and reports).
    public func delayNotices(outboxId: Int64) throws -> Int {
        try writer.read { db in try Int.fetchOne(db, sql: "SELECT delayNotices FROM outbox WHERE id = ?", arguments: [outboxId]) ?? 0 }
    }
}
