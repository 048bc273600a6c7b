import Foundation
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

@Suite("The settings file")
struct ConfigFileTests {
    private func file(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("waitlist-\(UUID().uuidString).env").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("KEY=value lines under the environment: comments, export, quotes; the environment wins")
    func fileUnderTheEnvironment() throws {
        let path = try file(
            """
            # the service's settings
            WAITLIST_DATABASE=/var/lib/waitlist/waitlist.sqlite
            export WAITLIST_MAIL_FROM="School <school@example.org>"
            WAITLIST_BASE_URL = 'https://waitlist.example.org'

            WAITLIST_LOG_LEVEL=debug\r
            """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let merged = try ConfigFile.environment(merging: ["WAITLIST_CONFIG": path, "WAITLIST_LOG_LEVEL": "error"])
        #expect(merged["WAITLIST_DATABASE"] == "/var/lib/waitlist/waitlist.sqlite")
        #expect(merged["WAITLIST_MAIL_FROM"] == "School <school@example.org>")
        #expect(merged["WAITLIST_BASE_URL"] == "https://waitlist.example.org")
        #expect(merged["WAITLIST_LOG_LEVEL"] == "error")
        let settings = try Settings(environment: merged)
        #expect(settings.databasePath == "/var/lib/waitlist/waitlist.sqlite")
        #expect(settings.mailFrom.displayName == "School")
    }

    @Test("Without WAITLIST_CONFIG the default file is read when it exists, and nothing is needed when it does not")
    func defaultFile() throws {
        let path = try file("WAITLIST_SEND_CONCURRENCY=2\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try ConfigFile.environment(merging: [:], defaultPath: path)["WAITLIST_SEND_CONCURRENCY"] == "2")
        #expect(try ConfigFile.environment(merging: ["A": "b"], defaultPath: path + ".missing") == ["A": "b"])
    }

    @Test("A named file that is missing, or a line that is not KEY=value, is one clear sentence")
    func errors() throws {
        #expect(throws: SettingsError.self) { try ConfigFile.environment(merging: ["WAITLIST_CONFIG": "/nonexistent/waitlist.env"]) }
        let path = try file("WAITLIST_DATABASE=/x\nthis is not a setting\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try ConfigFile.environment(merging: ["WAITLIST_CONFIG": path])
            Issue.record("a bad line was accepted")
        } catch {
            #expect(error.description.contains("line 2"), "\(error.description)")
        }
        let badName = try file("1WAITLIST=x\n")
        defer { try? FileManager.default.removeItem(atPath: badName) }
        #expect(throws: SettingsError.self) { try ConfigFile.environment(merging: ["WAITLIST_CONFIG": badName]) }
    }
}
