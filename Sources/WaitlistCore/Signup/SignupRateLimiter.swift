import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
    import Glibc
#endif

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
    private let buckets = NIOLockedValueBox<[String: Bucket]>([:])

    public init(rate: Rate, capacity: Int = 100_000) {
        self.rate = rate
        self.capacity = max(capacity, 1)
    }

    /// How many clients are remembered now (for tests and metrics).
    public var trackedClients: Int { buckets.withLockedValue { $0.count } }

    /// Takes one attempt from `client`'s bucket, if there is one left. IPv6 clients share a bucket
    /// per /64 (``key(for:)``), the block one household or server is handed.
    public func attempt(client: String, now: Date) -> Decision {
        let client = Self.key(for: client)
        let size = Double(rate.count)
        let refillPerSecond = rate.perSecond
        return buckets.withLockedValue { buckets in
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

    /// The bucket a client address counts against: an IPv6 address's first 64 bits (`2001:db8:1:2::/64`),
    /// an IPv4-mapped IPv6 address as the IPv4 address, anything else as it is.
    static func key(for client: String) -> String {
        var address = in6_addr()
        guard inet_pton(AF_INET6, client, &address) == 1 else { return client }
        let bytes = withUnsafeBytes(of: address) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return bytes[12...].map(String.init).joined(separator: ".")
        }
        let groups = stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
        return groups.joined(separator: ":") + "::/64"
    }

    /// Forgets refilled buckets; if that is not enough, the half seen longest ago.
    private static func makeRoom(in buckets: inout [String: Bucket], capacity: Int, size: Double, refillPerSecond: Double, now: Date) {
        buckets = buckets.filter { _, bucket in bucket.tokens + now.timeIntervalSince(bucket.updated) * refillPerSecond < size }
        guard buckets.count >= capacity else { return }
        let keep = buckets.sorted { $0.value.updated > $1.value.updated }.prefix(capacity / 2)
        buckets = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
    }
}
