import Foundation
import Synchronization

/// Wakes a thread waiting for work: a ring is remembered until a waiter takes it.
final class Doorbell: Sendable {
    private let condition = NSCondition()
    private let rung = Mutex(false)

    func ring() {
        condition.lock()
        rung.withLock { $0 = true }
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until rung or until `timeout` seconds have passed.
    func wait(timeout: TimeInterval) {
        condition.lock()
        defer { condition.unlock() }
        if !rung.withLock({ $0 }) {
            _ = condition.wait(until: Date().addingTimeInterval(timeout))
        }
        rung.withLock { $0 = false }
    }
}
