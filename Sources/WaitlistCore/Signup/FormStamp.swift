import Crypto
import Foundation

/// The signed stamp the signup form carries, so that a submit that comes too fast to be a person's
/// (or with no stamp at all, from a script that never loaded the page), or a page's form sent again
/// for another address, is recognised.
///
/// A stamp is `SECONDS.NONCE.SIGNATURE`: the time the page was rendered, 96 random bits of that
/// page load's own, and an HMAC-SHA256 over both and the course, with a key the service keeps in
/// its database. Nothing is stored when a stamp is issued; the signup it admits stores its nonce,
/// in the signup's own transaction, so that the page cannot admit a second one. Two visitors who
/// load the page in the same second get two stamps.
public struct FormStamp: Sendable {
    /// A person needs at least this long to read the page and type an address.
    public static let minimumFillTime: TimeInterval = 2
    /// A page older than this is not accepted: the person is asked to send the form once more.
    public static let maximumAge: TimeInterval = 6 * 3600
    /// The random bytes of a stamp's nonce.
    static let nonceBytes = 12

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

    /// A stamp taken apart, its signature checked.
    public struct Parts: Sendable, Equatable {
        /// When the page was rendered (seconds since 1970).
        public var seconds: Int64
        /// The page load's own random value, base64url: what a spent stamp is remembered by.
        public var nonce: String

        /// When the stamp stops being accepted: until then a spent one must be remembered.
        public var expiry: Date { Date(timeIntervalSince1970: Double(seconds) + FormStamp.maximumAge) }
    }

    /// The HMAC key (kept as bytes: the key type of swift-crypto is not `Sendable`).
    private let key: Data

    public init(key: Data) {
        self.key = key
    }

    /// The stamp for a page rendered now.
    public func issue(course: String, now: Date) -> String {
        issue(course: course, seconds: Int64(now.timeIntervalSince1970.rounded(.down)))
    }

    /// A new stamp for a form shown again to a person who already spent their time on its page:
    /// it counts from the page the person first loaded (`earlier`, when it is a stamp of ours for
    /// this course) and at least ``minimumFillTime`` back, so a correction sent at once is accepted.
    /// The nonce is new: the earlier stamp admitted no signup. Without a stamp of ours to go on, a
    /// stamp as for a page rendered now.
    public func reissue(after earlier: String?, course: String, now: Date) -> String {
        guard let earlier, let parts = parts(of: earlier, course: course) else { return issue(course: course, now: now) }
        let latest = Int64((now.timeIntervalSince1970 - Self.minimumFillTime).rounded(.down))
        // A stale page is shown again as new: its six hours start once more, from now.
        let isStale = now.timeIntervalSince1970 - Double(parts.seconds) > Self.maximumAge
        return issue(course: course, seconds: isStale ? latest : min(parts.seconds, latest))
    }

    /// Checks a submitted stamp.
    public func verify(_ stamp: String?, course: String, now: Date) -> Verdict {
        verdict(on: stamp.flatMap { parts(of: $0, course: course) }, now: now)
    }

    /// ``verify(_:course:now:)`` of a stamp already taken apart (`nil`: not one of ours).
    public func verdict(on parts: Parts?, now: Date) -> Verdict {
        guard let parts else { return .invalid }
        let age = now.timeIntervalSince1970 - Double(parts.seconds)
        if age > Self.maximumAge { return .stale }
        if age < Self.minimumFillTime { return .tooFast }
        return .plausible
    }

    /// The time and nonce of a stamp of ours for `course`; `nil` when it is not one (malformed,
    /// forged, for another course, or of the earlier form without a nonce).
    public func parts(of stamp: String, course: String) -> Parts? {
        guard stamp.utf8.count <= 100 else { return nil }
        let fields = stamp.split(separator: ".", omittingEmptySubsequences: false)
        guard fields.count == 3, let seconds = Int64(fields[0]), fields[1].utf8.count == Self.nonceLength else { return nil }
        let nonce = String(fields[1])
        let expected = Array(signature(seconds: seconds, nonce: nonce, course: course).utf8)
        let given = Array(fields[2].utf8)
        // Compare in constant time: a timing difference must not reveal a correct prefix.
        guard expected.count == given.count, zip(expected, given).reduce(0, { $0 | ($1.0 ^ $1.1) }) == 0 else { return nil }
        return Parts(seconds: seconds, nonce: nonce)
    }

    /// The length of a nonce in base64url (12 bytes: 16 characters, no padding).
    private static let nonceLength = nonceBytes / 3 * 4

    private func issue(course: String, seconds: Int64) -> String {
        let nonce = Data(SecureRandom.bytes(Self.nonceBytes)).base64URLEncodedString()
        return "\(seconds).\(nonce).\(signature(seconds: seconds, nonce: nonce, course: course))"
    }

    private func signature(seconds: Int64, nonce: String, course: String) -> String {
        let message = Data("signup-form\u{0}\(course)\u{0}\(seconds)\u{0}\(nonce)".utf8)
        return Data(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key))).base64URLEncodedString()
    }
}
