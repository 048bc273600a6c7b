import Foundation
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

/// Relaxed canonicalisation against RFC 6376 §3.4.5, and the signer's shape.
@Suite("DKIM")
struct DKIMTests {
    /// RFC 6376 §3.4.5's example message.
    static let rfcExample = Array("A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n".utf8)

    @Test("Relaxed header canonicalisation gives RFC 6376 §3.4.5's result")
    func relaxedHeadersMatchTheRFCExample() {
        let (fields, _) = DKIMCanonicalization.headerFields(Self.rfcExample)
        let canonical = fields.map { String(decoding: DKIMCanonicalization.relaxedHeader($0.raw), as: UTF8.self) }
        #expect(canonical == ["a:X\r\n", "b:Y Z\r\n"])
        #expect(fields.map(\.name) == ["A", "B"])
    }

    @Test("Relaxed body canonicalisation gives RFC 6376 §3.4.5's result")
    func relaxedBodyMatchesTheRFCExample() {
        let (_, bodyStart) = DKIMCanonicalization.headerFields(Self.rfcExample)
        let body = DKIMCanonicalization.relaxedBody(Self.rfcExample[bodyStart...])
        #expect(String(decoding: body, as: UTF8.self) == " C\r\nD E\r\n")
    }

    @Test("A body without a final line break gets one; an empty body stays empty")
    func relaxedBodyEnds() {
        #expect(String(decoding: DKIMCanonicalization.relaxedBody(Array("x \t".utf8)[...]), as: UTF8.self) == "x\r\n")
        #expect(DKIMCanonicalization.relaxedBody(Array("\r\n\r\n".utf8)[...]).isEmpty)
        #expect(String(decoding: DKIMCanonicalization.relaxedBody(Array("\r\n \r\nx".utf8)[...]), as: UTF8.self) == "\r\n\r\nx\r\n")
    }

    @Test("A signed message keeps its bytes after one DKIM-Signature per key, From and Subject signed once more than present")
    func signerPrependsOneSignaturePerKey() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dkim-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var keys: [DKIMKey] = []
        for type in DKIMKey.KeyType.allCases {
            let path = directory.appendingPathComponent("\(type.rawValue).pem").path
            try DKIMKeyFile.create(type: type, path: path)
            let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
            #expect(mode == 0o640)
            keys.append(try DKIMKey.load(selector: type.rawValue, path: path))
        }
        let message = Array("From: a@school.example\r\nTo: b@example.com\r\nSubject: Hi\r\n\r\nHello\r\n".utf8)
        let signed = DKIMSigner(keys: keys, domain: "school.example").sign(message, at: Date(timeIntervalSince1970: 1_800_000_000))
        #expect(Array(signed.suffix(message.count)) == message)
        let head = String(decoding: signed.prefix(signed.count - message.count), as: UTF8.self)
        #expect(head.components(separatedBy: "DKIM-Signature:").count == 3)
        #expect(head.contains("a=rsa-sha256") && head.contains("a=ed25519-sha256"))
        #expect(head.contains("h=from:from:to:subject:subject;"))
        #expect(head.split(separator: "\r\n").allSatisfy { $0.utf8.count <= 78 })
    }

    @Test("An RSA key under 2048 bits and a file that holds no key are refused with one sentence")
    func weakAndBrokenKeysAreRefused() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dkim-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let weak = directory.appendingPathComponent("weak.pem").path
        try DKIMTestKeys.writeRSA(bits: 1024, to: weak)
        #expect(throws: WaitlistError.self) { try DKIMKey.load(selector: "s", path: weak) }
        do {
            _ = try DKIMKey.load(selector: "s", path: weak)
        } catch {
            #expect(error.kind == .data && error.message.contains("1024 bits"), "\(error.message)")
        }
        let junk = directory.appendingPathComponent("junk.pem").path
        try "not a key\n".write(toFile: junk, atomically: true, encoding: .utf8)
        #expect(throws: WaitlistError.self) { try DKIMKey.load(selector: "s", path: junk) }
        #expect(throws: WaitlistError.self) { try DKIMKey.load(selector: "s", path: directory.appendingPathComponent("missing.pem").path) }
    }

    @Test("serve, open, send and test-mail stop at start with exit 65 on a key too weak or unreadable; status still runs")
    func mailingCommandsStopOnABadKey() throws {
        var cli = try CLIHarness()
        defer { cli.cleanUp() }
        let weak = cli.directory.appendingPathComponent("weak.pem").path
        try DKIMTestKeys.writeRSA(bits: 1024, to: weak)
        for keys in ["s1:\(weak)", "s2:\(cli.directory.appendingPathComponent("missing.pem").path)"] {
            cli.environment["WAITLIST_DKIM_KEYS"] = keys
            for command in [
                ["serve", "--port", "0"], ["open", "--date", "2027-03-15", "--yes"], ["send"], ["test-mail", "a@example.com"],
            ] {
                let result = try cli.runExpectingExit(command)
                #expect(result.status == 65, "\(command): \(result.stderr)")
                #expect(result.stderr.contains("DKIM key"), "\(command): \(result.stderr)")
                #expect(result.stderr.split(separator: "\n").count == 1, "\(command): \(result.stderr)")
            }
            #expect(try cli.run("status").status == 0)
        }
        #expect(!FileManager.default.fileExists(atPath: cli.directory.appendingPathComponent("mail").path))
    }

    @Test("WAITLIST_DKIM_KEYS that is not SELECTOR:PATH is a usage error naming the variable")
    func malformedKeySettingIsRefused() {
        for value in ["nopath", ":x.pem", "bad selector:x.pem", "a:x.pem,a:y.pem"] {
            #expect(throws: SettingsError.self, "\(value)") { try Settings(environment: ["WAITLIST_DKIM_KEYS": value]) }
        }
        let settings = try? Settings(environment: [
            "WAITLIST_DKIM_KEYS": "a:/k1.pem, b.c:/k2.pem", "WAITLIST_MAIL_FROM": "x@School.example",
        ])
        #expect(settings?.dkimKeys == [.init(selector: "a", path: "/k1.pem"), .init(selector: "b.c", path: "/k2.pem")])
        #expect(settings?.dkimDomain == "School.example")
    }
}

/// Keys the waitlist would never write, made with openssl for the tests that refuse them.
enum DKIMTestKeys {
    static func writeRSA(bits: Int, to path: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:\(bits)", "-out", path]
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }
}
