import NIOConcurrencyHelpers
import WaitlistCore
import WaitlistStore

/// One clock for every request body being read: ``wait(until:)`` returns once its deadline has
/// passed, found by a sweep a few times a second, or at once when its task is cancelled.
///
/// A signup races its body against a deadline. With a `Task.sleep` per request, each signup set
/// and cancelled a timer, which Dispatch's manager thread serves: 9–15 µs of CPU per signup on that
/// thread alone, about a tenth of the server's work for one. Here one sweep serves them all, and
/// only while some body is being read.
final class BodyDeadlines: Sendable {
    private struct Waiter {
        let deadline: ContinuousClock.Instant
        let continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var nextID = 0
        var waiters: [Int: Waiter] = [:]
        var isSweeping = false
    }

    /// How often the deadlines are looked at: a wait ends up to this long after its deadline.
    let tick: Duration
    private let state = NIOLockedValueBox(State())

    init(tick: Duration = .milliseconds(250)) {
        self.tick = tick
    }

    /// How many waits are pending.
    var pending: Int { state.withLockedValue { $0.waiters.count } }

    /// Whether a sweep is scheduled (none once no wait is pending).
    var isSweeping: Bool { state.withLockedValue { $0.isSweeping } }

    /// Returns once `deadline` has passed, or as soon as the calling task is cancelled.
    func wait(until deadline: ContinuousClock.Instant) async {
        let id = state.withLockedValue { state in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let startsSweep = state.withLockedValue { state -> Bool? in
                    // A cancellation before this point found nothing to resume: it is seen here.
                    guard !Task.isCancelled else { return nil }
                    state.waiters[id] = Waiter(deadline: deadline, continuation: continuation)
                    guard !state.isSweeping else { return false }
                    state.isSweeping = true
                    return true
                }
                switch startsSweep {
                case nil: continuation.resume()
                case true?: Task.detached { [self] in await sweep() }
                case false?: break
                }
            }
        } onCancel: {
            state.withLockedValue { $0.waiters.removeValue(forKey: id) }?.continuation.resume()
        }
    }

    /// Ends the waits whose deadline has passed, every ``tick``, until none is pending.
    private func sweep() async {
        while true {
            try? await Task.sleep(for: tick)
            let now = ContinuousClock.now
            let (expired, isDone) = state.withLockedValue { state -> ([Waiter], Bool) in
                let expired = state.waiters.filter { $0.value.deadline <= now }
                for id in expired.keys { state.waiters.removeValue(forKey: id) }
                // The next wait starts a sweep of its own.
                if state.waiters.isEmpty { state.isSweeping = false }
                return (Array(expired.values), state.waiters.isEmpty)
            }
            for waiter in expired { waiter.continuation.resume() }
            if isDone { return }
        }
    }
}
