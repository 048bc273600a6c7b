import Foundation
import Glibc
import GRDB
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

/// Runs the built `waitlist` binary on a temporary database and mail directory.
struct CLIHarness {
    let directory: URL
    var environment: [String: String]

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("waitlist-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        environment = [
            "WAITLIST_DATABASE": directory.appendingPathComponent("waitlist.sqlite").path,
            "WAITLIST_MAIL_DIR": directory.appendingPathComponent("mail").path,
            "WAITLIST_BASE_URL": "https://waitlist.example.org",
            "WAITLIST_LOG_LEVEL": "warning",
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
        ]
    }

    var databasePath: String { environment["WAITLIST_DATABASE"]! }

    /// The `waitlist` executable built beside the test bundle.
    static var executable: URL {
        get throws {
            var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            for _ in 0..<4 {
                let candidate = directory.appendingPathComponent("waitlist")
                if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
                directory = directory.deletingLastPathComponent()
            }
            let fallback = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent()
                .appendingPathComponent(".build/debug/waitlist")
            guard FileManager.default.isExecutableFile(atPath: fallback.path) else {
                throw CLIError(description: "The waitlist executable is not built; run `swift build` first.")
            }
            return fallback
        }
    }

    struct CLIError: Error, CustomStringConvertible {
        var description: String
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `waitlist ARGS` with standard input from /dev/null (no terminal).
    func run(_ arguments: String..., extraEnvironment: [String: String] = [:]) throws -> Result {
        try run(arguments: arguments, extraEnvironment: extraEnvironment)
    }

    /// Runs `waitlist ARGS` to its end. `input` goes to its standard input (else /dev/null);
    /// `onlyEnvironment` replaces the harness's environment instead of adding to it.
    func run(
        arguments: [String], extraEnvironment: [String: String] = [:], onlyEnvironment: [String: String]? = nil, input: Data? = nil
    ) throws -> Result {
        let process = Process()
        process.executableURL = try Self.executable
        process.arguments = arguments
        process.environment = onlyEnvironment ?? environment.merging(extraEnvironment) { $1 }
        process.currentDirectoryURL = directory
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let stdin = input.map { _ in Pipe() }
        process.standardInput = stdin ?? FileHandle.nullDevice
        try process.run()
        if let stdin, let input {
            try stdin.fileHandleForWriting.write(contentsOf: input)
            try stdin.fileHandleForWriting.close()
        }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// Starts `waitlist ARGS` in the background (standard input from /dev/null, output discarded
    /// unless `errors` is given), for tests that interrupt or race it.
    func start(_ arguments: [String], extraEnvironment: [String: String] = [:], errors: Pipe? = nil) throws -> Process {
        let process = Process()
        process.executableURL = try Self.executable
        process.arguments = arguments
        process.environment = environment.merging(extraEnvironment) { $1 }
        process.currentDirectoryURL = directory
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors ?? FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Runs `waitlist ARGS` that should end by itself (a `serve` that must refuse to start, say);
    /// one still running after `timeout` is killed and reported as status -1.
    func runExpectingExit(_ arguments: [String], timeout: TimeInterval = 30) throws -> Result {
        let errors = Pipe()
        let process = try start(arguments, errors: errors)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            return Result(status: -1, stdout: "", stderr: "still running after \(timeout) s")
        }
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return Result(status: process.terminationStatus, stdout: "", stderr: stderr)
    }

    /// The `.eml` files the file transport wrote.
    func mailFiles() -> [String] {
        let mail = directory.appendingPathComponent("mail")
        return ((try? FileManager.default.contentsOfDirectory(atPath: mail.path)) ?? []).filter { $0.hasSuffix(".eml") }.sorted()
    }

    /// Adds confirmed subscribers straight through the database, as if they had clicked their links.
    func addConfirmed(_ addresses: [String]) async throws {
        let database = try AppDatabase.open(path: databasePath)
        for address in addresses {
            _ = try await database.subscribeDurably(
                email: try EmailAddress(address), courseId: 1, language: .ru, client: ClientContext(ip: "192.0.2.1"))
        }
        while case let batch = try database.claimAsSender(owner: "test", limit: 1000), !batch.isEmpty {
            for delivery in batch {
                try database.recordSent(ids: [delivery.outboxId])  // the next claim applies it
                _ = try database.confirm(try #require(delivery.confirmToken), client: ClientContext())
            }
        }
        try database.applySentRecords()
        try database.releaseSendingRole(owner: "test")
    }

    /// Adds `count` confirmed subscribers `PREFIX<n>@example.com` in one transaction (seeding for large tests).
    func seedConfirmed(count: Int, prefix: String = "person", domains: Int = 1) throws -> [String] {
        let database = try AppDatabase.open(path: databasePath)
        let addresses = (1...count).map { "\(prefix)\($0)@" + (domains == 1 ? "example.com" : "school\($0 % domains).example") }
        try database.writer.write { db in
            let now = Date()
            for address in addresses {
                try db.execute(
                    sql: """
                        INSERT INTO subscriber (courseId, email, emailKey, language, status, createdAt, confirmedAt)
                        VALUES (1, ?, ?, 'ru', 'confirmed', ?, ?)
                        """, arguments: [address, address, now, now])
            }
        }
        return addresses
    }

    func cleanUp() {
        try? FileManager.default.removeItem(at: directory)
    }
}

@Suite("The command line")
struct CLITests {
    private let enrol = "https://school.example/enrol"

    @Test("open mails every confirmed subscriber once; open again mails nobody; close and a new date mail everyone again")
    func openCloseOpen() async throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        try await cli.addConfirmed(["anna@example.com", "boris@example.com", "vera@example.com"])

        let opened = try cli.run("open", "--date", "2027-03-15", "--url", enrol, "--yes")
        #expect(opened.status == 0, "\(opened.stderr)")
        #expect(opened.stdout.contains("3 announcements queued"))
        #expect(cli.mailFiles().count == 3)

        let again = try cli.run("open", "--date", "2027-03-15", "--yes")
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout.contains("0 announcements queued"))
        #expect(cli.mailFiles().count == 3)

        let other = try cli.run("open", "--date", "2027-04-01", "--url", enrol, "--yes")
        #expect(other.status == 65)
        #expect(other.stderr.contains("waitlist close"))

        let closed = try cli.run("close")
        #expect(closed.status == 0)
        #expect(try AppDatabase.open(path: cli.databasePath).currentOpening(courseId: 1) == nil)

        let reopened = try cli.run("open", "--date", "2027-09-01", "--url", enrol, "--yes")
        #expect(reopened.status == 0, "\(reopened.stderr)")
        #expect(cli.mailFiles().count == 6)

        let status = try cli.run("status", "--json")
        #expect(status.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [[String: Any]])
        #expect(json.first?["confirmed"] as? Int == 3)
        #expect(json.first?["mailSent"] as? Int == 9)
        #expect(json.first?["openFor"] as? String == "2027-09-01")
    }

    @Test("open refuses without --yes when there is no terminal, and changes nothing")
    func openNeedsConfirmation() async throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        try await cli.addConfirmed(["anna@example.com"])
        let result = try cli.run("open", "--date", "2027-03-15", "--url", enrol)
        #expect(result.status == 64)
        #expect(result.stderr.contains("--yes"))
        #expect(result.stderr.contains("1 confirmed subscriber "))
        #expect(try AppDatabase.open(path: cli.databasePath).currentOpening(courseId: 1) == nil)
        #expect(cli.mailFiles().isEmpty)
    }

    @Test("open --dry-run prints the count and the message and changes nothing")
    func openDryRun() async throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        try await cli.addConfirmed(["anna@example.com", "boris@example.com"])
        let result = try cli.run("open", "--date", "2027-03-15", "--url", enrol, "--dry-run")
        #expect(result.status == 0)
        #expect(result.stdout.contains("mail 2 confirmed subscribers"))
        #expect(result.stdout.contains("15 марта 2027"))
        #expect(result.stdout.contains(enrol))
        #expect(result.stdout.contains("https://waitlist.example.org/unsubscribe/"))
        #expect(try AppDatabase.open(path: cli.databasePath).currentOpening(courseId: 1) == nil)
        #expect(cli.mailFiles().isEmpty)
    }

    @Test(
        "Bad usage exits 64 with one sentence and no stack trace",
        arguments: [
            ["open", "--date", "2027-02-30", "--url", "https://x.example", "--yes"],
            ["open", "--date", "tomorrow", "--yes"],
            ["open", "--date", "2027-03-15", "--yes"],
            ["open", "--date", "2027-03-15", "--url", "javascript:alert(1)", "--yes"],
            ["nonsense"],
        ])
    func badUsage(_ arguments: [String]) throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        let process = try cli.run(arguments: arguments)
        #expect(process.status == 64)
        #expect(!process.stderr.isEmpty)
        #expect(!process.stderr.contains("Fatal error"))
    }

    @Test("An unknown course exits 65")
    func unknownCourse() throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        let result = try cli.run("close", "--course", "nope")
        #expect(result.status == 65)
        #expect(result.stderr.contains("nope"))
    }

    @Test("A bad setting exits 64 naming the variable")
    func badSetting() throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        let result = try cli.run("status", extraEnvironment: ["WAITLIST_SEND_CONCURRENCY": "lots"])
        #expect(result.status == 64)
        #expect(result.stderr.contains("WAITLIST_SEND_CONCURRENCY"))
        let smtp = try cli.run("status", extraEnvironment: ["WAITLIST_SMTP_URL": "smtp://user:secret@"])
        #expect(smtp.status == 64)
        #expect(!smtp.stderr.contains("secret"))
    }

    @Test("send delivers what is queued and exits 0; with the relay unreachable it exits 69 and keeps the mail queued")
    func sendDeliversOrKeeps() async throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        let database = try AppDatabase.open(path: cli.databasePath)
        _ = try await database.subscribeDurably(
            email: try EmailAddress("anna@example.com"), courseId: 1, language: .ru, client: ClientContext())
        let unreachable = try cli.run("send", extraEnvironment: ["WAITLIST_SMTP_URL": "smtp://127.0.0.1:1"])
        #expect(unreachable.status == 69, "\(unreachable.stderr)")
        #expect(unreachable.stderr.contains("queued"))
        #expect(try database.status(courseId: 1).mailQueued == 1)
        // The retry is due 30 seconds later; move it to now, as time passing would.
        try await database.writer.write { db in try db.execute(sql: "UPDATE outbox SET nextAttemptAt = ?", arguments: [Date()]) }
        let delivered = try cli.run("send")
        #expect(delivered.status == 0, "\(delivered.stderr)")
        #expect(cli.mailFiles().count == 1)
        #expect(try database.status(courseId: 1).mailSent == 1)
        #expect(try cli.run("send").status == 0)
    }

    @Test("serve whose port is taken exits 69 with one sentence, its mail worker stopped, instead of hanging", .timeLimit(.minutes(1)))
    func serveOnATakenPortExits() async throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        // Hold a port, as another server would.
        let taken = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(taken) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(taken, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(bound == 0 && listen(taken, 1) == 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(taken, $0, &length) }
        }
        let port = Int(UInt16(bigEndian: address.sin_port))

        let result = try cli.run("serve", "--port", String(port))
        #expect(result.status == 69)
        #expect(result.stderr.contains("Address already in use"), "\(result.stderr)")
    }

    @Test("send while another process holds the sending role waits, says so, and takes over once that lease runs out")
    func sendWaitsForTheRoleHolder() async throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        let database = try AppDatabase.open(path: cli.databasePath)
        _ = try await database.subscribeDurably(
            email: try EmailAddress("anna@example.com"), courseId: 1, language: .ru, client: ClientContext())
        // A sender that froze: it holds the role for 3 more seconds and sends nothing.
        #expect(try database.takeSendingRole(owner: "frozen:1:abc", lease: 3) == nil)
        let started = Date()
        // Off the test pool: it waits for seconds, and other tests need the pool meanwhile.
        let result = try await onOwnThread { Result { try cli.run("send", extraEnvironment: ["WAITLIST_SEND_LEASE": "3"]) } }.get()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("Another waitlist process is sending"), "\(result.stderr)")
        #expect(Date().timeIntervalSince(started) >= 2.5)
        #expect(cli.mailFiles().count == 1)
        #expect(try database.status(courseId: 1).mailSent == 1)
        #expect(try database.sendingRoleHolder() == nil)
    }

    @Test("WAITLIST_SEND_LEASE is read in seconds, 45 by default; nonsense is a usage error")
    func sendLeaseSetting() throws {
        #expect(try Settings(environment: [:]).sendLease == 45)
        #expect(try Settings(environment: ["WAITLIST_SEND_LEASE": "2.5"]).sendLease == 2.5)
        for bad in ["0", "-3", "soon", "nan", "100000"] {
            #expect(throws: SettingsError.self) { try Settings(environment: ["WAITLIST_SEND_LEASE": bad]) }
        }
    }

    @Test("Every command reads the settings file WAITLIST_CONFIG names; a bad file stops it with exit 64")
    func commandsReadTheSettingsFile() async throws {
        var cli = try CLIHarness()
        defer { cli.cleanUp() }
        let database = cli.databasePath
        cli.environment.removeValue(forKey: "WAITLIST_DATABASE")
        _ = try await AppDatabase.open(path: database).subscribeDurably(
            email: try EmailAddress("anna@example.com"), courseId: 1, language: .ru, client: ClientContext())
        let config = cli.directory.appendingPathComponent("waitlist.env").path
        try "# written by the operator\nWAITLIST_DATABASE=\(database)\n".write(toFile: config, atomically: true, encoding: .utf8)
        let status = try cli.run("status", "--json", extraEnvironment: ["WAITLIST_CONFIG": config])
        #expect(status.status == 0, "\(status.stderr)")
        #expect(status.stdout.contains(#""pending" : 1"#), "\(status.stdout)")
        try "WAITLIST_DATABASE\n".write(toFile: config, atomically: true, encoding: .utf8)
        let broken = try cli.run("status", extraEnvironment: ["WAITLIST_CONFIG": config])
        #expect(broken.status == 64)
        #expect(broken.stderr.contains("line 1"), "\(broken.stderr)")
    }

    @Test("Another program's SQLite file is refused with exit 65 and left exactly as it was, not even switched to WAL")
    func foreignDatabaseIsLeftAlone() throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        let queue = try DatabaseQueue(path: cli.databasePath)
        try queue.write { db in
            try db.execute(sql: "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('x')")
        }
        try queue.close()
        let before = try Data(contentsOf: URL(fileURLWithPath: cli.databasePath))
        for command in [["status"], ["send"], ["serve", "--port", "0"]] {
            let result = try cli.runExpectingExit(command)
            #expect(result.status == 65, "\(command): \(result.stderr)")
            #expect(result.stderr.contains("belongs to another program") && result.stderr.contains("users"), "\(result.stderr)")
            #expect(!result.stderr.contains("SELECT") && !result.stderr.contains("CREATE"))
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: cli.databasePath)) == before)
        #expect(!FileManager.default.fileExists(atPath: cli.databasePath + "-wal"))
    }

    @Test("A database from a newer version is refused with one sentence (exit 65); Litestream's tables are welcome")
    func newerOrReplicatedDatabase() throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        _ = try AppDatabase.open(path: cli.databasePath)
        let queue = try DatabaseQueue(path: cli.databasePath)
        try queue.write { db in
            try db.execute(sql: "CREATE TABLE _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER)")
        }
        #expect(try cli.run("status").status == 0)
        try queue.write { db in try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99: from the future')") }
        try queue.close()
        let result = try cli.run("status")
        #expect(result.status == 65)
        #expect(result.stderr.contains("newer version") && result.stderr.contains("v99: from the future"), "\(result.stderr)")
    }

    @Test("serve refuses a damaged file at start (quick_check), and no command prints SQL for one: exit 65")
    func damagedDatabase() async throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        try await cli.addConfirmed((1...300).map { "person\($0)@example.com" })
        // Fold the WAL into the file, then overwrite pages in its middle, as a failing disk would.
        let queue = try DatabaseQueue(path: cli.databasePath)
        try await queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        try queue.close()
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: cli.databasePath))
        let length = try handle.seekToEnd()
        try handle.seek(toOffset: 4096 * 3)
        try handle.write(contentsOf: Data(repeating: 0xA5, count: Int(min(length - 4096 * 3, 4096 * 6))))
        try handle.close()
        let served = try cli.runExpectingExit(["serve", "--port", "0"])
        #expect(served.status == 65, "\(served.stderr)")
        #expect(served.stderr.contains("damaged"), "\(served.stderr)")
        let status = try cli.run("status")
        #expect([65, 0].contains(status.status), "\(status.stderr)")
        #expect(!status.stderr.contains("SELECT"), "\(status.stderr)")
    }

    @Test("course add, list and edit manage courses")
    func courses() throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        #expect(try cli.run("course", "add", "pricing", "--title", "Ценообразование").status == 0)
        #expect(try cli.run("course", "add", "Bad Slug", "--title", "x").status == 65)
        #expect(try cli.run("course", "add", "pricing", "--title", "again").status == 65)
        #expect(try cli.run("course", "edit", "pricing", "--url", enrol, "--title", "Цены").status == 0)
        let list = try cli.run("course", "list")
        #expect(list.stdout.contains("negotiation\tПереговоры и отношения с клиентами\tNegotiation and client relations\twaiting"))
        #expect(list.stdout.contains("pricing\tЦены\t-\twaiting\t\(enrol)"))
        let ambiguous = try cli.run("close")
        #expect(ambiguous.status == 64)
        #expect(ambiguous.stderr.contains("--course"))
    }

    @Test("course add and edit take English titles and descriptions in both languages; list shows both titles")
    func coursesInBothLanguages() throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        let added = try cli.run(
            "course", "add", "pricing", "--title", "Ценообразование", "--title-en", "Pricing", "--about", "Как назначать цену.",
            "--about-en", "How to set a price.")
        #expect(added.status == 0, "\(added.stderr)")
        #expect(try cli.run("course", "list").stdout.contains("pricing\tЦенообразование\tPricing\twaiting\t-"))
        let edited = try cli.run("course", "edit", "pricing", "--title-en", "Setting prices")
        #expect(edited.status == 0, "\(edited.stderr)")
        #expect(try cli.run("course", "list").stdout.contains("pricing\tЦенообразование\tSetting prices\twaiting"))
        #expect(try cli.run("course", "edit", "pricing", "--title-en", "").status == 0)
        #expect(try cli.run("course", "list").stdout.contains("pricing\tЦенообразование\t-\twaiting"))
        let tooLong = try cli.run("course", "edit", "pricing", "--about-en", String(repeating: "x", count: 1001))
        #expect(tooLong.status == 65)
        #expect(tooLong.stderr.contains("at most 1000 characters"), "\(tooLong.stderr)")
        #expect(try cli.run("course", "edit", "pricing").status == 64)
    }

    @Test("export writes confirmed subscribers with their consent record; forget erases an address")
    func exportAndForget() async throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        try await cli.addConfirmed(["anna@example.com", "=cmd@example.com"])
        let csv = try cli.run("export")
        #expect(csv.status == 0)
        let lines = csv.stdout.split(separator: "\r\n")
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("email,course,language,signed_up_at"))
        #expect(lines[1].hasPrefix("anna@example.com,negotiation,ru,"))
        #expect(lines[1].contains("192.0.2.1"))
        #expect(lines[2].hasPrefix("'=cmd@example.com"))
        let json = try cli.run("export", "--format", "json")
        let records = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        #expect(records.map { $0["email"] as? String } == ["anna@example.com", "=cmd@example.com"])
        let events = try #require(records.first?["events"] as? [[String: Any]])
        #expect(events.map { $0["kind"] as? String } == ["signup", "confirm"])
        #expect(events.first?["ip"] as? String == "192.0.2.1")

        let forgotten = try cli.run("forget", "Anna@Example.com")
        #expect(forgotten.status == 0)
        #expect(!(try cli.run("export").stdout.contains("anna@example.com")))
        #expect(try cli.run("forget", "nobody@example.com").stdout.contains("No trace"))
    }

    @Test("forget says which mail files it could not look through or delete, and exits 75 so that it is run again")
    func forgetReportsMailFilesLeft() async throws {
        var cli = try CLIHarness()
        defer { cli.cleanUp() }
        try await cli.addConfirmed(["anna@example.com"])
        // A mail directory that is no directory: its files cannot be looked through
        let notADirectory = cli.directory.appendingPathComponent("mail-file").path
        try "not a directory".write(toFile: notADirectory, atomically: true, encoding: .utf8)
        cli.environment["WAITLIST_MAIL_DIR"] = notADirectory
        let forgotten = try cli.run("forget", "anna@example.com")
        #expect(forgotten.status == 75, "\(forgotten.stderr)")
        #expect(forgotten.stdout.contains("Erased 1 subscription of anna@example.com."))
        #expect(forgotten.stderr.contains("A mail file to anna@example.com may be left: \(notADirectory)"))
        #expect(!(try cli.run("export").stdout.contains("anna@example.com")))
    }

    @Test("backup writes a consistent copy that opens with the same data, and never overwrites")
    func backup() async throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        try await cli.addConfirmed(["anna@example.com"])
        let target = cli.directory.appendingPathComponent("copy.sqlite").path
        #expect(try cli.run("backup", target).status == 0)
        #expect(try AppDatabase.open(path: target).status(courseId: 1).confirmed == 1)
        #expect(try cli.run("backup", target).status == 64)
    }

    @Test("test-mail sends one message through the configured transport")
    func testMail() throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        #expect(try cli.run("test-mail", "ops@example.com").status == 0)
        #expect(cli.mailFiles().count == 1)
        #expect(try cli.run("test-mail", "not an address").status == 65)
        #expect(try cli.run("test-mail", "ops@example.com", extraEnvironment: ["WAITLIST_SMTP_URL": "smtp://127.0.0.1:1"]).status == 69)
    }
}
