import Crypto
import Foundation

/// The signed timestamp the signup form carries, so that a submit that comes too fast to be a
/// person's (or with no stamp at all, from a script that never loaded the page) is recognised.
///
/// A stamp is `SECONDS.SIGNATURE`: the time the page was rendered and an HMAC-SHA256 over it and
/// the course, with a key the service keeps in its database.
public struct FormStamp: Sendable {
    /// A person needs at least this long to read the page and type an address.
    public static let minimumFillTime: TimeInterval = 2
    /// A page older than this is not accepted: the person is asked to send the form once more.
    public static let maximumAge: TimeInterval = 6 * 3600

    /// What a stamp says about the submit.
    public enum Verdict: Sendable, Equatable {
        /// Rendered by us for this course, long enough ago.
        case plausible
        /// Missing, forged, or for another course.
        case invalid
        /// Ours, but older than ``maximumAge``: a tab left open (or a replay by a script).
        case stale
        /// Sent sooner after the page was rendered than a person could.
        case tooFast
    }

    /// The HMAC key (kept as bytes: the key type of swift-crypto is not `Sendable`).
    private let key: Data

    public init(key: Data) {
        self.key = key
    }

    /// The stamp for a page rendered now.
    public func issue(course: String, now: Date) -> String {
        let seconds = Int64(now.timeIntervalSince1970.rounded(.down))
        return "\(seconds).\(signature(seconds: seconds, course: course))"
    }

    /// Checks a submitted stamp.
    public func verify(_ stamp: String?, course: String, now: Date) -> Verdict {
        guard let stamp, stamp.utf8.count <= 100 else { return .invalid }
        let parts = stamp.split(separator: ".", maxSplits: 1)
        guard parts.count == 2, let seconds = Int64(parts[0]) else { return .invalid }
        let expected = Array(signature(seconds: seconds, course: course).utf8)
        let given = Array(parts[1].utf8)
        // Compare in constant time: a timing difference must not reveal a correct prefix.
        guard expected.count == given.count, zip(expected, given).reduce(0, { $0 | ($1.0 ^ $1.1) }) == 0 else { return .invalid }
        let age = now.timeIntervalSince1970 - Double(seconds)
        if age > Self.maximumAge { return .stale }
        if age < Self.minimumFillTime { return .tooFast }
        return .plausible
    }

    /// When a stamp stops being accepted: until then a spent one must be remembered.
    public func expiry(of stamp: String) -> Date? {
        stamp.split(separator: ".", maxSplits: 1).first.flatMap { Int64($0) }.map {
            Date(timeIntervalSince1970: Double($0) + Self.maximumAge)
        }
    }

    private func signature(seconds: Int64, course: String) -> String {
        let message = Data("signup-form\u{0}\(course)\u{0}\(seconds)".utf8)
        return Data(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key))).base64URLEncodedString()
    }
}
