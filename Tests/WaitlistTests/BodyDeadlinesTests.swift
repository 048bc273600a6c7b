import Foundation
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

@Suite struct BodyDeadlinesTests {
    @Test("A wait ends once its deadline has passed, within a tick of it")
    func waitEndsAtItsDeadline() async {
        let deadlines = BodyDeadlines(tick: .milliseconds(50))
        let start = ContinuousClock.now
        await deadlines.wait(until: start + .milliseconds(300))
        let waited = start.duration(to: .now)
        #expect(waited >= .milliseconds(300))
        // (Generous: under the whole suite, tests that block Swift's few pool threads delay every task.)
        #expect(waited < .seconds(120), "\(waited)")
        #expect(deadlines.pending == 0)
    }

    @Test("Waits whose tasks are cancelled end at once, however far their deadlines, and leave nothing behind")
    func cancelledWaitsEndAtOnce() async throws {
        let deadlines = BodyDeadlines(tick: .milliseconds(50))
        let start = ContinuousClock.now
        // Given 200 bodies racing a deadline an hour away, as the signup handlers race them
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<200 {
                group.addTask { await deadlines.wait(until: .now + .seconds(3600)) }
            }
            // Some cancelled before they begin to wait, some while they wait
            await Task.yield()
            group.cancelAll()
        }
        // Then every one of them ended long before its deadline, and none is left
        #expect(start.duration(to: .now) < .seconds(600))
        #expect(deadlines.pending == 0)
        // And the sweep stops once nothing waits (at its next tick)
        for _ in 0..<600 where deadlines.isSweeping {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(!deadlines.isSweeping)
    }

    @Test("A wait that begins after its deadline ends at the next sweep; one that begins cancelled, at once")
    func lateAndCancelledWaits() async {
        let deadlines = BodyDeadlines(tick: .milliseconds(50))
        let start = ContinuousClock.now
        await deadlines.wait(until: .now - .seconds(1))
        let cancelled = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            await deadlines.wait(until: .now + .seconds(3600))
        }
        await cancelled.value
        #expect(start.duration(to: .now) < .seconds(600))
        #expect(deadlines.pending == 0)
    }
}
