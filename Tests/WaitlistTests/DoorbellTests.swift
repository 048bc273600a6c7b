import Foundation
import Testing

@testable import WaitlistDelivery

/// Each wait says what ended it (a ring, or its time), so nothing here depends on how soon a task
/// runs: under the full suite, tests that block the cooperative pool delay every task by seconds.
@Suite("The doorbell that wakes the sender's loop")
struct DoorbellTests {
    @Test("A ring before the wait ends it; two rings count as one")
    func ringBeforeTheWait() async {
        let bell = Doorbell()
        bell.ring()
        bell.ring()
        #expect(await bell.wait(timeout: .seconds(60)))
        #expect(await bell.wait(timeout: .milliseconds(300)) == false)
    }

    @Test("A ring during the wait ends it, from another task")
    func ringDuringTheWait() async throws {
        let bell = Doorbell()
        let ringer = Task {
            try await Task.sleep(for: .milliseconds(200))
            bell.ring()
        }
        #expect(await bell.wait(timeout: .seconds(60)))
        try await ringer.value
    }

    @Test("Without a ring the wait ends when its time is up, and the next wait is not cut short by it")
    func timeout() async {
        let bell = Doorbell()
        let clock = ContinuousClock()
        let started = clock.now
        #expect(await bell.wait(timeout: .milliseconds(200)) == false)
        #expect(started.duration(to: clock.now) >= .milliseconds(200))
        let next = clock.now
        #expect(await bell.wait(timeout: .milliseconds(400)) == false)
        #expect(next.duration(to: clock.now) >= .milliseconds(400))
    }
}
