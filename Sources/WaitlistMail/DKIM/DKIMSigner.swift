import Crypto
import Foundation
import WaitlistCore

/// Adds one DKIM signature per key to a rendered message (RFC 6376, `relaxed/relaxed`).
///
/// The signatures cover the message as it goes to the relay: the CRLF bytes before SMTP
/// dot-stuffing, which the relay undoes. Each is computed over the message without the others,
/// so a verifier can check each one alone.
public struct DKIMSigner: Sendable {
    /// The keys, each signing once.
    public let keys: [DKIMKey]
    /// The signing domain, the signatures' `d=`.
    public let domain: String

    /// The header fields signed, those present: the ones a reader sees and the ones RFC 8058's
    /// one-click unsubscribe needs covered.
    static let signedHeaders = [
        "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "List-Id", "List-Unsubscribe",
        "List-Unsubscribe-Post",
    ]
    /// Fields listed once more than present, so that nobody can add another one of them to a
    /// signed message without breaking its signature (RFC 6376 §8.15).
    static let oversignedHeaders = ["From", "Subject"]

    public init(keys: [DKIMKey], domain: String) {
        self.keys = keys
        self.domain = domain
    }

    /// Reads every configured key.
    ///
    /// - Throws: the first key's ``WaitlistError`` (kind `.data`) that cannot be used.
    public init(settings: Settings) throws(WaitlistError) {
        var keys: [DKIMKey] = []
        for entry in settings.dkimKeys {
            keys.append(try DKIMKey.load(selector: entry.selector, path: entry.path))
        }
        self.init(keys: keys, domain: settings.dkimDomain)
    }

    /// The message with a `DKIM-Signature` field per key in front of it; `time` is the signatures'
    /// `t=`. A key whose signing fails (it cannot, short of a broken library) leaves its signature
    /// out: the message still goes, as it would without DKIM.
    public func sign(_ message: [UInt8], at time: Date) -> [UInt8] {
        guard !keys.isEmpty else { return message }
        let (fields, bodyStart) = DKIMCanonicalization.headerFields(message)
        let bodyHash = Data(SHA256.hash(data: DKIMCanonicalization.relaxedBody(message[bodyStart...]))).base64EncodedString()

        // RFC 6376 §5.4.2: a name listed n times signs its last n instances, from the bottom up.
        var names: [String] = []
        var hashedFields: [UInt8] = []
        for name in Self.signedHeaders {
            let instances = fields.filter { $0.name.caseInsensitiveCompare(name) == .orderedSame }
            for field in instances.reversed() {
                names.append(name.lowercased())
                hashedFields += DKIMCanonicalization.relaxedHeader(field.raw)
            }
            if Self.oversignedHeaders.contains(name) { names.append(name.lowercased()) }
        }

        var signatures: [UInt8] = []
        for key in keys {
            let unsigned = unsignedField(key: key, names: names, bodyHash: bodyHash, time: time)
            var data = hashedFields
            // The signature's own field goes last, without its CRLF (RFC 6376 §3.7).
            data += DKIMCanonicalization.relaxedHeader(Array(unsigned.utf8)).dropLast(2)
            // Signing with a loaded key cannot fail short of a broken library: such a message goes unsigned by this key.
            guard let signature = try? key.sign(digest: SHA256.hash(data: data)) else { continue }
            signatures += (unsigned + Self.folded(signature.base64EncodedString(), firstLineUsed: 3) + "\r\n").utf8
        }
        return signatures + message
    }

    /// The `DKIM-Signature` field up to its empty `b=`, folded at 78 characters between its tags
    /// and between the names of `h=`.
    func unsignedField(key: DKIMKey, names: [String], bodyHash: String, time: Date) -> String {
        var field = "DKIM-Signature: v=1; a=\(key.algorithm); c=relaxed/relaxed; d=\(domain);\r\n"
        field += "\ts=\(key.selector); t=\(Int(time.timeIntervalSince1970));\r\n"
        var line = "\th="
        for (index, name) in names.enumerated() {
            let piece = name + (index == names.count - 1 ? ";" : ":")
            if line.utf8.count + piece.utf8.count > 78 {
                field += line + "\r\n"
                line = "\t"
            }
            line += piece
        }
        field += line + "\r\n"
        field += "\tbh=\(bodyHash);\r\n"
        field += "\tb="
        return field
    }

    /// Base64 text cut into lines of at most 78 characters (the first one already holds
    /// `firstLineUsed`), joined by CRLF and a tab; verifiers ignore the folds inside `b=`.
    static func folded(_ text: String, firstLineUsed: Int) -> String {
        var lines: [Substring] = []
        var rest = Substring(text)
        var room = 78 - 1 - firstLineUsed
        while !rest.isEmpty {
            lines.append(rest.prefix(room))
            rest = rest.dropFirst(room)
            room = 78 - 1
        }
        return lines.joined(separator: "\r\n\t")
    }
}
