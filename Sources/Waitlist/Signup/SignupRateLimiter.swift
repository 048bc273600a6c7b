import Foundation
import Synchronization

/// Counts signup attempts per client address: a token bucket each, holding `rate.count` attempts
/// and refilling at `rate.count` per period.
///
/// Memory stays bounded under a flood of distinct addresses: a client whose bucket has refilled is
/// the same as one never seen, so it is forgotten; and past ``capacity`` clients the ones seen
/// longest ago are dropped.
public final class SignupRateLimiter: Sendable {
    /// What the limiter says about one attempt.
    public enum Decision: Sendable, Equatable {
        case allowed
        /// Over the limit; the next attempt is allowed after this many seconds (at least 1).
        case limited(retryAfter: Int)
    }

    private struct Bucket {
        var tokens: Double
        var updated: Date
    }

    public let rate: Rate
    /// The most clients remembered at once.
    public let capacity: Int
    private let buckets = Mutex<[String: Bucket]>([:])

    public init(rate: Rate, capacity: Int = 100_000) {
        self.rate = rate
        self.capacity = max(capacity, 1)
    }

    /// How many clients are remembered now (for tests and metrics).
    public var trackedClients: Int { buckets.withLock { $0.count } }

    /// Takes one attempt from `client`'s bucket, if there is one left.
    public func attempt(client: String, now: Date) -> Decision {
        let size = Double(rate.count)
        let refillPerSecond = rate.perSecond
        return buckets.withLock { buckets in
            var bucket = buckets[client] ?? Bucket(tokens: size, updated: now)
            let elapsed = max(0, now.timeIntervalSince(bucket.updated))
            bucket.tokens = min(size, bucket.tokens + elapsed * refillPerSecond)
            bucket.updated = now
            guard bucket.tokens >= 1 else {
                buckets[client] = bucket
                return .limited(retryAfter: max(1, Int(((1 - bucket.tokens) / refillPerSecond).rounded(.up))))
            }
            bucket.tokens -= 1
            if buckets[client] == nil, buckets.count >= capacity {
                Self.makeRoom(in: &buckets, capacity: capacity, size: size, refillPerSecond: refillPerSecond, now: now)
            }
            buckets[client] = bucket
            return .allowed
        }
    }

    /// Forgets refilled buckets; if that is not enough, the half seen longest ago.
    private static func makeRoom(in buckets: inout [String: Bucket], capacity: Int, size: Double, refillPerSecond: Double, now: Date) {
        buckets = buckets.filter { _, bucket in bucket.tokens + now.timeIntervalSince(bucket.updated) * refillPerSecond < size }
        guard buckets.count >= capacity else { return }
        let keep = buckets.sorted { $0.value.updated > $1.value.updated }.prefix(capacity / 2)
        buckets = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
    }
}
