import Foundation
import NIOConcurrencyHelpers
import WaitlistCore

/// Wakes the sender's loop while it waits for work: a ring is remembered until the loop takes it.
/// The loop waits without holding a thread; one waits at a time.
final class Doorbell: Sendable {
    private struct State {
        var rung = false
        /// The loop waiting, and the number of its wait, which its timer names.
        var waiter: (wait: Int, continuation: CheckedContinuation<Bool, Never>)?
        var waits = 0
    }

    private let state = NIOLockedValueBox(State())

    func ring() {
        let waiter = state.withLockedValue { state in
            guard let waiter = state.waiter else {
                state.rung = true
                return nil as CheckedContinuation<Bool, Never>?
            }
            state.waiter = nil
            return waiter.continuation
        }
        waiter?.resume(returning: true)
    }

    /// Waits until rung or until `timeout` has passed.
    ///
    /// - Returns: whether a ring ended the wait (`false`: the time was up).
    @discardableResult
    func wait(timeout: Duration) async -> Bool {
        let wait = state.withLockedValue { state in
            state.waits += 1
            return state.waits
        }
        let rung = await withTaskGroup(of: Void.self) { timer in
            timer.addTask {
                guard (try? await Task.sleep(for: timeout)) != nil else { return }  // cancelled: the wait is over
                self.expire(wait)
            }
            let rung = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let rungAlready = state.withLockedValue { state in
                    if state.rung || Task.isCancelled {
                        state.rung = false
                        return true
                    }
                    state.waiter = (wait, continuation)
                    return false
                }
                if rungAlready { continuation.resume(returning: true) }
            }
            timer.cancelAll()
            return rung
        }
        state.withLockedValue { $0.rung = false }
        return rung
    }

    /// The wait numbered `wait` timed out: it ends, if it still waits.
    private func expire(_ wait: Int) {
        let waiter = state.withLockedValue { state in
            guard let waiter = state.waiter, waiter.wait == wait else { return nil as CheckedContinuation<Bool, Never>? }
            state.waiter = nil
            return waiter.continuation
        }
        waiter?.resume(returning: false)
    }
}
