import Foundation
import Testing

@testable import WaitlistDelivery

@Suite("The doorbell that wakes the sender's loop")
struct DoorbellTests {
    private let clock = ContinuousClock()

    @Test("A ring before the wait ends it at once; two rings count as one")
    func ringBeforeTheWait() async {
        let bell = Doorbell()
        bell.ring()
        bell.ring()
        let first = await clock.measure { await bell.wait(timeout: .seconds(30)) }
        #expect(first < .seconds(10))
        let second = await clock.measure { await bell.wait(timeout: .milliseconds(300)) }
        #expect(second >= .milliseconds(300))
    }

    @Test("A ring during the wait ends it, from another task")
    func ringDuringTheWait() async throws {
        let bell = Doorbell()
        let ringer = Task {
            try await Task.sleep(for: .milliseconds(200))
            bell.ring()
        }
        let waited = await clock.measure { await bell.wait(timeout: .seconds(30)) }
        try await ringer.value
        #expect(waited >= .milliseconds(200))
        #expect(waited < .seconds(10))
    }

    @Test("Without a ring the wait ends when its time is up, and the next wait is not cut short by it")
    func timeout() async {
        let bell = Doorbell()
        let waited = await clock.measure { await bell.wait(timeout: .milliseconds(200)) }
        #expect(waited >= .milliseconds(200))
        let next = await clock.measure { await bell.wait(timeout: .milliseconds(400)) }
        #expect(next >= .milliseconds(400))
    }
}
