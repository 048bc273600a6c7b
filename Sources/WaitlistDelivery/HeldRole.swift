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

    /// When the lease ends, as this process believes.
    var deadline: Date {
        state.withLockedValue { $0.deadline }
    }

    /// A renewal that began at `start` succeeded: the lease runs until `start + lease`.
    func renewed(at start: Date) {
        state.withLockedValue { $0.deadline = max($0.deadline, start.addingTimeInterval(lease)) }
    }

    /// Another sender has the role: nothing more goes out from this one.
    func lose() {
        state.withLockedValue { $0.lost = true }
    }

    /// The period is over: nothing more is renewed.
    func end() {
        state.withLockedValue { $0.ended = true }
    }

    /// Whether the role is still to be renewed: the period goes on and the role was not lost.
    var isHeld: Bool {
        state.withLockedValue { !$0.ended && !$0.lost }
    }
}
