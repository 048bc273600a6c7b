import Foundation
import Logging
import Metrics
import Synchronization

/// Delivers the outbox: claims due rows by lease, renders each mail, hands it to the transport and
/// records the outcome right after the relay's answer.
///
/// It runs ``concurrency`` lanes, each on a thread of its own with one transport session (one SMTP
/// connection reused across messages). Any number of senders, in this process or another, may
/// work on the same database: the lease decides who sends what.
public final class OutboxSender: Sendable {
    /// How a run ends.
    public enum Mode: Sendable {
        /// Until everything due is delivered (waiting for rows other senders hold), then return.
        case drain
        /// Until ``stop()``; idle lanes wait for ``wake()`` or poll every second.
        case continuous
    }

    /// What one run did, and what it left behind.
    public struct Summary: Sendable, Equatable {
        public var sent = 0
        public var failed = 0
        public var retried = 0
        /// Still queued for a later retry when the run ended.
        public var leftQueued = 0
        /// The last transient failure, to explain what is left.
        public var lastTransientError: String?
        /// Why the run stopped before the outbox was empty: the relay looks broken.
        public var stopReason: String?
    }

    /// One delivery's outcome, for progress displays.
    public enum Outcome: Sendable {
        case sent
        case retryLater
        case failed
    }

    let database: AppDatabase
    let transport: any MailTransport
    let composer: MailComposer
    let concurrency: Int
    let logger: Logger
    /// Who holds the leases this sender takes: host, process and a random part.
    let owner: String
    let batchSize: Int
    /// How long a claim holds a row; renewed while the rows are in hand, so it only runs out when
    /// the process holding it died.
    let lease: TimeInterval
    /// The current time; tests move it.
    let now: @Sendable () -> Date
    /// Most messages per second over all lanes (`WAITLIST_SEND_RATE`), `nil` for no limit.
    let rate: Rate?
    private let state = Mutex(State())
    private let doorbell = Doorbell()
    /// Marks delivered messages sent; what the lanes hand over at about the same time shares a transaction.
    private let marks: GroupCommit<Int64>
    /// `waitlist_mail_sent_total` by kind, made once: a sender counts every message.
    private let sentCounters: [MailKind: Counter]

    private struct State {
        var stopping = false
        var summary = Summary()
        /// Paces the lanes of the current run and watches for a broken relay.
        var governor: DeliveryGovernor?
    }

    public init(
        database: AppDatabase, transport: any MailTransport, composer: MailComposer, concurrency: Int, logger: Logger,
        batchSize: Int = 25, lease: TimeInterval = 45, rate: Rate? = nil, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.rate = rate
        self.now = now
        self.database = database
        self.transport = transport
        self.composer = composer
        self.concurrency = max(1, concurrency)
        self.logger = logger
        self.batchSize = batchSize
        self.lease = lease
        self.owner = "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier):\(Token.generate().value.prefix(8))"
        // A lane holds one unwritten mark at most: the marks of every lane make a full group.
        self.marks = GroupCommit(threadName: "waitlist-marks", fullGroup: self.concurrency, longestGathering: 0.002) { ids in
            try database.recordSent(ids: ids, now: now())
        }
        self.sentCounters = Dictionary(
            uniqueKeysWithValues: [MailKind.confirmation, .announcement].map {
                ($0, Counter(label: "waitlist_mail_sent_total", dimensions: [("kind", $0.rawValue)]))
            })
    }

    /// Asks the lanes to stop after the messages in flight.
    public func stop() {
        state.withLock { $0.stopping = true }
        doorbell.ring()
    }

    /// Tells idle lanes that new mail is queued.
    public func wake() {
        doorbell.ring()
    }

    var isStopping: Bool { state.withLock { $0.stopping } }

    private var governor: DeliveryGovernor? { state.withLock { $0.governor } }

