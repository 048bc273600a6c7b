import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOPosix
import WaitlistCore
import WaitlistMail

/// Delivers the outbox: one process at a time holds the database's sending role; its lanes share
/// the work in memory, render each mail, hand it to the transport and record the outcome right
/// after the relay's answer.
///
/// Any number of senders, in this process or others (`serve`, `open`, `send`), may run on the same
/// database. The one holding the role (``OutboxStore/takeSendingRole(owner:lease:now:)``) sends;
/// the others wait, reporting how much is left, and take the role over once it is free or its
/// lease has run out (the holder died or froze). The holder renews the lease on a thread of its
/// own while it works, and every lane checks, at the point of no return of each message (just
/// before its last bytes), that the lease it holds in memory has at least a quarter left. So no
/// wait (a pause after failures, a rate slot, a slow relay) can outlast the lease unnoticed: a
/// message goes out only from the process that owns it then, and a takeover repeats at most the
/// one message a frozen lane had already finished.
///
/// ``concurrency`` lanes, each with one transport session (one SMTP connection reused across
/// messages), run on a thread pool of the sender's own, so libcurl's and SQLite's blocking calls
/// never hold a thread of Swift's cooperative pool.
public final class OutboxSender: Sendable {
    /// How a run ends.
    public enum Mode: Sendable {
        /// Until everything due is delivered (by this sender or the one holding the role), then return.
        case drain
        /// Until ``stop()``; while idle, wait for ``wake()`` or look for due mail every second.
        case continuous
    }

    /// What one run did, and what it left behind.
    public struct Summary: Sendable, Equatable {
        public var sent = 0
        public var failed = 0
        public var retried = 0
        /// Still queued (due or for a later retry) when the run ended.
        public var leftQueued = 0
        /// The last transient failure, to explain what is left.
        public var lastTransientError: String?
        /// Why the run stopped before the outbox was empty: the relay looks broken, or refuses us.
        public var stopReason: String?
        /// Whether another process held the sending role for a while, and this run waited for it.
        public var waitedForAnotherSender = false
    }

    /// One delivery's outcome, for progress displays.
    public enum Outcome: Sendable {
        case sent
        case retryLater
        case failed
    }

    /// What a run reports as it goes.
    public enum Progress: Sendable {
        /// A lane of this sender is done with a message.
        case delivered(Outcome)
        /// Another process holds the sending role; this many messages are still due.
        case anotherSenderWorks(due: Int)
    }

    /// The steps of one message and of the role, where tests inject freezes and crashes.
    enum Step: Sendable, Equatable {
        /// The renewal is about to renew the role.
        case renew
        /// A lane has a claimed message in hand, before waiting for its turn.
        case claimed(Int64)
        /// A lane is at the message's point of no return.
        case beforeEnd(Int64)
        /// The relay accepted the message, before its record is handed over.
        case accepted(Int64)
    }

    /// The outbox and the sending role.
    let store: any OutboxStore
    let transport: any MailTransport
    let composer: MailComposer
    let concurrency: Int
    let logger: Logger
    /// Who holds the role when this sender does: host, process and a random part.
    let owner: String
    let batchSize: Int
    /// How long the role is held without a renewal (`WAITLIST_SEND_LEASE`).
    let lease: TimeInterval
    /// The current time; tests move it.
    let now: @Sendable () -> Date
    /// Most messages per second over all lanes (`WAITLIST_SEND_RATE`), `nil` for no limit.
    let rate: Rate?
    /// Called at each ``Step``; tests block or record there. `nil` in the service.
    let probe: (@Sendable (Step) -> Void)?
    /// Signs each message's envelope sender when bounces come back to an address of ours; `nil`:
    /// the envelope sender is the From address.
    let bounceTags: BounceTags?
    private let state = NIOLockedValueBox(State())
    private let doorbell = Doorbell()
    /// Records delivered messages; what the lanes hand over at about the same time shares a transaction.
    private let records: GroupCommit<Int64>
    /// `waitlist_mail_sent_total` by kind, made once: a sender counts every message.
    private let sentCounters: [MailKind: Counter]

    private struct State {
        var stopping = false
        var summary = Summary()
        /// Paces the lanes of the current run and watches for a broken relay.
        var governor: DeliveryGovernor?
    }

