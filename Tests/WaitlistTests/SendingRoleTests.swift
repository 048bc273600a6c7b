import Foundation
import GRDB
import NIOConcurrencyHelpers
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

/// The ownership protocol itself: two senders on one database, a scripted relay and a clock the
/// test moves, with the first sender frozen or crashed at every step between a claim and its
/// record, while the second takes the role over.
@Suite("One owner per message: freezes and crashes at every step")
struct SendingRoleTests {
    /// Where the first sender stops, for which of the three messages, and whether it comes back.
    struct Fault: Sendable, CustomTestStringConvertible {
        enum Step: String, Sendable, CaseIterable {
            /// A lane has the message in hand, before its turn.
            case claimed
            /// At the point of no return: the relay has the envelope, not the message's end.
            case beforeEnd
            /// The relay accepted the message; its record is not handed over yet.
            case accepted
        }

        var step: Step
        var message: Int
        /// `false`: the frozen sender comes back after the takeover (`SIGCONT`); `true`: it never does.
        var crashes: Bool
        var testDescription: String { "\(crashes ? "crash" : "freeze") at \(step.rawValue) of message \(message + 1)" }

        /// Only a message the relay had already taken when the sender stopped may arrive twice.
        var mayRepeat: Bool { step == .accepted }
    }

    static let faults: [Fault] = Fault.Step.allCases.flatMap { step in
        (0..<3).flatMap { message in [false, true].map { Fault(step: step, message: message, crashes: $0) } }
    }

    @Test("Nothing is lost, and only a message in flight may arrive twice", arguments: faults)
    func takeoverAfterFault(_ fault: Fault) async throws {
        let world = try await TestWorld.make()
        let addresses = ["anna@example.com", "boris@example.com", "vera@example.com"]
        for address in addresses { try await world.confirmedSubscriber(address) }
        _ = try await world.database.open(courseId: 1, date: "2027-03-15", enrolURL: "https://school.example/enrol", now: world.clock.now)
        let ids = try await world.database.writer.read { db in
            try Int64.fetchAll(db, sql: "SELECT id FROM outbox WHERE kind = 'announcement' ORDER BY id")
        }
        let target: OutboxSender.Step =
            switch fault.step {
            case .claimed: .claimed(ids[fault.message])
            case .beforeEnd: .beforeEnd(ids[fault.message])
            case .accepted: .accepted(ids[fault.message])
            }
        let relay = ScriptedRelay()
        let freezer = Freezer(at: target)
        let lease: TimeInterval = 45
        let first = OutboxSender(
            store: world.database, transport: relay, composer: world.composer, concurrency: 1, logger: .init(label: "first"),
            lease: lease, now: world.clock.function, probe: { freezer.pass($0) })
        let firstRun = Task { try await first.run(mode: .drain) }
        try #require(await freezer.waitUntilFrozen(), "the first sender never reached \(target)")

        // Frozen past its lease: the second sender takes the role over and drains the outbox.
        world.clock.advance(by: lease + 1)
        let second = OutboxSender(
            store: world.database, transport: relay, composer: world.composer, concurrency: 1, logger: .init(label: "second"),
            lease: lease, now: world.clock.function)
        try await second.run(mode: .drain)
        if fault.crashes {
            try check(relay, addresses: addresses, fault: fault, world: world)
        }
        // Back from the freeze (or, for a crash, let go once the checks are made).
        freezer.thaw()
        _ = try await firstRun.value
        if !fault.crashes {
            try check(relay, addresses: addresses, fault: fault, world: world)
        }
    }

    private func check(_ relay: ScriptedRelay, addresses: [String], fault: Fault, world: TestWorld) throws {
        let received = relay.recipients
        #expect(Set(received) == Set(addresses), "lost: \(Set(addresses).subtracting(received))")
        let repeats = received.count - Set(received).count
        #expect(repeats <= (fault.mayRepeat ? 1 : 0), "\(received)")
        let counts = try world.database.announcementCounts(openingId: 1)
        #expect(counts == [.sent: 3], "\(counts)")
    }

