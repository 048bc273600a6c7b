import Crypto
import Foundation
import WaitlistCore

/// Makes and checks the tags of envelope senders: `ID-SIGNATURE`, the outbox row's number and
/// the first 80 bits of an HMAC-SHA256 over it, in lower-case base32.
///
/// Only digits, lower-case letters and `-`: valid in an unquoted local part, and unchanged by a
/// relay that lower-cases addresses (a tag is read in any case). Without the key, which is kept
/// in the database, nobody can make the tag of a message, so nobody can bounce someone else.
public struct BounceTags: Sendable {
    /// The HMAC key (bytes: swift-crypto's key type is not `Sendable`).
    private let key: Data
    /// Where bounces come back to.
    public let address: BounceAddress

    /// The name of the key in the database's `secret` table.
    public static let secretName = "bounce-tag"

    public init(address: BounceAddress, key: Data) {
        self.address = address
        self.key = key
    }

    /// The tag naming the outbox row `outboxId`.
    public func tag(outboxId: Int64) -> String {
        "\(outboxId)-\(signature(outboxId: outboxId))"
    }

    /// The envelope sender of the outbox row `outboxId`.
    public func envelopeSender(outboxId: Int64) -> String {
        address.envelopeSender(tag: tag(outboxId: outboxId))
    }

    /// The outbox row a tag names, when the tag is well formed and its signature ours; `nil` for
    /// anything else (malformed or forged).
    public func outboxId(fromTag tag: String) -> Int64? {
        let lowered = tag.lowercased()
        guard lowered.utf8.count <= 40 else { return nil }
        let parts = lowered.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].allSatisfy(\.isASCII), let id = Int64(parts[0]), id > 0, String(id) == parts[0] else {
            return nil
        }
        let expected = Array(signature(outboxId: id).utf8)
        let given = Array(parts[1].utf8)
        // Constant time: a timing difference must not reveal a correct prefix.
        guard expected.count == given.count, zip(expected, given).reduce(0, { $0 | ($1.0 ^ $1.1) }) == 0 else { return nil }
        return id
    }

    private func signature(outboxId: Int64) -> String {
        let message = Data("bounce-tag\u{0}\(outboxId)".utf8)
        let code = Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
        return Self.base32(code.prefix(10))
    }

    /// RFC 4648 base32 in lower case, without padding (the input is a multiple of 5 bytes here).
    private static func base32(_ bytes: ArraySlice<UInt8>) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567")
        var output = ""
        var buffer: UInt32 = 0
        var bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | UInt32(byte)
            bits += 8
            while bits >= 5 {
                output.append(alphabet[Int((buffer >> UInt32(bits - 5)) & 31)])
                bits -= 5
            }
        }
        if bits > 0 { output.append(alphabet[Int((buffer << UInt32(5 - bits)) & 31)]) }
        return output
    }
}