    /// Runs the lanes; in ``Mode/drain`` returns once nothing due is left, waiting for rows that
    /// other senders hold until they are sent or their lease runs out.
    ///
    /// - Parameter progress: called from the lanes' threads after every delivery.
    @discardableResult
    public func run(mode: Mode, progress: @escaping @Sendable (Outcome) -> Void = { _ in }) async throws -> Summary {
        let governor = DeliveryGovernor(
            policy: .init(rate: rate, transientFailuresToStop: mode == .drain ? 5 : nil, stopsForGood: mode == .drain))
        state.withLock {
            $0.summary = Summary()
            $0.governor = governor
        }
        while true {
            try await runLanes(mode: mode, progress: progress)
            // The lanes' records of sent mail become outbox states (claims do it too, as they go).
            try database.applySentRecords()
            if mode == .continuous || isStopping || governor.stopReason != nil { break }
            let backlog = try database.backlog(now: now())
            if backlog.ready == 0 && backlog.leased == 0 { break }
            if backlog.ready == 0 {
                // Rows held by another sender: wait for it to finish them, or for its lease to run out.
                try await Task.sleep(for: .milliseconds(500))
            }
        }
        let left = try database.backlog(now: now())
        return state.withLock { state in
            state.summary.leftQueued = left.ready + left.leased + left.later
            state.summary.stopReason = governor.stopReason
            return state.summary
        }
    }

