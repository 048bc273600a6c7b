import Foundation
import Glibc
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

@Suite("make install")
struct InstallTests {
    @Test("The installed binary, run from another folder, serves styled pages from the resource bundle installed beside it")
    func installedBinaryServesItsOwnBundle() async throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        let prefix = cli.directory.appendingPathComponent("prefix")
        // Given the built binary installed as `make install` installs the release one
        let make = Process()
        make.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        make.arguments = [
            "make", "--no-print-directory", "-s", "install-built", "BUILD=\(try CLIHarness.executable.deletingLastPathComponent().path)",
            "PREFIX=\(prefix.path)",
        ]
        make.currentDirectoryURL = repositoryRoot
        make.standardOutput = FileHandle.nullDevice
        try make.run()
        await onOwnThread { make.waitUntilExit() }
        try #require(make.terminationStatus == 0)
        let installed = prefix.appendingPathComponent("bin/waitlist")
        #expect(FileManager.default.isExecutableFile(atPath: installed.path))
        let styles = prefix.appendingPathComponent("lib/waitlist/waitlist_Waitlist.resources/Public/styles.css")
        #expect(FileManager.default.fileExists(atPath: styles.path))
        #expect(
            FileManager.default.fileExists(
                atPath: prefix.appendingPathComponent("lib/waitlist/waitlist_Waitlist.resources/Templates/layout.mustache").path))
        // A mark only the installed copy carries: what is served comes from beside the installed binary.
        let mark = "/* installed copy \(UUID().uuidString) */\n"
        let handle = try FileHandle(forWritingTo: styles)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(mark.utf8))
        try handle.close()

        // When it serves, started in a folder that is neither the repository nor the prefix
        let port = try SMTPTestServer.freePort()
        let serve = Process()
        serve.executableURL = installed
        serve.arguments = ["serve", "--port", String(port)]
        serve.environment = cli.environment
        serve.currentDirectoryURL = cli.directory
        serve.standardOutput = FileHandle.nullDevice
        serve.standardError = FileHandle.nullDevice
        serve.standardInput = FileHandle.nullDevice
        try serve.run()
        defer {
            kill(serve.processIdentifier, SIGTERM)
            serve.waitUntilExit()
        }

        // Then the page links its stylesheet and the stylesheet is the installed one
        let page = try await BuiltInFilesTests.fetch("http://127.0.0.1:\(port)/?lang=ru")
        #expect(page.status == 200)
        #expect(page.text.contains("«Переговоры и отношения с клиентами»"))
        #expect(page.text.contains(#"<link rel="stylesheet" href="/styles.css">"#))
        let served = try await BuiltInFilesTests.fetch("http://127.0.0.1:\(port)/styles.css")
        #expect(served.status == 200)
        #expect(served.text.hasSuffix(mark))
    }
}