    public convenience init(
        store: any OutboxStore, transport: any MailTransport, composer: MailComposer, concurrency: Int, logger: Logger,
        batchSize: Int = 25, lease: TimeInterval = 45, rate: Rate? = nil, bounceTags: BounceTags? = nil,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.init(
            store: store, transport: transport, composer: composer, concurrency: concurrency, logger: logger, batchSize: batchSize,
            lease: lease, rate: rate, bounceTags: bounceTags, now: now, probe: nil)
    }

    init(
        store: any OutboxStore, transport: any MailTransport, composer: MailComposer, concurrency: Int, logger: Logger,
        batchSize: Int = 25, lease: TimeInterval = 45, rate: Rate? = nil, bounceTags: BounceTags? = nil,
        now: @escaping @Sendable () -> Date = { Date() }, probe: (@Sendable (Step) -> Void)?
    ) {
        self.rate = rate
        self.bounceTags = bounceTags
        self.now = now
        self.store = store
        self.transport = transport
        self.composer = composer
        self.concurrency = max(1, concurrency)
        self.logger = logger
        self.batchSize = batchSize
        self.lease = lease
        self.probe = probe
        self.owner = "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier):\(SecureRandom.hexDigits(8))"
        // A lane holds one unwritten record at most: the records of every lane make a full group.
        self.records = GroupCommit(threadName: "waitlist-records", fullGroup: self.concurrency, longestGathering: 0.002) { ids in
            try store.recordSent(ids: ids, now: now())
        }
        self.sentCounters = Dictionary(
            uniqueKeysWithValues: [MailKind.confirmation, .announcement].map {
                ($0, Counter(label: "waitlist_mail_sent_total", dimensions: [("kind", $0.rawValue)]))
            })
    }

    /// Asks the lanes to stop after the messages in flight.
    public func stop() {
        state.withLockedValue { $0.stopping = true }
        doorbell.ring()
    }

    /// Tells an idle sender that new mail is queued.
    public func wake() {
        doorbell.ring()
    }

    var isStopping: Bool { state.withLockedValue { $0.stopping } }

    // MARK: - A run

    /// Sends until nothing is due (``Mode/drain``) or until ``stop()`` (``Mode/continuous``),
    /// taking the sending role whenever it is free and waiting while another process holds it.
    ///
    /// - Parameter progress: called from the lanes' threads after every delivery, and while
    ///   another process sends, with what is still due.
    @discardableResult
    public func run(mode: Mode, progress: @escaping @Sendable (Progress) -> Void = { _ in }) async throws -> Summary {
        let governor = DeliveryGovernor(
            policy: .init(rate: rate, transientFailuresToStop: mode == .drain ? 5 : nil, stopsForGood: mode == .drain))
        state.withLockedValue {
            $0.summary = Summary()
            $0.governor = governor
        }
        // Lanes, the renewal and the idle waits: every blocking call of the sender runs here.
        let pool = NIOThreadPool(numberOfThreads: concurrency + 1)
        pool.start()
        do {
            try await withTaskCancellationHandler {
                try await runPeriods(mode: mode, governor: governor, pool: pool, progress: progress)
            } onCancel: {
                stop()
            }
            let left = try await pool.runIfActive { try self.store.backlog(now: self.now()) }
            try await pool.shutdownGracefully()
            return state.withLockedValue { state in
                state.summary.leftQueued = left.ready + left.later
                state.summary.stopReason = governor.stopReason
                return state.summary
            }
        } catch {
            try? await pool.shutdownGracefully()  // the run failed already; the pool's threads end either way
            throw error
        }
    }

    /// What a run does next.
    enum NextStep: Sendable {
        /// Nothing is due (a command's run ends).
        case finished
        /// Wait this many seconds, or until woken, and look again.
        case wait(TimeInterval)
        /// This sender holds the role now: send.
        case work(HeldRole)
    }

