import Foundation
import NIOConcurrencyHelpers
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

@Suite struct GroupCommitTests {
    /// What the write function saw, shared with the threads that commit.
    final class Ledger: Sendable {
        let groups = NIOLockedValueBox<[[Int]]>([])
        var written: Set<Int> { groups.withLockedValue { Set($0.joined()) } }
    }

    /// Runs `body(thread)` on `count` threads at once and waits for all, a minute at most: a thread
    /// that nobody wakes is a failure, not a run that never ends.
    private func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let group = DispatchGroup()
        for index in 0..<count {
            group.enter()
            Thread {
                body(index)
                group.leave()
            }.start()
        }
        if group.wait(timeout: .now() + 60) == .timedOut { Issue.record("a thread still waits after a minute") }
    }

    /// Waits for `ticket` on a thread of its own, a minute at most; what the wait threw, or a
    /// recorded failure when it did not end.
    private func wait(for ticket: GroupCommit<Int>.Ticket) throws {
        nonisolated(unsafe) let ticket = ticket
        let outcome = NIOLockedValueBox<Result<Void, any Error>?>(nil)
        onThreads(1) { _ in
            let result = Result { try ticket.wait() }
            outcome.withLockedValue { $0 = result }
        }
        try outcome.withLockedValue { $0 }?.get()
    }

    @Test func aLoneCallerWritesItsItemAlone() throws {
        let ledger = Ledger()
        let commit = GroupCommit<Int>(threadName: "test-marks") { items in ledger.groups.withLockedValue { $0.append(items) } }
        try wait(for: commit.submit(1))
        try wait(for: commit.submit(2))
        #expect(ledger.groups.withLockedValue { $0 } == [[1], [2]])
    }

    @Test func everyItemIsWrittenOnceAndBeforeItsCallerGoesOn() {
        let ledger = Ledger()
        let commit = GroupCommit<Int>(threadName: "test-marks") { items in
            Thread.sleep(forTimeInterval: 0.002)  // a transaction with a sync to disk
            ledger.groups.withLockedValue { $0.append(items) }
        }
        let early = NIOLockedValueBox<[Int]>([])
        onThreads(8) { thread in
            for round in 0..<25 {
                let item = thread * 100 + round
                do {
                    try commit.submit(item).wait()
                    if !ledger.written.contains(item) { early.withLockedValue { $0.append(item) } }
                } catch {
                    Issue.record("commit failed: \(error)")
                }
            }
        }
        let groups = ledger.groups.withLockedValue { $0 }
        let items = groups.flatMap { $0 }
        #expect(items.count == 200)
        #expect(Set(items).count == 200)
        #expect(early.withLockedValue { $0 }.isEmpty, "returned before written")
        // Eight threads against a slow writer: items share transactions.
        #expect(groups.count < 200)
        #expect(groups.contains { $0.count > 1 })
    }

    @Test func submittingDoesNotWaitForTheWrite() throws {
        let release = DispatchSemaphore(value: 0)
        let ledger = Ledger()
        let commit = GroupCommit<Int>(threadName: "test-marks") { items in
            release.wait()
            ledger.groups.withLockedValue { $0.append(items) }
        }
        // The writer is held up, yet both items are handed over. On a thread of their own: a submit
        // that waited for its write would leave that thread waiting, a failure after a minute.
        final class Handed: @unchecked Sendable { var tickets: [GroupCommit<Int>.Ticket] = [] }
        let handed = Handed()
        onThreads(1) { _ in handed.tickets = [commit.submit(1), commit.submit(2)] }
        #expect(ledger.written.isEmpty)
        release.signal()
        release.signal()
        try #require(handed.tickets.count == 2)
        try wait(for: handed.tickets[0])
        try wait(for: handed.tickets[1])
        #expect(ledger.written == [1, 2])
    }

    @Test func aGatheringWriterWaitsForAFullGroup() throws {
        let ledger = Ledger()
        let commit = GroupCommit<Int>(threadName: "test-marks", fullGroup: 3, longestGathering: 60) { items in
            ledger.groups.withLockedValue { $0.append(items) }
        }
        // Handed over without waiting, with pauses that a writer without gathering would not sit out.
        let tickets = (1...3).map { item in
            defer { Thread.sleep(forTimeInterval: 0.05) }
            return commit.submit(item)
        }
        for ticket in tickets { try wait(for: ticket) }
        #expect(ledger.groups.withLockedValue { $0 } == [[1, 2, 3]])
    }

    @Test func waitingForAnItemEndsTheGathering() throws {
        let ledger = Ledger()
        let commit = GroupCommit<Int>(threadName: "test-marks", fullGroup: 100, longestGathering: 600) { items in
            ledger.groups.withLockedValue { $0.append(items) }
        }
        let first = commit.submit(1)
        Thread.sleep(forTimeInterval: 0.2)  // the writer thread has begun gathering by now
        // The writer would gather for ten minutes; waiting for an item must end that at once.
        let written = DispatchSemaphore(value: 0)
        Thread {
            try? commit.submit(2).wait()
            written.signal()
        }.start()
        try #require(written.wait(timeout: .now() + 30) == .success, "still gathering")
        #expect(ledger.groups.withLockedValue { $0 } == [[1, 2]])
        #expect(throws: Never.self) { try wait(for: first) }
    }

    @Test func aGatheredItemNobodyWaitsForIsWrittenAfterTheLongestGathering() {
        let ledger = Ledger()
        let commit = GroupCommit<Int>(threadName: "test-marks", fullGroup: 100, longestGathering: 0.2) { items in
            ledger.groups.withLockedValue { $0.append(items) }
        }
        let submitted = Date()
        _ = commit.submit(1)
        while ledger.written.isEmpty && Date().timeIntervalSince(submitted) < 30 { Thread.sleep(forTimeInterval: 0.01) }
        #expect(ledger.groups.withLockedValue { $0 } == [[1]])
        #expect(Date().timeIntervalSince(submitted) >= 0.15, "written before the gathering was over")
    }

    @Test func aFailedWriteFailsEveryCallerInItsGroupAndNoOther() {
        struct Refused: Error {}
        let ledger = Ledger()
        let commit = GroupCommit<Int>(threadName: "test-marks") { items in
            Thread.sleep(forTimeInterval: 0.002)
            if items.contains(where: { $0 % 10 == 7 }) { throw Refused() }
            ledger.groups.withLockedValue { $0.append(items) }
        }
        let outcomes = NIOLockedValueBox<[Int: Bool]>([:])
        onThreads(6) { thread in
            for round in 0..<20 {
                let item = thread * 100 + round
                let succeeded = (try? commit.submit(item).wait()) != nil
                outcomes.withLockedValue { $0[item] = succeeded }
            }
        }
        let written = ledger.written
        let outcome = outcomes.withLockedValue { $0 }
        #expect(outcome.count == 120)
        for (item, succeeded) in outcome {
            // Success exactly when the item's transaction was written.
            #expect(succeeded == written.contains(item), "item \(item)")
            if item % 10 == 7 { #expect(!succeeded) }
        }
    }
}
