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
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        for _ in 0..<4 {
            withUnsafeBytes(of: generator.next() as UInt64) { bytes.append(contentsOf: $0) }
        }
        return Token(value: base64URL(bytes))
    }

    /// Bytes in base64url without padding (RFC 4648 §5), as used in links; written out here
    /// because Foundation's base64 and three replacements cost more than a sender's whole claim.
    static func base64URL(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count * 4 + 2) / 3)
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            var bits = 0 as UInt32
            for (offset, byte) in chunk.enumerated() { bits |= UInt32(byte) << (16 - 8 * offset) }
            for sextet in 0...chunk.count { output.append(base64URLDigits[Int((bits >> (18 - 6 * sextet)) & 0x3F)]) }
            index += 3
        }
        return String(decoding: output, as: UTF8.self)
    }

    private static let base64URLDigits = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

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
        Token.base64URL(Array(self))
    }
}