    /// Takes the role whenever there is due mail and it is free, and sends until nothing is due.
    /// Every database call and wait runs on the sender's pool, never on Swift's cooperative threads.
    private func runPeriods(
        mode: Mode, governor: DeliveryGovernor, pool: NIOThreadPool, progress: @escaping @Sendable (Progress) -> Void
    ) async throws {
        while !isStopping && governor.stopReason == nil {
            switch try await pool.runIfActive({ try self.nextStep(mode: mode, progress: progress) }) {
            case .finished:
                return
            case .wait(let seconds):
                await doorbell.wait(timeout: .seconds(seconds))
            case .work(let role):
                if !(try await work(role: role, mode: mode, governor: governor, pool: pool, progress: progress)) {
                    // Due mail that no claim returned (another sender took it meanwhile): look again in a moment.
                    await doorbell.wait(timeout: .milliseconds(500))
                }
            }
        }
    }

    /// Looks for due mail and, when there is some, tries to take the role.
    ///
    /// The lease in memory counts from the same reading of the clock as the database's: a later
    /// one (after the write waited for the lock, or after a freeze) would let the lanes believe in
    /// a lease the database has already ended, and finish a message another sender may take over
    /// (the model in `Tests/model` found this, `-DTAKEN_AT_LATER`).
    func nextStep(mode: Mode, progress: @Sendable (Progress) -> Void) throws -> NextStep {
        let holder: SendingRoleHolder?
        let takenAt = now()
        do {
            guard try store.hasDueMail(now: takenAt) else { return mode == .drain ? .finished : .wait(1) }
            holder = try store.takeSendingRole(owner: owner, lease: lease, now: takenAt)
        } catch {
            try unavailable(error, mode: mode)
            return .wait(5)
        }
        guard let holder else { return .work(HeldRole(owner: owner, lease: lease, takenAt: takenAt, now: now)) }
        // Another process sends: show what is left, and take over once it is done or gone.
        state.withLockedValue { $0.summary.waitedForAnotherSender = true }
        if mode == .drain, let due = try? store.backlog(now: now()).ready {  // only for the display: skipped when busy
            progress(.anotherSenderWorks(due: due))
        }
        logger.debug("Another sender holds the role", metadata: ["holder": "\(holder.owner)"])
        return .wait(1)
    }

    /// A database failure outside the lanes: the end of a command's run (exit 69), a logged
    /// error and a retry for the server's worker.
    private func unavailable(_ error: any Error, mode: Mode) throws {
        if mode == .drain { throw WaitlistError(.unavailable, "The database is not answering: \(store.describe(error)).") }
        logger.error("Cannot read the outbox", metadata: ["error": "\(store.describe(error))"])
    }

    /// One period of holding the role: the lanes send until nothing is due, the run stops, or
    /// the role is lost; then the role is given up.
    ///
    /// - Returns: whether any claim of the period returned mail.
    private func work(
        role: HeldRole, mode: Mode, governor: DeliveryGovernor, pool: NIOThreadPool, progress: @escaping @Sendable (Progress) -> Void
    ) async throws -> Bool {
        let queue = WorkQueue(sender: self, role: role)
        let renewal = Task { await self.renew(role, pool: pool) }
        let failure: (any Error)?
        do {
            try await withThrowingTaskGroup(of: Void.self) { lanes in
                for _ in 0..<concurrency {
                    lanes.addTask { try await pool.runIfActive { self.runLane(queue: queue, governor: governor, progress: progress) } }
                }
                try await lanes.waitForAll()
            }
            failure = queue.failure
        } catch {
            failure = error
        }
        role.end()
        renewal.cancel()
        await renewal.value  // it ends with the period; a failure of its own was logged there
        try await pool.runIfActive { self.endPeriod(queue) }
        if let failure, mode == .drain { throw failure }
        return queue.claimedAny
    }

    /// After the lanes: what was claimed and not sent goes back, the records of sent mail become
    /// outbox states (claims do that too, as they go), and the role is given up.
    private func endPeriod(_ queue: WorkQueue) {
        queue.giveBackUnsent()
        do {
            try store.applySentRecords()
            try store.releaseSendingRole(owner: owner)
        } catch {
            // The records stay and are applied by the next claim; the role's lease runs out by itself.
            logger.warning("Cannot give up the sending role", metadata: ["error": "\(store.describe(error))"])
        }
    }