    @Test("A sender that lost the role stops at its next point of no return, even after a wait longer than its lease")
    func lostRoleIsNoticedAfterAWait() async throws {
        let world = try await TestWorld.make()
        try await world.confirmedSubscriber("anna@example.com")
        _ = try await world.database.open(courseId: 1, date: "2027-03-15", enrolURL: "https://school.example/enrol", now: world.clock.now)
        let relay = ScriptedRelay()
        let clock = world.clock
        let database = world.database
        // At the point of no return, the world has moved on: the wait for it outlasted the lease,
        // and another sender took the role.
        let sender = OutboxSender(
            store: world.database, transport: relay, composer: world.composer, concurrency: 1, logger: .init(label: "test"),
            lease: 10, now: clock.function,
            probe: { step in
                guard case .beforeEnd = step else { return }
                clock.advance(by: 11)
                _ = try? database.takeSendingRole(owner: "other", lease: 10, now: clock.now)
            })
        // It then waits for the other sender, which this test never runs: stop it there.
        let summary = try await sender.run(mode: .drain) { progress in
            if case .anotherSenderWorks = progress { sender.stop() }
        }
        #expect(relay.recipients.isEmpty)
        #expect(summary.sent == 0)
        #expect(summary.waitedForAnotherSender)
        // The message is still queued and due, for the sender that has the role.
        #expect(try world.database.backlog(now: clock.now).ready == 1)
    }

    @Test("The lease in memory ends when the database's does: both count from one reading of the clock, however late the next")
    func leaseInMemoryCountsFromTheSameReading() async throws {
        // Given due mail, and a clock each reading of which is ten seconds after the one before
        let world = try await TestWorld.make()
        try await world.signUp("anna@example.com")
        let reading = NIOLockedValueBox(world.clock.now)
        let steppingClock: @Sendable () -> Date = {
            reading.withLockedValue { now in
                defer { now = now.addingTimeInterval(10) }
                return now
            }
        }
        let sender = OutboxSender(
            store: world.database, transport: world.transport, composer: world.composer, concurrency: 1, logger: .init(label: "test"),
            lease: 45, now: steppingClock, probe: nil)
        // When it takes the role
        guard case .work(let role) = try sender.nextStep(mode: .drain, progress: { _ in }) else {
            Issue.record("the sender did not take the role")
            return
        }
        // Then the deadline its lanes check is the one the database keeps, to the millisecond it stores
        let stored = try #require(try world.database.sendingRoleHolder(now: .distantPast))
        #expect(abs(role.deadline.timeIntervalSince(stored.expiresAt)) < 0.002, "memory \(role.deadline), database \(stored.expiresAt)")
    }

}

/// A relay in memory that takes messages as the SMTP session does: it has a message only once the
/// sender finishes it, after the point of no return.
private final class ScriptedRelay: MailTransport, Sendable {
    private let received = NIOLockedValueBox<[String]>([])

    var recipients: [String] { received.withLockedValue { $0 } }

    func makeSession() throws(DeliveryError) -> any MailSession { Session(relay: self) }

    private final class Session: MailSession {
        let relay: ScriptedRelay
        private var begun: OutgoingMail?
        init(relay: ScriptedRelay) { self.relay = relay }

        func begin(_ mail: OutgoingMail, following: OutgoingMail?) throws(DeliveryError) {
            begun = mail
        }

        func finish() throws(DeliveryError) {
            if let mail = begun { relay.received.withLockedValue { $0.append(mail.recipient) } }
            begun = nil
        }

        func abandon() {
            begun = nil
        }

        func close() {}
    }
}

/// Freezes the sender that passes a given step, until ``thaw()``.
private final class Freezer: Sendable {
    private let target: OutboxSender.Step
    private let state = NIOLockedValueBox((frozen: false, thawed: false))

    init(at target: OutboxSender.Step) {
        self.target = target
    }

    /// The probe: blocks the calling thread at the target step (and, once frozen, at every step:
    /// a frozen process does nothing) until thawed.
    func pass(_ step: OutboxSender.Step) {
        let stops = state.withLockedValue { state in
            if state.thawed { return false }
            if step == target { state.frozen = true }
            return state.frozen
        }
        guard stops else { return }
        while !state.withLockedValue({ $0.thawed }) { usleep(1000) }
    }

    func waitUntilFrozen() async -> Bool {
        for _ in 0..<2000 {
            if state.withLockedValue({ $0.frozen }) { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return false
    }

    func thaw() {
        state.withLockedValue { $0.thawed = true }
    }
}
