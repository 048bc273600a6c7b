import Foundation
import GRDB
import Synchronization
import WaitlistCore

/// How a connection waits for another's lock: it looks again every millisecond
/// (``AppDatabase/busyPollInterval``) until ``timeout`` has passed since its first look, or a
/// shorter time while a call on the writer holds other writers off as it waits
/// (``shortened(to:_:)``).
///
/// SQLite's own timeout looks again after ever longer sleeps (up to 100 ms), so a waiting signup
/// missed the short gaps between `open`'s chunks and waited seconds behind a process that kept
/// taking the lock back. The wait is measured, not counted in looks: each sleep of a millisecond
/// takes longer (a minute of looks took 68 s on a quiet machine, and more under load).
final class BusyWait: Sendable {
    /// How long a wait may last, unless shortened.
    let timeout: TimeInterval
    /// How long a wait may last while shortened, in microseconds; 0 when it is not.
    private let shortenedMicroseconds = Atomic<Int>(0)
    /// Sleeps between two looks; tests pass one that oversleeps.
    private let sleep: @Sendable (TimeInterval) -> Void

    init(timeout: TimeInterval, sleep: @escaping @Sendable (TimeInterval) -> Void = { usleep(useconds_t($0 * 1_000_000)) }) {
        self.timeout = timeout
        self.sleep = sleep
    }

    /// The busy handler of the connections configured with this wait. SQLite calls it on the
    /// thread that waits, with 0 for the first look of each wait.
    var callback: Database.BusyCallback {
        { [self] numberOfTries in
            let now = ContinuousClock.now
            let began = Self.began(now, isFirstLook: numberOfTries == 0)
            let shortened = shortenedMicroseconds.load(ordering: .relaxed)
            let limit: Duration = shortened > 0 ? .microseconds(shortened) : .microseconds(Int64(timeout * 1_000_000))
            guard now - began < limit else { return false }
            sleep(AppDatabase.busyPollInterval)
            return true
        }
    }

    /// Runs `body` with every wait of these connections ending after `seconds`: for a call on the
    /// writer (which runs one call at a time) that holds the other writers off while it waits.
    func shortened<T>(to seconds: TimeInterval, _ body: () throws -> T) rethrows -> T {
        shortenedMicroseconds.store(max(Int(seconds * 1_000_000), 1), ordering: .relaxed)
        defer { shortenedMicroseconds.store(0, ordering: .relaxed) }
        return try body()
    }

    private static let beganKey = "waitlist.busyWait.began"

    /// When the current thread's wait began: `now` at its first look, recorded for the next.
    private static func began(_ now: ContinuousClock.Instant, isFirstLook: Bool) -> ContinuousClock.Instant {
        let thread = Thread.current.threadDictionary
        if !isFirstLook, let began = thread[beganKey] as? ContinuousClock.Instant { return began }
        thread[beganKey] = now
        return now
    }
}
