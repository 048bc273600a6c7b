import Foundation
import GRDB
import Synchronization

/// How a connection waits for another's lock: it looks again every millisecond
/// (``AppDatabase/busyPollInterval``), up to ``timeout`` in all, or up to a shorter time while a
/// call on the writer holds other writers off as it waits (``shortened(to:_:)``).
///
/// SQLite's own timeout looks again after ever longer sleeps (up to 100 ms), so a waiting signup
/// missed the short gaps between `open`'s chunks and waited seconds behind a process that kept
/// taking the lock back.
final class BusyWait: Sendable {
    /// How long a wait may last, unless shortened.
    let timeout: TimeInterval
    /// The looks a wait may take while shortened; 0 when it is not.
    private let shortenedTries = Atomic<Int>(0)

    init(timeout: TimeInterval) {
        self.timeout = timeout
    }

    /// The busy handler of the connections configured with this wait.
    var callback: Database.BusyCallback {
        let tries = Self.tries(timeout)
        return { [self] numberOfTries in
            let shortened = shortenedTries.load(ordering: .relaxed)
            guard numberOfTries < (shortened > 0 ? shortened : tries) else { return false }
            usleep(useconds_t(AppDatabase.busyPollInterval * 1_000_000))
            return true
        }
    }

    /// Runs `body` with every wait of these connections ending after `seconds`: for a call on the
    /// writer (which runs one call at a time) that holds the other writers off while it waits.
    func shortened<T>(to seconds: TimeInterval, _ body: () throws -> T) rethrows -> T {
        shortenedTries.store(max(Self.tries(seconds), 1), ordering: .relaxed)
        defer { shortenedTries.store(0, ordering: .relaxed) }
        return try body()
    }

    private static func tries(_ seconds: TimeInterval) -> Int {
        Int((seconds / AppDatabase.busyPollInterval).rounded())
    }
}
