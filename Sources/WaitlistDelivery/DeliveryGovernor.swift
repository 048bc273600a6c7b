import Foundation
import NIOConcurrencyHelpers
import WaitlistCore
import WaitlistMail

/// Decides when the sender's lanes may hand the relay their next message: it spaces messages to
/// `WAITLIST_SEND_RATE`, pauses every lane after a transient failure (a `421`, a `4xx`, a refused
/// connection) for longer and longer while failures go on, and stops the sending when the relay
/// looks broken rather than the recipients bad.
final class DeliveryGovernor: Sendable {
    /// How the governor reacts to failures.
    struct Policy: Sendable {
        /// Most messages per second over all lanes; `nil` is no limit.
        var rate: Rate?
        /// The pause after the first transient failure; doubled for each further one in a row.
        var firstPause: TimeInterval = 0.5
        /// Pauses never grow longer than this.
        var longestPause: TimeInterval = 60
        /// After this many transient failures in a row, stop (`nil`: never stop, keep pausing).
        var transientFailuresToStop: Int?
        /// Policy refusals (`5.7.x`) of this many recipients in a row, with nothing else between them…
        var policyRefusalsToStop = 5
        /// …across at least this many domains, are the relay refusing us, not the recipients refusing mail.
        var policyRefusalDomainsToStop = 3
        /// In a long-running worker, how long to wait before trying again after such a stop.
        var pauseAfterStop: TimeInterval = 300
        /// Whether a stop ends the run (commands) or only pauses it (the server's worker).
        var stopsForGood: Bool
    }

    private struct State {
        var nextSlot = Date.distantPast
        var pausedUntil = Date.distantPast
        var pause: TimeInterval = 0
        var transientStreak = 0
        /// The policy refusals since anything else happened: message and recipient domain.
        var policyStreak: [(outboxId: Int64, domain: String)] = []
        var stopReason: String?
        /// Until when permanent refusals are blamed on the relay (after a run of them).
        var blameRelayUntil = Date.distantPast
    }

    let policy: Policy
    private let now: @Sendable () -> Date
    private let sleep: @Sendable (TimeInterval) -> Void
    private let state = NIOLockedValueBox(State())

    init(
        policy: Policy, now: @escaping @Sendable () -> Date = { Date() },
        sleep: @escaping @Sendable (TimeInterval) -> Void = { Thread.sleep(forTimeInterval: $0) }
    ) {
        self.policy = policy
        self.now = now
        self.sleep = sleep
    }

    /// Why sending stopped for good, if it did.
    var stopReason: String? { state.withLockedValue { $0.stopReason } }

    /// Blocks the calling lane until it may send; `false` when it must stop instead.
    func awaitTurn(isStopping: () -> Bool) -> Bool {
        while true {
            if isStopping() { return false }
            guard let wait = takeTurn() else { return false }
            if wait <= 0 { return true }
            // Sleep in short steps so a stop is noticed quickly.
            sleep(min(wait, 0.25))
        }
    }

    /// Takes a turn if the lane may send at once; `false`, and nothing taken, when a pause or the
    /// rate says wait or sending stopped.
    func takeTurnNow() -> Bool {
        takeTurn().map { $0 <= 0 } ?? false
    }

    /// Takes a turn that is due now (0), or says how long until one is, or `nil` once sending stopped.
    private func takeTurn() -> TimeInterval? {
        let interval = policy.rate.map { 1 / $0.perSecond }
        return state.withLockedValue { state in
            if state.stopReason != nil { return nil }
            let now = now()
            if state.pausedUntil > now { return state.pausedUntil.timeIntervalSince(now) }
            guard let interval else { return 0 }
            let slot = max(now, state.nextSlot)
            if slot > now { return slot.timeIntervalSince(now) }
            state.nextSlot = slot.addingTimeInterval(interval)
            return 0
        }
    }

    /// The relay accepted a message: failures are no longer "in a row".
    func recordSuccess() {
        state.withLockedValue { state in
            state.transientStreak = 0
            state.policyStreak = []
            state.pause = 0
        }
    }

    /// A transient failure: every lane pauses, longer each time while they go on.
    func recordTransient(reason: String) {
        state.withLockedValue { state in
            state.transientStreak += 1
            state.pause = state.pause == 0 ? policy.firstPause : min(policy.longestPause, state.pause * 2)
            state.pausedUntil = now().addingTimeInterval(state.pause)
            if let limit = policy.transientFailuresToStop, state.transientStreak >= limit, state.stopReason == nil {
                state.stopReason = "The SMTP relay failed \(state.transientStreak) times in a row (the last: \(reason))"
            }
        }
    }

    /// The relay refused one recipient or message for good (`outboxId`, to an address at `domain`;
    /// `isPolicy` for a `5.7.x` refusal).
    ///
    /// A refusal without a policy reason (`550 5.1.1 no such user`) is the recipient's alone: it
    /// only ends a run of policy refusals. Policy refusals (`5.7.x`) of several recipients in a
    /// row across several domains are the relay refusing us.
    ///
    /// - Returns: the messages whose refusals are to be taken back, when this refusal completes such a
    ///   run (or comes while the relay is blamed); otherwise an empty list.
    func recordPermanent(outboxId: Int64, domain: String, isPolicy: Bool, reason: String) -> [Int64] {
        state.withLockedValue { state in
            guard isPolicy else {
                state.policyStreak = []
                return []
            }
            // Messages still in flight when the relay was found refusing everyone are its doing too.
            if now() < state.blameRelayUntil { return [outboxId] }
            state.policyStreak.append((outboxId, domain.lowercased()))
            let domains = Set(state.policyStreak.map(\.domain))
            guard state.policyStreak.count >= policy.policyRefusalsToStop, domains.count >= policy.policyRefusalDomainsToStop else {
                return []
            }
            let streak = state.policyStreak.map(\.outboxId)
            state.policyStreak = []
            blameRelay(
                &state,
                reason: "The SMTP relay refused \(streak.count) recipients at \(domains.count) domains in a row for a policy reason "
                    + "(the last: \(reason)); that looks like the relay refusing us, not bad addresses, so nobody was marked bounced")
            return streak
        }
    }

    /// The relay refused us (the login, or the sender at `MAIL FROM`): sending stops, or pauses in the server.
    func recordSenderRefused(reason: String) {
        state.withLockedValue { state in
            blameRelay(&state, reason: "The SMTP relay refuses to take mail from us: \(reason)")
        }
    }

    private func blameRelay(_ state: inout State, reason: String) {
        if policy.stopsForGood {
            state.blameRelayUntil = .distantFuture
            if state.stopReason == nil { state.stopReason = reason }
        } else {
            state.pausedUntil = now().addingTimeInterval(policy.pauseAfterStop)
            state.blameRelayUntil = state.pausedUntil
        }
    }
}
