import Foundation
import WaitlistCore

/// How many announcements each of `open`'s transactions queues: a fixed number, or as many as fit
/// in a target time on this machine, worked out from how long the chunks before took.
public struct QueuingChunks: Sendable {
    /// Rows of the first chunk.
    let first: Int
    /// The fewest and the most rows of any chunk.
    let bounds: ClosedRange<Int>
    /// How long a chunk should hold the write lock, its commit included; `nil`: every chunk is
    /// `first` rows.
    let target: TimeInterval?
    /// Seconds on a clock that never goes back; tests replace it.
    let clock: @Sendable () -> TimeInterval

    /// Every chunk `rows` announcements.
    public static func fixed(_ rows: Int) -> QueuingChunks {
        QueuingChunks(first: max(1, rows), bounds: max(1, rows)...max(1, rows), target: nil, clock: Self.uptime)
    }

    /// Chunks of about `target` seconds each: the first of `first` rows, each next one scaled by
    /// how long the one before took (at most twice as many rows from one chunk to the next, so
    /// one fast chunk does not make a long one), within `bounds`.
    public static func timed(
        target: TimeInterval, first: Int = 1_000, bounds: ClosedRange<Int> = 100...20_000,
        clock: @escaping @Sendable () -> TimeInterval = Self.uptime
    ) -> QueuingChunks {
        QueuingChunks(first: min(max(first, bounds.lowerBound), bounds.upperBound), bounds: bounds, target: target, clock: clock)
    }

    /// The system's uptime: a clock that never goes back.
    @Sendable public static func uptime() -> TimeInterval { ProcessInfo.processInfo.systemUptime }

    /// The sizes of one run of chunks.
    func sizer() -> Sizer { Sizer(chunks: self, size: first) }

    struct Sizer {
        let chunks: QueuingChunks
        /// Rows of the next chunk.
        private(set) var size: Int

        /// The chunk of ``size`` rows took `seconds`: the next one is sized from it.
        mutating func took(_ seconds: TimeInterval) {
            guard let target = chunks.target else { return }
            let scaled = seconds > 0 ? Double(size) * target / seconds : Double(size) * 2
            let next = Int(min(scaled, Double(size) * 2).rounded())
            size = min(max(next, chunks.bounds.lowerBound), chunks.bounds.upperBound)
        }
    }
}
