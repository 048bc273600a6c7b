import Foundation
import NIOConcurrencyHelpers
import WaitlistCore
import WaitlistMail

/// This process's hold on the sending role during one period, as the lanes see it: the lease's
/// deadline in memory, moved on by each renewal that the database confirmed.
final class HeldRole: Sendable {
    let owner: String
    let lease: TimeInterval
    private let now: @Sendable () -> Date
    private let state: NIOLockedValueBox<(deadline: Date, lost: Bool, ended: Bool)>
    private let renewals = NSCondition()

    init(owner: String, lease: TimeInterval, takenAt: Date, now: @escaping @Sendable () -> Date) {
        self.owner = owner
        self.lease = lease
        self.now = now
        self.state = NIOLockedValueBox((takenAt.addingTimeInterval(lease), false, false))
    }

    /// Whether a lane may still finish a message (or start one): the role is not lost and at least a
    /// quarter of its lease is left, so a renewal that failed is noticed well before another sender
    /// may take over.
    var mayFinish: Bool {
        let (deadline, lost, _) = state.withLockedValue { $0 }
        return !lost && deadline.timeIntervalSince(now()) > lease / 4
    }

    /// A renewal that began at `start` succeeded: the lease runs until `start + lease`.
    func renewed(at start: Date) {
        state.withLockedValue { $0.deadline = max($0.deadline, start.addingTimeInterval(lease)) }
    }

    /// Another sender has the role: nothing more goes out from this one.
    func lose() {
        state.withLockedValue { $0.lost = true }
    }

    /// The period is over: the renewal ends.
    func end() {
        renewals.lock()
        state.withLockedValue { $0.ended = true }
        renewals.broadcast()
        renewals.unlock()
    }

    /// Waits `interval` seconds (of the real clock) and says whether to renew: `false` once the period
    /// ended or the role was lost.
    func waitForRenewal(every interval: TimeInterval) -> Bool {
        renewals.lock()
        defer { renewals.unlock() }
        let until = Date().addingTimeInterval(max(interval, 0.01))
        while !state.withLockedValue({ $0.ended }) && renewals.wait(until: until) {}
        return state.withLockedValue { !$0.ended && !$0.lost }
    }
}
