import Crypto
import Foundation

/// A secret that proves someone received a mail: 32 bytes, written base64url in links (43 characters).
///
/// Only its SHA-256 ever reaches the database (``hash``), so a copy of the database file cannot be
/// used to confirm or unsubscribe anyone.
///
/// Two kinds share the form. A plain token is 256 random bits; its hash is looked up in the token
/// table. A mail's unsubscribe token is keyed by the mail: its first 8 bytes are the outbox row's
/// number (not a secret, see ``keyedMessageId``) and the other 24 are random (192 bits), and its
/// hash is kept in that row. Finding the row by its number costs the sender no insert into an
/// index of random hashes for every mail.
public struct Token: Sendable, Hashable, CustomStringConvertible {
    /// The token as it appears in a link.
    public let value: String

    /// A fresh token from the system's cryptographic generator.
    public static func generate() -> Token {
        Token(value: base64URL(SecureRandom.bytes(32)))
    }

    /// A fresh token for the mail in outbox row `messageId`: the row's number, then 192 random bits.
    public static func generate(keyedBy messageId: Int64) -> Token {
        var bytes = [UInt8](repeating: 0, count: 32)
        withUnsafeBytes(of: UInt64(bitPattern: messageId).bigEndian) { bytes.replaceSubrange(0..<8, with: $0) }
        bytes.withUnsafeMutableBytes { SecureRandom.fill(UnsafeMutableRawBufferPointer(rebasing: $0[8...])) }
        return Token(value: base64URL(bytes))
    }

    /// The outbox row a keyed token names: its first 8 bytes. Every token has some; only the
    /// row's stored hash tells whether the token is really that row's.
    public var keyedMessageId: Int64 {
        // 8 bytes are the first 64 of the 66 bits in the first 11 characters.
        var bits: UInt64 = 0
        for character in value.utf8.prefix(10) {
            bits = bits << 6 | UInt64(Self.sextet(character))
        }
        let eleventh = value.utf8.dropFirst(10).first.map(Self.sextet) ?? 0
        bits = bits << 4 | UInt64(eleventh >> 2)
        return Int64(bitPattern: bits)
    }

    private static func sextet(_ character: UInt8) -> UInt8 {
        switch character {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): character - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): character - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0") + 52
        case UInt8(ascii: "-"): 62
        default: 63
        }
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
        SHA256.hash(data: Data(value.utf8)).withUnsafeBytes { Data($0) }
    }

    /// Whether `stored` is this token's hash, in time that does not depend on where they differ.
    package func matches(hash stored: Data) -> Bool {
        let own = hash
        guard stored.count == own.count else { return false }
        return zip(own, stored).reduce(0 as UInt8) { $0 | ($1.0 ^ $1.1) } == 0
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
