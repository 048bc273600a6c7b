import Foundation
import NIOConcurrencyHelpers
import WaitlistCore
import WaitlistMail

/// Wakes a thread waiting for work: a ring is remembered until a waiter takes it.
final class Doorbell: Sendable {
    private let condition = NSCondition()
    private let rung = NIOLockedValueBox(false)

    func ring() {
        condition.lock()
        rung.withLockedValue { $0 = true }
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until rung or until `timeout` seconds have passed.
    func wait(timeout: TimeInterval) {
        condition.lock()
        defer { condition.unlock() }
        if !rung.withLockedValue({ $0 }) {
            _ = condition.wait(until: Date().addingTimeInterval(timeout))
        }
        rung.withLockedValue { $0 = false }
    }
}
