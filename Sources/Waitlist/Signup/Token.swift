import Crypto
import Foundation

/// A secret that proves someone received a mail: 256 random bits, written base64url in links.
///
/// Only its SHA-256 ever reaches the database (``hash``), so a copy of the database file cannot be
/// used to confirm or unsubscribe anyone.
public struct Token: Sendable, Hashable, CustomStringConvertible {
    /// The token as it appears in a link.
    public let value: String

    /// A fresh token from the system's cryptographic generator.
    public static func generate() -> Token {
        var generator = SystemRandomNumberGenerator()
        var bytes = Data(capacity: 32)
        for _ in 0..<4 {
            withUnsafeBytes(of: generator.next() as UInt64) { bytes.append(contentsOf: $0) }
        }
        return Token(value: bytes.base64URLEncodedString())
    }

    /// Takes a token from a URL path; `nil` when it cannot possibly be one of ours.
    public init?(link value: String) {
        guard value.utf8.count == 43, value.utf8.allSatisfy({ Token.alphabet.contains($0) }) else { return nil }
        self.value = value
    }

    private init(value: String) {
        self.value = value
    }

    /// The SHA-256 of the token, which is all the database keeps.
    public var hash: Data {
        Self.hash(of: value)
    }

    static func hash(of value: String) -> Data {
        Data(SHA256.hash(data: Data(value.utf8)))
    }

    /// Tokens never appear in logs whole.
    public var description: String { String(value.prefix(6)) + "…" }

    private static let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
}

extension Data {
    /// Base64url without padding (RFC 4648 §5), as used in links.
    func base64URLEncodedString() -> String {
        base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
