import Foundation
import WaitlistCore
import WaitlistMail

/// The messages one period's lanes share: claimed from the database in batches as lanes need them,
/// handed out one at a time, and kept out of later claims until their outcome is recorded.
final class WorkQueue: @unchecked Sendable {  // `state` is read and written only with `condition` locked
    let role: HeldRole
    private let sender: OutboxSender
    private let condition = NSCondition()
    private var state = State()

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
        /// A lane is claiming (with the lock released): no other claim begins meanwhile.
        var claiming = false
        /// The last claim got less than a batch: nothing is claimed ahead until the lanes run out.
        var runningOut = false
    }

    init(sender: OutboxSender, role: HeldRole) {
        self.sender = sender
        self.role = role
    }

    var failure: (any Error)? { withState { $0.failure } }
    /// Whether any claim returned mail.
    var claimedAny: Bool { withState { $0.claimedAny } }

    private func withState<T>(_ body: (inout State) -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body(&state)
    }

    /// The next message for a lane; `nil` when nothing is due, the sender stops or the role is going.
    ///
    /// The lane that takes a batch's middle message claims the next batch before it goes on, with
    /// the others still taking what is left: a claim is a synced commit, and while it is made
    /// nobody waits for it unless the batch runs out first. A lane that finds nothing waiting
    /// claims, or waits for the claim being made.
    func next() -> Delivery? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            guard !sender.isStopping, role.mayFinish, state.failure == nil else { return nil }
            if let delivery = state.waiting.popLast() {
                if state.waiting.count < sender.batchSize / 2, !state.claiming, !state.runningOut { claim(ahead: true) }
                return delivery
            }
            if state.claiming {
                condition.wait()
                continue
            }
            claim(ahead: false)
            if state.waiting.isEmpty { return nil }
        }
    }

    /// Claims a batch and puts it behind what is waiting. Called with the lock held; releases it
    /// while the database works and holds it again when it returns. A claim `ahead` that fails
    /// leaves the lanes the messages waiting; it is made again once they run out, and only then
    /// does a failure stop them.
    private func claim(ahead: Bool) {
        state.claiming = true
        let excluding = state.inHand
        condition.unlock()
        let claimed = Result {
            try sender.store.claimDue(owner: role.owner, limit: sender.batchSize, excluding: excluding, now: sender.now())
        }
        condition.lock()
        state.claiming = false
        condition.broadcast()
        switch claimed {
        case .success(let batch):
            state.inHand.formUnion(batch.map(\.outboxId))
            if !batch.isEmpty { state.claimedAny = true }
            state.waiting.insert(contentsOf: batch.reversed(), at: 0)
            state.runningOut = batch.count < sender.batchSize
        case .failure(let error) where error is SendingRoleLost:
            role.lose()
        case .failure(let error) where ahead:
            sender.logger.notice(
                "Cannot claim mail ahead; trying again when the batch runs out", metadata: ["error": "\(sender.store.describe(error))"])
            state.runningOut = true
        case .failure(let error):
            sender.logger.error("Cannot claim mail from the outbox", metadata: ["error": "\(sender.store.describe(error))"])
            state.failure = WaitlistError(.unavailable, "The database is not answering: \(sender.store.describe(error)).")
        }
    }

    /// A message's outcome is recorded: later claims may see it (it is no longer due anyway).
    func finished(_ id: Int64) {
        _ = withState { $0.inHand.remove(id) }
    }

    /// A message a lane took but did not send.
    func giveBack(_ delivery: Delivery) {
        withState { $0.givenBack.append(delivery.outboxId) }
    }

    /// A message left to the sender that has the role now: this one neither sends nor releases it.
    func abandon(_ delivery: Delivery) {
        _ = withState { $0.inHand.remove(delivery.outboxId) }
    }

    /// Releases what was claimed and never sent, so that it is not counted as an attempt.
    func giveBackUnsent() {
        let unsent = withState { state in
            defer {
                state.waiting = []
                state.givenBack = []
            }
            return state.waiting.map(\.outboxId) + state.givenBack
        }
        guard !unsent.isEmpty else { return }
        do {
            try sender.store.releaseClaims(ids: unsent, owner: role.owner, now: sender.now())
        } catch is SendingRoleLost {
            // Another sender has the role, and these rows are its own to claim.
        } catch {
            // They stay queued and due: each keeps one attempt more and an unused token.
            sender.logger.warning("Cannot give back unsent claims", metadata: ["error": "\(sender.store.describe(error))"])
        }
    }
}
