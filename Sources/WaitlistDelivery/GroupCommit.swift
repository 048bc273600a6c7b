import Foundation
import WaitlistCore

/// Writes items that several threads want recorded durably on a thread of its own, one write
/// transaction for all the items that arrive while the previous one is being written.
///
/// The lanes of a sender record each message sent right after the relay's `250`. One transaction
/// per message made the database's single writer the limit on how fast all lanes together could
/// go; and a lane that waited for its transaction could not talk to the relay meanwhile. Here a
/// lane hands its items over (``submit(_:)``) and goes on; the writer thread writes everything
/// handed over since its last transaction in one; the lane waits for its ``Ticket`` only where it
/// must (the sender: before the end of its next message).
///
/// Each transaction has a cost of its own (locks, WAL frames, waking the lanes), and a writer that
/// began one as soon as an item came wrote groups of 1.6 items on average, while the lanes spent a
/// third of their time waiting for it. So the writer may gather: it begins a transaction once
/// ``fullGroup`` items wait, or someone waits for one of them, or the first has waited
/// ``longestGathering``. A sender's lanes hold at most one unwritten record each, so its full group
/// is one record per lane.
///
/// The writer thread starts with the first item and ends after a second without any.
package final class GroupCommit<Item>: @unchecked Sendable {
    /// The items that go into one transaction, and how it went.
    fileprivate final class Group {
        var items: [Item] = []
        var isWritten = false
        var failure: (any Error)?
        /// Tasks awaiting this group (``Ticket/written()``), resumed once it is written.
        var awaiting: [CheckedContinuation<Void, any Error>] = []
        /// Threads waiting for this group (``Ticket/wait()``), each woken once it is written.
        var waiting: [DispatchSemaphore] = []
    }

    /// A claim on the outcome of one submitted item.
    package struct Ticket {
        fileprivate let group: Group
        fileprivate let owner: GroupCommit<Item>

        /// Waits until the transaction holding the item is committed; throws what writing it threw.
        package func wait() throws {
            owner.condition.lock()
            if !group.isWritten {
                let woken = DispatchSemaphore(value: 0)
                group.waiting.append(woken)
                let demands = owner.demand(group)
                owner.condition.unlock()
                if demands { owner.condition.signal() }
                woken.wait()
            } else {
                owner.condition.unlock()
            }
            // Set before the group was marked written, under the lock or before the wake.
            if let failure = group.failure { throw failure }
        }

        /// Awaits, without holding a thread, the commit of the transaction holding the item; throws
        /// what writing it threw.
        package func written() async throws {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                owner.condition.lock()
                guard !group.isWritten else {
                    owner.condition.unlock()
                    continuation.resume(with: group.failure.map { .failure($0) } ?? .success(()))
                    return
                }
                group.awaiting.append(continuation)
                let demands = owner.demand(group)
                owner.condition.unlock()
                if demands { owner.condition.signal() }
            }
        }
    }

    /// Guards every property below and the groups' own. Only the writer thread waits on it, for
    /// items to write; whoever waits for a group is woken on its own, once that group is written.
    /// (One condition for all, broadcast at every item and every commit, woke every waiting lane
    /// for each and had them queue for the lock: most of a sender's futex calls.)
    fileprivate let condition = NSCondition()
    /// Where new items go.
    private var gathering = Group()
    /// Whether the writer thread runs.
    private var hasWriter = false
    /// Whether a caller waits for the gathering group.
    fileprivate var isDemanded = false
    /// The writer begins a transaction once this many items are gathered…
    package let fullGroup: Int
    /// …or a caller waits for one of them, or the first has waited this long (seconds).
    package let longestGathering: TimeInterval
    private let write: ([Item]) throws -> Void
    private let threadName: String

    /// - Parameters:
    ///   - fullGroup: how many items make a group worth writing at once; 1 writes each item as it
    ///     comes (and whatever else came while the writer was busy).
    ///   - longestGathering: how long the first item of a group waits for more, at most.
    ///   - write: writes a group of items in one transaction; called on the writer thread.
    package init(threadName: String, fullGroup: Int = 1, longestGathering: TimeInterval = 0, write: @escaping ([Item]) throws -> Void) {
        self.threadName = threadName
        self.fullGroup = max(1, fullGroup)
        self.longestGathering = longestGathering
        self.write = write
    }

    /// Hands `item` over to be written soon, with whatever else arrives meanwhile.
    package func submit(_ item: Item) -> Ticket {
        condition.lock()
        let group = gathering
        group.items.append(item)
        // The first item starts the gathering; a full group ends it.
        var wakesWriter = false
        if hasWriter {
            wakesWriter = group.items.count == 1 || group.items.count == fullGroup
        } else {
            hasWriter = true
            let thread = Thread { [self] in runWriter() }
            thread.name = threadName
            thread.start()
        }
        condition.unlock()
        if wakesWriter { condition.signal() }
        return Ticket(group: group, owner: self)
    }

    /// Someone waits for `group`: when it is still gathering, the writer stops gathering. Called
    /// with the lock held; whether the writer must be woken for that.
    fileprivate func demand(_ group: Group) -> Bool {
        guard group === gathering && !isDemanded else { return false }
        isDemanded = true
        return true
    }

    private func runWriter() {
        condition.lock()
        defer { condition.unlock() }
        while true {
            let idleUntil = Date().addingTimeInterval(1)
            while gathering.items.isEmpty && condition.wait(until: idleUntil) {}
            if gathering.items.isEmpty {
                hasWriter = false
                return
            }
            if gathering.items.count < fullGroup && !isDemanded {
                let gatherUntil = Date().addingTimeInterval(longestGathering)
                while gathering.items.count < fullGroup && !isDemanded && condition.wait(until: gatherUntil) {}
            }
            let writing = gathering
            gathering = Group()
            isDemanded = false
            condition.unlock()
            do {
                try write(writing.items)
            } catch {
                writing.failure = error
            }
            condition.lock()
            writing.isWritten = true
            let (waiting, awaiting) = (writing.waiting, writing.awaiting)
            (writing.waiting, writing.awaiting) = ([], [])
            condition.unlock()
            for woken in waiting { woken.signal() }
            for continuation in awaiting {
                continuation.resume(with: writing.failure.map { .failure($0) } ?? .success(()))
            }
            condition.lock()
        }
    }
}
