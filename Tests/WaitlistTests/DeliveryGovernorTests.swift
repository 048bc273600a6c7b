import Foundation
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

@Suite("Pacing and protecting the relay")
struct DeliveryGovernorTests {
    /// Time spent sleeping on a fake clock: only the governor's sleeps move it.
    private final class SleepLog: Sendable {
        let clock = TestClock()
        let start: Date

        init() { start = clock.now }

        var total: TimeInterval { clock.now.timeIntervalSince(start) }
    }

    /// A governor on a fake clock whose sleeps move the clock.
    private func governor(_ policy: DeliveryGovernor.Policy) -> (DeliveryGovernor, SleepLog) {
        let log = SleepLog()
        let governor = DeliveryGovernor(policy: policy, now: log.clock.function) { seconds in log.clock.advance(by: seconds) }
        return (governor, log)
    }

    @Test("WAITLIST_SEND_RATE spaces messages evenly over all lanes")
    func rateSpacesMessages() {
        let (governor, slept) = governor(.init(rate: Rate(count: 10, per: .second), stopsForGood: true))
        for _ in 0..<21 { #expect(governor.awaitTurn(isStopping: { false })) }
        // 21 messages at 10 per second: the first at once, the last two seconds later.
        #expect(abs(slept.total - 2.0) < 0.001)
    }

    @Test("Without a rate, nothing waits")
    func noRateNoWait() {
        let (governor, slept) = governor(.init(rate: nil, stopsForGood: true))
        for _ in 0..<100 { #expect(governor.awaitTurn(isStopping: { false })) }
        #expect(slept.total == 0)
    }

    @Test("Transient failures pause every lane, longer each time, and a success ends the pauses")
    func transientFailuresSlowDown() {
        let (governor, slept) = governor(.init(rate: nil, stopsForGood: false))
        var pauses: [TimeInterval] = []
        for _ in 0..<4 {
            let before = slept.total
            governor.recordTransient(reason: "421 too busy")
            #expect(governor.awaitTurn(isStopping: { false }))
            pauses.append(slept.total - before)
        }
        #expect(pauses.map { ($0 * 1000).rounded() / 1000 } == [0.5, 1, 2, 4])
        governor.recordSuccess()
        governor.recordTransient(reason: "451 later")
        let before = slept.total
        #expect(governor.awaitTurn(isStopping: { false }))
        #expect(abs(slept.total - before - 0.5) < 0.001)
    }

    @Test("A command stops after five transient failures in a row; the server's worker keeps pausing, at most a minute")
    func transientStopOnlyForCommands() {
        let (command, _) = governor(.init(rate: nil, transientFailuresToStop: 5, stopsForGood: true))
        for _ in 0..<5 { command.recordTransient(reason: "connection refused") }
        #expect(!command.awaitTurn(isStopping: { false }))
        #expect(command.stopReason?.contains("connection refused") == true)

        let (worker, slept) = governor(.init(rate: nil, stopsForGood: false))
        for _ in 0..<20 { worker.recordTransient(reason: "connection refused") }
        #expect(worker.awaitTurn(isStopping: { false }))
        #expect(abs(slept.total - 60) < 0.001)
    }

    @Test("Refusals of unknown users are the recipients', however many come in a row")
    func unknownUsersNeverBlameTheRelay() {
        let (governor, slept) = governor(.init(rate: nil, stopsForGood: false))
        for id in 1...50 {
            let blamed = governor.recordPermanent(
                outboxId: Int64(id), domain: "d\(id % 7).example", isPolicy: false, reason: "550 5.1.1 no such user")
            #expect(blamed.isEmpty)
        }
        #expect(governor.awaitTurn(isStopping: { false }))
        #expect(slept.total == 0)
    }

    @Test("Policy refusals blame the relay only after five in a row across three domains, with nothing between them")
    func policyRefusalsAcrossDomainsBlameTheRelay() {
        let (governor, _) = governor(.init(rate: nil, stopsForGood: true))
        func refuse(_ id: Int64, at domain: String) -> [Int64] {
            governor.recordPermanent(outboxId: id, domain: domain, isPolicy: true, reason: "554 5.7.1 relay access denied")
        }
        // One domain refusing us by policy is that domain's affair.
        for id in Int64(1)...9 { #expect(refuse(id, at: "one.example").isEmpty) }
        governor.recordSuccess()
        // A refusal for another reason, or a success, breaks a run.
        #expect(refuse(10, at: "a.example").isEmpty)
        #expect(refuse(11, at: "b.example").isEmpty)
        #expect(governor.recordPermanent(outboxId: 12, domain: "c.example", isPolicy: false, reason: "550 5.1.1 no such user").isEmpty)
        #expect(refuse(13, at: "a.example").isEmpty)
        #expect(refuse(14, at: "b.example").isEmpty)
        governor.recordSuccess()
        #expect(refuse(20, at: "a.example").isEmpty)
        #expect(refuse(21, at: "b.example").isEmpty)
        #expect(refuse(22, at: "a.example").isEmpty)
        #expect(refuse(23, at: "b.example").isEmpty)
        #expect(governor.awaitTurn(isStopping: { false }))
        #expect(refuse(24, at: "c.example") == [20, 21, 22, 23, 24])
        #expect(refuse(25, at: "d.example") == [25])
        #expect(!governor.awaitTurn(isStopping: { false }))
        #expect(governor.stopReason?.contains("relay access denied") == true)
    }

    @Test("A refused sender or login stops a command and pauses the server's worker for five minutes")
    func refusedSenderBlamesTheRelay() {
        let (command, _) = governor(.init(rate: nil, stopsForGood: true))
        command.recordSenderRefused(reason: "553 5.7.1 sender not allowed")
        #expect(!command.awaitTurn(isStopping: { false }))
        #expect(command.stopReason?.contains("sender not allowed") == true)

        let (worker, slept) = governor(.init(rate: nil, stopsForGood: false))
        worker.recordSenderRefused(reason: "535 authentication failed")
        #expect(worker.awaitTurn(isStopping: { false }))
        #expect(abs(slept.total - 300) < 0.001)
    }
}

@Suite("The sender against a relay that misbehaves")
struct SenderResilienceTests {
    @Test("A relay that refuses every recipient stops the run without marking anyone bounced")
    func refusingRelayBouncesNobody() async throws {
        let world = try await TestWorld.make()
        for index in 1...30 { try await world.confirmedSubscriber("person\(index)@school\(index % 5).example") }
        _ = try await world.database.open(courseId: 1, date: "2027-03-15", enrolURL: "https://school.example/enrol", now: world.clock.now)
        world.transport.failNext(contentsOf: Array(repeating: .permanent("554 5.7.1 relay access denied", policy: true), count: 30))
        let summary = try await world.sender().run(mode: .drain)
        #expect(summary.stopReason?.contains("relay access denied") == true)
        let status = try world.database.status(courseId: 1)
        #expect(status.bounced == 0)
        #expect(status.confirmed == 30)
        #expect(status.mailFailed == 0)
        #expect(status.mailQueued == 30)
    }

    @Test("A few bad addresses among good ones are bounced, and the rest delivered")
    func someBadAddressesBounce() async throws {
        let world = try await TestWorld.make()
        for index in 1...10 { try await world.confirmedSubscriber("person\(index)@example.com") }
        _ = try await world.database.open(courseId: 1, date: "2027-03-15", enrolURL: "https://school.example/enrol", now: world.clock.now)
        world.transport.failNext(.permanent("550 no such user"), .permanent("550 no such user"))
        let summary = try await world.sender().run(mode: .drain)
        #expect(summary.stopReason == nil)
        #expect(summary.failed == 2)
        #expect(summary.sent == 8)
        #expect(try world.database.status(courseId: 1).bounced == 2)
    }

    @Test("Ten unknown recipients among real ones: the server's worker mails the real ones at once and once")
    func deadMailboxesStallNobody() async throws {
        let world = try await TestWorld.make()
        let dead = (1...10).map { "dead\($0)@mail\($0 % 5).example" }
        let real = (1...5).map { "real\($0)@example.org" }
        world.transport.refuse(dead, with: .permanent("550 5.1.1 no such user"))
        for address in dead + real { try await world.signUp(address) }
        let sender = world.sender(concurrency: 2)
        let worker = Task { try await sender.run(mode: .continuous) }
        let clock = ContinuousClock()
        // Far less than the five minutes' pause that ten refusals in a row once caused, and enough on a busy machine.
        let deadline = clock.now + .seconds(90)
        while world.transport.messages.count < real.count, clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        // Nothing paused: well within the first second the governor would otherwise have waited.
        try await Task.sleep(for: .milliseconds(300))
        sender.stop()
        _ = try await worker.value
        #expect(world.transport.messages.map(\.to.address).sorted() == real.sorted())
        let status = try world.database.status(courseId: 1)
        #expect(status.bounced == 10)
        #expect(status.pending == 5)
    }

    @Test("A command gives up after five connection failures in a row and keeps every message queued")
    func unreachableRelayStopsCommand() async throws {
        let world = try await TestWorld.make()
        for index in 1...20 { try await world.signUp("person\(index)@example.com") }
        world.transport.failNext(contentsOf: Array(repeating: .transient("connection refused"), count: 100))
        let summary = try await world.sender().run(mode: .drain)
        #expect(summary.stopReason?.contains("connection refused") == true)
        #expect(summary.sent == 0)
        #expect(summary.leftQueued == 20)
        #expect(try world.database.status(courseId: 1).mailFailed == 0)
    }
}
