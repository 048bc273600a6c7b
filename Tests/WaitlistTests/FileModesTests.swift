import Foundation
import Glibc
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

/// Every file the service or its commands create is 0660 (DKIM keys 0640) and every folder made
/// for their state 2770, whatever the umask they were started with. The umask is the process's, so
/// each test runs the real binary through a shell that sets it (`umask 022`, the usual one, under
/// which these files used to be 0644) rather than changing the test process's own.
@Suite("File modes")
struct FileModesTests {
    @Test("A command runs with umask 0007 whatever umask it was started with")
    func commandsSetTheirOwnUmask() async throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        // Given the service started by a shell whose umask is 022
        let serve = try serveUnderUmask(cli)
        defer { stop(serve) }
        try await waitUntilServing(serve)

        // When its umask is read from the kernel
        let status = try String(contentsOfFile: "/proc/\(serve.process.processIdentifier)/status", encoding: .utf8)

        // Then it is 0007: the -wal and -shm that SQLite makes by itself, with the database's mode
        // masked by the umask, are then 0660 like the database, also when another user's command
        // makes them and no later open of ours can mend them
        let umask = status.split(separator: "\n").first { $0.hasPrefix("Umask:") }
        #expect(umask?.split(separator: "\t").last == "0007")
    }

    @Test("The database the service creates under umask 022 is 0660, and so are its -wal and -shm")
    func databaseFilesAreOwnerAndGroupOnly() async throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        // Given no database yet
        // When the service starts under umask 022 and has opened it
        let serve = try serveUnderUmask(cli)
        defer { stop(serve) }
        try await waitUntilServing(serve)

        // Then the database and the -wal and -shm beside it are 0660
        for file in [cli.databasePath, cli.databasePath + "-wal", cli.databasePath + "-shm"] {
            #expect(try mode(of: file) == 0o660, "\(file)")
        }
    }

    @Test("A folder made for the database is 2770: setgid, owner and group only")
    func databaseFolderIsSetgid() throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        // Given a database path in folders that do not exist yet
        let database = cli.directory.appendingPathComponent("state/lib/waitlist.sqlite").path

        // When a command run under umask 022 opens it
        let result = try runUnderUmask(cli, ["status"], extraEnvironment: ["WAITLIST_DATABASE": database])
        #expect(result.status == 0, "\(result.stderr)")

        // Then each folder it made is 2770
        #expect(try mode(of: cli.directory.appendingPathComponent("state").path) == 0o2770)
        #expect(try mode(of: cli.directory.appendingPathComponent("state/lib").path) == 0o2770)
    }

    @Test("backup under umask 022 writes a copy that is 0660")
    func backupIsOwnerAndGroupOnly() throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        // Given a database
        #expect(try cli.run("status").status == 0)
        let copy = cli.directory.appendingPathComponent("copy.sqlite").path

        // When it is backed up under umask 022
        let result = try runUnderUmask(cli, ["backup", copy])
        #expect(result.status == 0, "\(result.stderr)")

        // Then the copy is 0660
        #expect(try mode(of: copy) == 0o660)
    }

    @Test("A mail file the file transport writes under umask 022 is 0660")
    func mailFilesAreOwnerAndGroupOnly() throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        // When a test mail is sent through the file transport under umask 022
        let result = try runUnderUmask(cli, ["test-mail", "anna@example.com"])
        #expect(result.status == 0, "\(result.stderr)")

        // Then its .eml file is 0660
        let files = cli.mailFiles()
        #expect(files.count == 1)
        for file in files {
            #expect(try mode(of: cli.directory.appendingPathComponent("mail/\(file)").path) == 0o660)
        }
    }

    @Test("The mail folder the file transport makes under umask 022 is 2770: setgid, owner and group only")
    func mailFolderIsSetgid() throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        // Given no mail folder yet
        // When a test mail is sent through the file transport under umask 022
        let result = try runUnderUmask(cli, ["test-mail", "anna@example.com"])
        #expect(result.status == 0, "\(result.stderr)")

        // Then the folder it made is 2770
        #expect(try mode(of: cli.directory.appendingPathComponent("mail").path) == 0o2770)
    }

    @Test("dkim-keygen under umask 022 writes a key that is 0640: owner writes, group reads")
    func dkimKeyIsGroupReadable() throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        let key = cli.directory.appendingPathComponent("dkim.pem").path

        // When a key is made under umask 022
        let result = try runUnderUmask(cli, ["dkim-keygen", "--type", "ed25519", key])
        #expect(result.status == 0, "\(result.stderr)")

        // Then it is 0640
        #expect(try mode(of: key) == 0o640)
    }

    // MARK: - Helpers

    /// The permission bits of a file or folder, setgid included.
    private func mode(of path: String) throws -> mode_t {
        var status = stat()
        guard lstat(path, &status) == 0 else {
            throw CLIHarness.CLIError(description: "\(path): \(String(cString: strerror(errno)))")
        }
        return status.st_mode & 0o7777
    }

    /// A process started through `/bin/sh` after `umask 022`, and the shell's `exec` makes it the
    /// `waitlist` binary itself (one process id).
    private func underUmask(_ cli: CLIHarness, _ arguments: [String], extraEnvironment: [String: String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", #"umask 022 && exec "$0" "$@""#, try CLIHarness.executable.path] + arguments
        process.environment = cli.environment.merging(extraEnvironment) { $1 }
        process.currentDirectoryURL = cli.directory
        process.standardInput = FileHandle.nullDevice
        return process
    }

    /// Runs `waitlist ARGS` to its end under umask 022.
    private func runUnderUmask(_ cli: CLIHarness, _ arguments: [String], extraEnvironment: [String: String] = [:]) throws
        -> CLIHarness.Result
    {
        let process = try underUmask(cli, arguments, extraEnvironment: extraEnvironment)
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CLIHarness.Result(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// A `waitlist serve` started under umask 022, and its port.
    private struct Server {
        var process: Process
        var port: Int
    }

    private func serveUnderUmask(_ cli: CLIHarness) throws -> Server {
        let port = try SMTPTestServer.freePort()
        let process = try underUmask(cli, ["serve", "--port", String(port)], extraEnvironment: [:])
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return Server(process: process, port: port)
    }

    /// Waits until the server answers `/healthz`: its database is open by then.
    private func waitUntilServing(_ server: Server) async throws {
        let health = try await BuiltInFilesTests.fetch("http://127.0.0.1:\(server.port)/healthz")
        try #require(health.status == 200)
    }

    private func stop(_ server: Server) {
        kill(server.process.processIdentifier, SIGTERM)
        server.process.waitUntilExit()
    }
}
