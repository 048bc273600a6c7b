import Foundation
import Logging
import WaitlistCore
import WaitlistMail

/// The records one lane has handed over and not yet seen written.
final class LaneRecords {
    private let records: GroupCommit<Int64>
    private let logger: Logger
    private let written: (Int64) -> Void
    /// Each handed-over record, with the message it records sent.
    private var pending: [(ticket: GroupCommit<Int64>.Ticket, delivery: Delivery)] = []
    /// Whether the last ``settle()`` found a failure, so the message it guarded was held back.
    private(set) var heldBack = false

    static let heldBackReason = "Not sent: the database could not record the previous message as sent."

    /// - Parameter written: called with each message whose record is written.
    init(_ records: GroupCommit<Int64>, logger: Logger, written: @escaping (Int64) -> Void) {
        self.records = records
        self.logger = logger
        self.written = written
    }

    /// Hands over the record of a message the relay accepted.
    func sent(_ delivery: Delivery) {
        pending.append((records.submit(delivery.outboxId), delivery))
    }

    /// Waits until every record handed over is written; `false` when some could not be.
    @discardableResult
    func settle() -> Bool {
        heldBack = false
        for (ticket, delivery) in pending {
            do {
                try ticket.wait()
                written(delivery.outboxId)
            } catch {
                heldBack = true
                // Delivered but not recorded: kept out of this period's claims; a later sender may send it again.
                logger.critical(
                    "Mail delivered but not recorded as sent", metadata: delivery.logMetadata.merging(["error": "\(error)"]) { $1 })
            }
        }
        pending.removeAll()
        return !heldBack
    }
}
