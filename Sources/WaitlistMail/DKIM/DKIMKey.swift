import Crypto
import _CryptoExtras
import Foundation
import WaitlistCore

/// A private key that signs mail for one DKIM selector: RSA of at least 2048 bits (`rsa-sha256`,
/// RFC 6376) or Ed25519 (`ed25519-sha256`, RFC 8463), read from a PEM file.
public struct DKIMKey: Sendable {
    /// The kinds of key `waitlist dkim-keygen` writes and the signer reads.
    public enum KeyType: String, Sendable, CaseIterable {
        case rsa
        case ed25519
    }

    /// The key itself; an Ed25519 key as its 32 raw bytes (swift-crypto's type is not
    /// `Sendable`), made into a key again for each signature, which costs next to nothing.
    enum Secret: Sendable {
        case rsa(_RSA.Signing.PrivateKey)
        case ed25519(Data)
    }

    /// The selector the key is published under (`SELECTOR._domainkey.DOMAIN`).
    public let selector: String
    let secret: Secret

    /// The RSA size DKIM verifiers still accept and RFC 8301 asks for.
    static let minimumRSABits = 2048
    /// The DER of an Ed25519 private key in PKCS#8 (RFC 8410) up to the 32 bytes of the key.
    static let ed25519PKCS8Prefix: [UInt8] = [
        0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ]

    init(selector: String, secret: Secret) {
        self.selector = selector
        self.secret = secret
    }

    /// The key type, as in the DNS record's `k=`.
    public var type: KeyType {
        switch secret {
        case .rsa: .rsa
        case .ed25519: .ed25519
        }
    }

    /// The signature algorithm, as in the signature's `a=`.
    var algorithm: String {
        switch secret {
        case .rsa: "rsa-sha256"
        case .ed25519: "ed25519-sha256"
        }
    }

    /// The public key as the DNS record's `p=` holds it, in base64: the SubjectPublicKeyInfo DER
    /// for RSA, the 32 raw bytes for Ed25519 (RFC 8463 §4.2).
    public var publicKeyBase64: String {
        switch secret {
        case .rsa(let key): key.publicKey.derRepresentation.base64EncodedString()
        case .ed25519(let raw):
            // The bytes were checked to make a key when it was loaded.
            ((try? Curve25519.Signing.PrivateKey(rawRepresentation: raw))?.publicKey.rawRepresentation ?? Data()).base64EncodedString()
        }
    }

    /// Signs the SHA-256 digest of the canonicalised header data, as each algorithm asks: RSA
    /// with PKCS#1 v1.5 padding over the digest, Ed25519 over the digest's 32 bytes.
    func sign(digest: SHA256.Digest) throws -> Data {
        switch secret {
        case .rsa(let key):
            try key.signature(for: digest, padding: .insecurePKCS1v1_5).rawRepresentation
        case .ed25519(let raw):
            try Curve25519.Signing.PrivateKey(rawRepresentation: raw).signature(for: Data(digest))
        }
    }

    // MARK: - Files

    /// Reads the key of one selector from a PEM file: an RSA key (PKCS#1 or PKCS#8) or an Ed25519
    /// key (PKCS#8).
    ///
    /// - Throws: a ``WaitlistError`` of kind `.data` with one sentence when the file cannot be read,
    ///   holds no key of these kinds, or holds an RSA key shorter than 2048 bits.
    public static func load(selector: String, path: String) throws(WaitlistError) -> DKIMKey {
        guard let data = FileManager.default.contents(atPath: path), let pem = String(data: data, encoding: .utf8) else {
            throw WaitlistError(.data, "The DKIM key file \(path) (selector \(selector)) cannot be read.")
        }
        if let der = pemBody(pem, label: "PRIVATE KEY"), der.count == ed25519PKCS8Prefix.count + 32,
            Array(der.prefix(ed25519PKCS8Prefix.count)) == ed25519PKCS8Prefix
        {
            do {
                let raw = Data(der.suffix(32))
                _ = try Curve25519.Signing.PrivateKey(rawRepresentation: raw)
                return DKIMKey(selector: selector, secret: .ed25519(raw))
            } catch {
                throw WaitlistError(.data, "The DKIM key file \(path) (selector \(selector)) holds a damaged Ed25519 key.")
            }
        }
        let rsa: _RSA.Signing.PrivateKey
        do {
            rsa = try _RSA.Signing.PrivateKey(unsafePEMRepresentation: pem)
        } catch {
            throw WaitlistError(
                .data, "The DKIM key file \(path) (selector \(selector)) holds no RSA or Ed25519 private key of at least 2048 bits in PEM.")
        }
        guard rsa.keySizeInBits >= minimumRSABits else {
            throw WaitlistError(
                .data,
                "The DKIM key file \(path) (selector \(selector)) holds an RSA key of \(rsa.keySizeInBits) bits; DKIM needs at least \(minimumRSABits)."
            )
        }
        return DKIMKey(selector: selector, secret: .rsa(rsa))
    }

    /// A new private key of a type, as the PEM text `waitlist dkim-keygen` writes: RSA of 2048
    /// bits in PKCS#8, or Ed25519 in PKCS#8.
    public static func generatePEM(type: KeyType) throws -> String {
        switch type {
        case .rsa:
            return try _RSA.Signing.PrivateKey(keySize: .bits2048).pkcs8PEMRepresentation
        case .ed25519:
            let der = Data(ed25519PKCS8Prefix) + Curve25519.Signing.PrivateKey().rawRepresentation
            let lines = der.base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
            return "-----BEGIN PRIVATE KEY-----\n\(lines)\n-----END PRIVATE KEY-----\n"
        }
    }

    /// The DER bytes between `-----BEGIN LABEL-----` and `-----END LABEL-----`; `nil` when there is
    /// no such block or its base64 is broken.
    static func pemBody(_ pem: String, label: String) -> Data? {
        let begin = "-----BEGIN \(label)-----", end = "-----END \(label)-----"
        guard let start = pem.range(of: begin), let stop = pem.range(of: end, range: start.upperBound..<pem.endIndex) else {
            return nil
        }
        let base64 = pem[start.upperBound..<stop.lowerBound].filter { !$0.isWhitespace }
        return Data(base64Encoded: String(base64))
    }
}