    private func runLanes(mode: Mode, progress: @escaping @Sendable (Outcome) -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<concurrency {
                group.addTask {
                    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                        let thread = Thread {
                            do {
                                try self.runLane(mode: mode, progress: progress)
                                continuation.resume()
                            } catch {
                                continuation.resume(throwing: error)
                            }
                        }
                        thread.name = "waitlist-mail-\(lane)"
                        thread.start()
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// One lane: claim a batch, deliver it message by message over one session, repeat.
    private func runLane(mode: Mode, progress: @Sendable (Outcome) -> Void) throws {
        var session: (any MailSession)?
        let laneMarks = LaneMarks(marks, logger: logger)
        defer {
            laneMarks.settle()
            session?.close()
        }
        while !isStopping {
            let batch: [Delivery]
            do {
                batch = try database.claimDue(owner: owner, limit: batchSize, lease: lease, now: now())
            } catch {
                if mode == .drain { throw WaitlistError(.unavailable, "The database is not answering: \(AppDatabase.describe(error)).") }
                logger.error("Cannot claim mail from the outbox", metadata: ["error": "\(AppDatabase.describe(error))"])
                doorbell.wait(timeout: 5)
                continue
            }
            if batch.isEmpty {
                if mode == .drain { return }
                // Nothing due: close the connection while idle, and wait for new mail.
                session?.close()
                session = nil
                doorbell.wait(timeout: 1)
                continue
            }
            var leaseTakenAt = now()
            for (index, delivery) in batch.enumerated() {
                let remaining = { batch[index...].map(\.outboxId) }
                if isStopping {
                    try? database.releaseLease(ids: remaining(), owner: owner)
                    return
                }
                // Renew the lease once a quarter of it is gone, so it never runs out while we hold the rows.
                if now().timeIntervalSince(leaseTakenAt) > lease / 4 {
                    try? database.renewLease(ids: remaining(), owner: owner, lease: lease, now: now())
                    leaseTakenAt = now()
                }
                guard governor?.awaitTurn(isStopping: { isStopping }) ?? true else {
                    try? database.releaseLease(ids: remaining(), owner: owner)
                    return
                }
                progress(deliver(delivery, session: &session, laneMarks: laneMarks))
            }
        }
    }

    /// Sends one message and records the outcome.
    ///
    /// A message's mark is handed to ``marks`` and written while the lane sends the next message:
    /// the lane waits for it just before that message's last bytes (`beforeEnd`), and holds the
    /// message back if it failed. So a lane never has more than one message accepted by the relay
    /// and not recorded: a crash repeats at most one message per lane. (The tokens were stored
    /// by the claim, before any of its messages could go out.)
    private func deliver(_ delivery: Delivery, session: inout (any MailSession)?, laneMarks: LaneMarks) -> Outcome {
        let rendersItself: Bool
        do throws(DeliveryError) {
            if session == nil { session = try transport.makeSession() }
            if let session = session as? any RenderedMailSession {
                rendersItself = false
                let bytes = composer.renderedMessage(for: delivery, now: now())
                try session.send(rendered: bytes, from: composer.from.address, to: delivery.recipient, beforeEnd: laneMarks.settle)
            } else {
                rendersItself = true
                guard laneMarks.settle() else { throw .transient(LaneMarks.heldBackReason) }
                try session!.send(composer.message(for: delivery, now: now()))
            }
        } catch {
            // The session may be in an unknown state after a failure: start afresh next time.
            session?.close()
            session = nil
            let failure: DeliveryError = laneMarks.heldBack ? .transient(LaneMarks.heldBackReason) : error
            return record(failure: failure, of: delivery)
        }
        laneMarks.sent(delivery)
        // Sessions without the hook before the end (files, test doubles) wait for the mark here.
        if rendersItself { laneMarks.settle() }
        governor?.recordSuccess()
        sentCounters[delivery.kind]?.increment()
        logger.debug("Mail delivered", metadata: delivery.logMetadata)
        state.withLock { $0.summary.sent += 1 }
        return .sent
    }

    private func record(failure: DeliveryError, of delivery: Delivery) -> Outcome {
        let newState = (try? database.markFailed(id: delivery.outboxId, error: failure, now: now())) ?? .queued
        let details = delivery.logMetadata.merging(["reason": "\(failure.reason)"]) { $1 }
        if case .permanent = failure, let governor {
            let blamed = governor.recordPermanent(outboxId: delivery.outboxId, reason: failure.reason)
            if !blamed.isEmpty {
                // So many refusals in a row are the relay's doing: take them back and let the run stop or pause.
                try? database.revertRefusals(outboxIds: blamed, now: now())
                logger.error("The relay refuses every recipient; nobody is marked bounced", metadata: details)
                state.withLock { $0.summary.failed -= blamed.count - 1 }
                return .retryLater
            }
        }
        if newState == .failed {
            Counter(label: "waitlist_mail_failed_total", dimensions: [("kind", delivery.kind.rawValue)]).increment()
            logger.warning("Mail refused for good", metadata: details)
            state.withLock { $0.summary.failed += 1 }
            return .failed
        }
        if case .transient = failure { governor?.recordTransient(reason: failure.reason) }
        Counter(label: "waitlist_mail_retried_total", dimensions: [("kind", delivery.kind.rawValue)]).increment()
        logger.notice("Mail will be retried", metadata: details)
        state.withLock {
            $0.summary.retried += 1
            $0.summary.lastTransientError = failure.reason
        }
        return .retryLater
    }
}

/// The marks one lane has handed over and not yet seen written.
private final class LaneMarks {
    private let marks: GroupCommit<Int64>
    private let logger: Logger
    /// Each handed-over mark, with the message it marks sent.
    private var pending: [(ticket: GroupCommit<Int64>.Ticket, delivery: Delivery)] = []
    /// Whether the last ``settle()`` found a failure, so the message it guarded was held back.
    private(set) var heldBack = false

    static let heldBackReason = "Not sent: the database could not record the previous message as sent."

    init(_ marks: GroupCommit<Int64>, logger: Logger) {
        self.marks = marks
        self.logger = logger
    }

    /// Hands over the mark of a message the relay accepted.
    func sent(_ delivery: Delivery) {
        pending.append((marks.submit(delivery.outboxId), delivery))
    }

    /// Waits until every mark handed over is written; `false` when some could not be.
    @discardableResult
    func settle() -> Bool {
        heldBack = false
        for (ticket, delivery) in pending {
            do {
                try ticket.wait()
            } catch {
                heldBack = true
                // Delivered but not recorded: the lease runs out and the row may go again.
                logger.critical(
                    "Mail delivered but not recorded as sent", metadata: delivery.logMetadata.merging(["error": "\(error)"]) { $1 })
            }
        }
        pending.removeAll()
        return !heldBack
    }
}

/// Wakes threads waiting for work: a ring is remembered until a waiter takes it.
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

extension Delivery {
    /// What the logs say about a delivery; made only when a line is written.
    fileprivate var logMetadata: Logger.Metadata {
        ["outbox": "\(outboxId)", "kind": "\(kind.rawValue)", "attempt": "\(attempt)"]
    }
}