    /// Renews the role every fifth of its lease until the period ends (the task is cancelled) or
    /// the role is lost. It waits holding no thread; each renewal runs on the sender's pool.
    private func renew(_ role: HeldRole, pool: NIOThreadPool) async {
        let interval = Duration.seconds(max(lease / 5, 0.01))
        while (try? await Task.sleep(for: interval)) != nil, role.isHeld {
            do {
                try await pool.runIfActive {
                    self.probe?(.renew)
                    let started = self.now()
                    do {
                        if try self.store.renewSendingRole(owner: self.owner, lease: self.lease, now: started) {
                            role.renewed(at: started)
                        } else {
                            self.logger.warning("Another sender took the sending role over; this one stops")
                            role.lose()
                        }
                    } catch {
                        self.logger.error("Cannot renew the sending role", metadata: ["error": "\(self.store.describe(error))"])
                    }
                }
            } catch {
                return  // the pool is shutting down with the run
            }
        }
    }

    // MARK: - Lanes

    /// A message a lane has claimed for after the one it is sending.
    private struct Upcoming {
        var delivery: Delivery
        /// Rendered, once its turn was taken: its envelope goes out after the end of the message
        /// before it. `nil`: it waits for its turn first.
        var mail: OutgoingMail?
    }

    /// One lane: take the next message, wait for its turn, deliver it over the lane's session.
    ///
    /// While it sends a message the lane already holds the one after it, when one is waiting and
    /// its turn is due at once (no pause, no rate to wait for): that message's envelope then goes
    /// out right after the end of this one, and nothing of it can be accepted before its own end.
    /// A lane that stops, or whose message failed, sends no such message on that connection: the
    /// message goes back unsent (stop) or waits for its turn again on a new connection (failure).
    private func runLane(queue: WorkQueue, governor: DeliveryGovernor, progress: @Sendable (Progress) -> Void) {
        var session: (any MailSession)?
        var upcoming: Upcoming?
        let laneRecords = LaneRecords(records, logger: logger) { queue.finished($0) }
        defer {
            if let upcoming { queue.giveBack(upcoming.delivery) }
            laneRecords.settle()
            session?.close()
        }
        var ranOut = false
        while true {
            let delivery: Delivery
            var mail: OutgoingMail?
            if let held = upcoming {
                (delivery, mail) = (held.delivery, held.mail)
                upcoming = nil
            } else {
                guard !ranOut, let next = queue.next() else { return }
                probe?(.claimed(next.outboxId))
                delivery = next
            }
            let mustStop = { self.isStopping || !queue.role.mayFinish }
            guard mail == nil ? governor.awaitTurn(isStopping: mustStop) : !mustStop() else {
                queue.giveBack(delivery)
                return
            }
            let current = mail ?? render(delivery)
            if let next = queue.next() {
                probe?(.claimed(next.outboxId))
                upcoming = Upcoming(delivery: next, mail: governor.takeTurnNow() ? render(next) : nil)
            } else {
                ranOut = true
            }
            let outcome = deliver(
                delivery, mail: current, following: upcoming?.mail, session: &session, records: laneRecords, queue: queue,
                governor: governor)
            if session == nil, let held = upcoming {
                // The connection its envelope went out on is gone: it waits for its turn afresh.
                upcoming = Upcoming(delivery: held.delivery, mail: nil)
            }
            if let outcome { progress(.delivered(outcome)) }
        }
    }

    /// `delivery` as the relay gets it.
    private func render(_ delivery: Delivery) -> OutgoingMail {
        OutgoingMail(
            bytes: composer.renderedMessage(for: delivery, now: now()),
            sender: bounceTags?.envelopeSender(outboxId: delivery.outboxId) ?? composer.from.address, recipient: delivery.recipient)
    }

