import Foundation
import WaitlistCore

/// The DNS TXT record that publishes one DKIM key, as a zone-file line:
/// `SELECTOR._domainkey.DOMAIN. IN TXT "v=DKIM1; k=rsa; p=…" "…"`.
public struct DKIMZoneRecord: Sendable {
    /// The record's owner name, with the root's dot.
    public let name: String
    /// The TXT value, before it is cut into strings.
    public let value: String

    public init(key: DKIMKey, domain: String) {
        name = "\(key.selector)._domainkey.\(domain)."
        value = "v=DKIM1; k=\(key.type.rawValue); p=\(key.publicKeyBase64)"
    }

    /// The value cut into quoted strings of at most 255 bytes each (a TXT record's string limit);
    /// the value holds only printable ASCII without quotes or backslashes, so nothing is escaped.
    public var strings: [String] {
        var strings: [String] = []
        var rest = Substring(value)
        while !rest.isEmpty {
            strings.append(String(rest.prefix(255)))
            rest = rest.dropFirst(255)
        }
        return strings
    }

    /// The zone-file line.
    public var line: String {
        "\(name) IN TXT " + strings.map { "\"\($0)\"" }.joined(separator: " ")
    }
}

/// Writing new key files for `waitlist dkim-keygen`.
public enum DKIMKeyFile {
    /// Writes a new private key of `type` to `path`, mode 0640 with the group `waitlist`
    /// (``StateFiles/keyMode``: the service reads it, only the owner changes it), failing if the
    /// file exists.
    ///
    /// - Throws: ``WaitlistError`` `.usage` when the file exists, `.data` when it cannot be written.
    public static func create(type: DKIMKey.KeyType, path: String) throws(WaitlistError) {
        let pem: String
        do {
            pem = try DKIMKey.generatePEM(type: type)
        } catch {
            throw WaitlistError(.data, "No \(type.rawValue) key could be made: \(error).")
        }
        // Never overwritten: an existing file, or one made meanwhile, is refused.
        let descriptor: Int32
        do {
            descriptor = try StateFiles.createFile(atPath: path, mode: StateFiles.keyMode)
        } catch  where error.code == EEXIST {
            throw WaitlistError(.usage, "\(path) already exists; a DKIM key file is never overwritten, so choose a new path.")
        } catch {
            throw WaitlistError(.data, "\(error).")
        }
        defer { close(descriptor) }
        let bytes = Array(pem.utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard written == bytes.count, fsync(descriptor) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(path)
            throw WaitlistError(.data, "\(path) could not be written: \(reason).")
        }
    }
}
