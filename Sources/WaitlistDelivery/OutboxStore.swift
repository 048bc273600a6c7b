import Foundation
import WaitlistCore
import WaitlistMail

/// What the sender needs of the database: the outbox, and the sending role that lets one process
/// at a time send from it. The sender owns this port; the service plugs the SQLite store into it
/// (`AppDatabase`, in the `Waitlist` module), and a test may plug in another.
///
/// Every call blocks until the database has answered; the sender makes them from its own threads.
public protocol OutboxStore: Sendable {
    /// Whether any queued message is due at `now`.
    func hasDueMail(now: Date) throws -> Bool
    /// What is left in the outbox: due now, and due later.
    func backlog(now: Date) throws -> OutboxBacklog

    /// Takes the sending role for `owner` until `now + lease`, if nobody holds it or its holder's
    /// lease ran out (or `owner` holds it already). Returns `nil` when `owner` now holds it;
    /// otherwise who does.
    func takeSendingRole(owner: String, lease: TimeInterval, now: Date) throws -> SendingRoleHolder?
    /// Extends `owner`'s hold to `now + lease`; `false` when another sender took the role over.
    func renewSendingRole(owner: String, lease: TimeInterval, now: Date) throws -> Bool
    /// Gives the role up, so that the next sender need not wait for the lease to run out.
    func releaseSendingRole(owner: String) throws

    /// Claims up to `limit` due messages, none of `excluding`, for the sender holding the role as
    /// `owner`, with the tokens of their links stored before any of them can go out. Throws
    /// ``SendingRoleLost`` when `owner` does not hold the role.
    func claimDue(owner: String, limit: Int, excluding: Set<Int64>, now: Date) throws -> [Delivery]
    /// Records that the relay accepted these messages; a recorded message is never claimed again.
    func recordSent(ids: [Int64], now: Date) throws
    /// Folds the records of ``recordSent(ids:now:)`` into the outbox's states.
    func applySentRecords() throws
    /// Records a failed attempt: a permanent refusal fails the message and bounces its subscriber;
    /// anything else queues it again after a back-off, or gives it up after three days. Throws
    /// ``SendingRoleLost`` when `owner` does not hold the role.
    func markFailed(id: Int64, error: DeliveryError, owner: String, now: Date) throws -> OutboxState
    /// Gives back claimed messages that were never sent, as if never claimed.
    func releaseClaims(ids: [Int64], owner: String, now: Date) throws
    /// Takes back permanent refusals that were the relay's doing: the messages are queued again and
    /// nobody stays bounced. Returns how many were taken back.
    func revertRefusals(outboxIds: [Int64], now: Date) throws -> Int

    /// A failure of this store in one short sentence for the logs, without SQL.
    func describe(_ error: any Error) -> String
}