    /// Sends one message and records the outcome; `nil` when the message was left to another sender.
    ///
    /// A message's record is handed to ``records`` and written while the lane sends the next
    /// message: the lane waits for it at that message's point of no return, and holds the message
    /// back if it failed. So a lane never has more than one message accepted by the relay and not
    /// recorded: a crash repeats at most one message per lane. (The tokens were stored by the
    /// claim, before any of its messages could go out.) After a failure the session is closed,
    /// with any envelope sent ahead.
    private func deliver(
        _ delivery: Delivery, mail: OutgoingMail, following: OutgoingMail?, session: inout (any MailSession)?, records: LaneRecords,
        queue: WorkQueue, governor: DeliveryGovernor
    ) -> Outcome? {
        var roleLost = false
        do throws(DeliveryError) {
            if session == nil { session = try transport.makeSession() }
            try session!.begin(mail, following: following)
            // The point of no return: the message may end only when the lane's earlier records are
            // written and the role is still this sender's, with a quarter of its lease left.
            if records.settle() {
                probe?(.beforeEnd(delivery.outboxId))
                roleLost = !queue.role.mayFinish
            }
            guard !records.heldBack && !roleLost else {
                session!.abandon()
                throw .transient("The message was abandoned before its end; the relay did not accept it.")
            }
            try session!.finish()
        } catch {
            // The session may be in an unknown state after a failure: start afresh next time.
            session?.close()
            session = nil
            if roleLost {
                logger.notice("Mail left to the next sender: the sending role is no longer ours", metadata: delivery.logMetadata)
                queue.abandon(delivery)
                return nil
            }
            return record(
                failure: records.heldBack ? .transient(LaneRecords.heldBackReason) : error, of: delivery, queue: queue, governor: governor)
        }
        probe?(.accepted(delivery.outboxId))
        records.sent(delivery)
        governor.recordSuccess()
        sentCounters[delivery.kind]?.increment()
        logger.debug("Mail delivered", metadata: delivery.logMetadata)
        state.withLockedValue { $0.summary.sent += 1 }
        return .sent
    }

    private func record(failure: DeliveryError, of delivery: Delivery, queue: WorkQueue, governor: DeliveryGovernor) -> Outcome? {
        let details = delivery.logMetadata.merging(["reason": "\(failure.reason)"]) { $1 }
        defer { queue.finished(delivery.outboxId) }
        let newState: OutboxState
        do {
            newState = try store.markFailed(id: delivery.outboxId, error: failure, owner: owner, now: now())
        } catch is SendingRoleLost {
            logger.notice("Mail left to the next sender: the sending role is no longer ours", metadata: details)
            return nil
        } catch {
            // Not written: the row stays queued and due, and goes again (it did not arrive).
            logger.error("Cannot record a failed delivery", metadata: details.merging(["error": "\(store.describe(error))"]) { $1 })
            return .retryLater
        }
        switch failure {
        case .permanent(_, let policy):
            let blamed = governor.recordPermanent(
                outboxId: delivery.outboxId, domain: MailComposer.domain(of: delivery.recipient), isPolicy: policy, reason: failure.reason)
            if !blamed.isEmpty {
                takeBack(refusals: blamed, details: details)
                return .retryLater
            }
        case .senderRefused:
            governor.recordSenderRefused(reason: failure.reason)
            logger.error("The relay refuses to take mail from us; nobody is marked bounced", metadata: details)
        case .transient:
            governor.recordTransient(reason: failure.reason)
        case .deferred:
            break
        }
        if newState == .failed {
            Counter(label: "waitlist_mail_failed_total", dimensions: [("kind", delivery.kind.rawValue)]).increment()
            logger.warning("Mail refused for good", metadata: details)
            state.withLockedValue { $0.summary.failed += 1 }
            return .failed
        }
        Counter(label: "waitlist_mail_retried_total", dimensions: [("kind", delivery.kind.rawValue)]).increment()
        logger.notice("Mail will be retried", metadata: details)
        state.withLockedValue {
            $0.summary.retried += 1
            $0.summary.lastTransientError = failure.reason
        }
        return .retryLater
    }

    /// So many policy refusals in a row are the relay's doing: the refused are queued again and
    /// nobody stays bounced.
    private func takeBack(refusals blamed: [Int64], details: Logger.Metadata) {
        do {
            let retaken = try store.revertRefusals(outboxIds: blamed, now: now())
            logger.error("The relay refuses every recipient; nobody is marked bounced", metadata: details)
            state.withLockedValue { $0.summary.failed -= retaken - 1 }
        } catch {
            logger.critical(
                "The relay refuses every recipient, but the refusals could not be taken back: \(blamed.count) subscribers stay bounced",
                metadata: details.merging(["outbox": "\(blamed.map(String.init).joined(separator: ","))", "error": "\(error)"]) { $1 })
        }
    }
}

extension Delivery {
    /// What the logs say about a delivery; made only when a line is written.
    var logMetadata: Logger.Metadata {
        ["outbox": "\(outboxId)", "kind": "\(kind.rawValue)", "attempt": "\(attempt)"]
    }
}
