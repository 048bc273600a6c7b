import Foundation
import Synchronization

/// The messages one period's lanes share: claimed from the database in batches as lanes need them,
/// handed out one at a time, and kept out of later claims until their outcome is recorded.
final class WorkQueue: Sendable {
    let role: HeldRole
    private let sender: OutboxSender
    private let state = Mutex(State())

    private struct State {
        /// Claimed and not handed out yet.
        var waiting: [Delivery] = []
        /// Claimed messages whose outcome is not recorded yet: no claim of this period takes them again.
        var inHand: Set<Int64> = []
        /// Handed back unsent (the lane stopped before its turn).
        var givenBack: [Int64] = []
        /// What made a claim fail, for a command to report.
        var failure: (any Error)?
        var claimedAny = false
    }

    init(sender: OutboxSender, role: HeldRole) {
        self.sender = sender
        self.role = role
    }

    var failure: (any Error)? { state.withLock { $0.failure } }
    /// Whether any claim returned mail.
    var claimedAny: Bool { state.withLock { $0.claimedAny } }

    /// The next message for a lane; `nil` when nothing is due, the sender stops or the role is going.
    /// Claims a batch when none is waiting (one lane at a time claims; the others wait for it).
    func next() -> Delivery? {
        state.withLock { state in
            guard !sender.isStopping, role.mayFinish, state.failure == nil else { return nil }
            if state.waiting.isEmpty {
                do {
                    let batch = try sender.database.claimDue(
                        owner: role.owner, limit: sender.batchSize, excluding: state.inHand, now: sender.now())
                    state.inHand.formUnion(batch.map(\.outboxId))
                    if !batch.isEmpty { state.claimedAny = true }
                    state.waiting = batch.reversed()
                } catch is SendingRoleLost {
                    role.lose()
                } catch {
                    sender.logger.error("Cannot claim mail from the outbox", metadata: ["error": "\(AppDatabase.describe(error))"])
                    state.failure = WaitlistError(.unavailable, "The database is not answering: \(AppDatabase.describe(error)).")
                }
            }
            return state.waiting.popLast()
        }
    }

    /// A message's outcome is recorded: later claims may see it (it is no longer due anyway).
    func finished(_ id: Int64) {
        _ = state.withLock { $0.inHand.remove(id) }
    }

    /// A message a lane took but did not send.
    func giveBack(_ delivery: Delivery) {
        state.withLock { $0.givenBack.append(delivery.outboxId) }
    }

    /// A message left to the sender that has the role now: this one neither sends nor releases it.
    func abandon(_ delivery: Delivery) {
        _ = state.withLock { $0.inHand.remove(delivery.outboxId) }
    }

    /// Releases what was claimed and never sent, so that it is not counted as an attempt.
    func giveBackUnsent() {
        let unsent = state.withLock { state in
            defer {
                state.waiting = []
                state.givenBack = []
            }
            return state.waiting.map(\.outboxId) + state.givenBack
        }
        guard !unsent.isEmpty else { return }
        do {
            try sender.database.releaseClaims(ids: unsent, owner: role.owner, now: sender.now())
        } catch is SendingRoleLost {
            // Another sender has the role, and these rows are its own to claim.
        } catch {
            // They stay queued and due: each keeps one attempt more and an unused token.
            sender.logger.warning("Cannot give back unsent claims", metadata: ["error": "\(AppDatabase.describe(error))"])
        }
    }
}
