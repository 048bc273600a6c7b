import Foundation
import GRDB
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

extension CLIHarness {
    /// Writes the settings file Postfix's pipe finds the database through, and returns its path.
    func writeConfig(bounceAddress: String? = "bounces@school.example", database: String? = nil) throws -> String {
        let path = directory.appendingPathComponent("waitlist.env").path
        var lines = [
            "WAITLIST_DATABASE=\(database ?? databasePath)", "WAITLIST_MAIL_DIR=\(environment["WAITLIST_MAIL_DIR"]!)",
            "WAITLIST_BASE_URL=https://waitlist.example.org",
        ]
        if let bounceAddress { lines.append("WAITLIST_BOUNCE_ADDRESS=\(bounceAddress)") }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Runs `waitlist bounce ARGS` as Postfix's pipe does: the message on stdin, and no
    /// environment but the variable naming the settings file.
    func pipe(_ input: [UInt8], arguments: [String] = [], config: String) throws -> Result {
        try run(arguments: ["bounce"] + arguments, onlyEnvironment: ["WAITLIST_CONFIG": config], input: Data(input))
    }

    /// The tag of the latest mail to `email`, made with the database's own key.
    func bounceTag(of email: String) throws -> String {
        let database = try AppDatabase.open(path: databasePath)
        let id = try #require(
            try database.writer.read { db in
                try Int64.fetchOne(
                    db, sql: "SELECT max(o.id) FROM outbox o JOIN subscriber s ON s.id = o.subscriberId WHERE s.email = ?",
                    arguments: [email])
            })
        return BounceTags(address: BounceAddress("bounces@school.example")!, key: try database.secret(named: BounceTags.secretName))
            .tag(outboxId: id)
    }

    /// The subscriber's state.
    func subscriberStatus(_ email: String) throws -> String? {
        try AppDatabase.open(path: databasePath).writer.read { db in
            try String.fetchOne(db, sql: "SELECT status FROM subscriber WHERE email = ?", arguments: [email])
        }
    }
}

@Suite("waitlist bounce, fed as Postfix's pipe feeds it")
struct BounceCLITests {
    private let enrol = "https://school.example/enrol"

    /// Two confirmed subscribers who got the announcement; returns the settings file.
    private func announced(_ cli: CLIHarness) async throws -> String {
        try await cli.addConfirmed(["anna@example.com", "boris@example.com"])
        let config = try cli.writeConfig()
        let opened = try cli.run("open", "--date", "2027-03-15", "--url", enrol, "--yes", extraEnvironment: ["WAITLIST_CONFIG": config])
        #expect(opened.status == 0, "\(opened.stderr)")
        return config
    }

    @Test("A Postfix DSN of a permanent failure marks the subscriber bounced with the reply; later openings skip it")
    func dsnMarksBounced() async throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        let config = try await announced(cli)
        let files = cli.mailFiles().count

        let result = try cli.pipe(
            BounceMail.dsn(tag: try cli.bounceTag(of: "anna@example.com")), arguments: [try cli.bounceTag(of: "anna@example.com")],
            config: config)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try cli.subscriberStatus("anna@example.com") == "bounced")
        #expect(try cli.subscriberStatus("boris@example.com") == "confirmed")

        let export = try cli.run("export", "--status", "bounced", "--format", "json")
        let records = try #require(try JSONSerialization.jsonObject(with: Data(export.stdout.utf8)) as? [[String: Any]])
        #expect(records.map { $0["email"] as? String } == ["anna@example.com"])
        let reply = try #require(records.first?["bounceReply"] as? String)
        #expect(reply.contains("550 5.1.1") && reply.contains("User unknown") && !reply.contains("@"))
        let csv = try cli.run("export", "--status", "bounced")
        #expect(csv.stdout.split(separator: "\r\n").count == 2)
        #expect(csv.stdout.contains(",bounced,"))
        #expect(try cli.run("export", "--status", "all").stdout.split(separator: "\r\n").count == 3)

        #expect(try cli.run("close").status == 0)
        #expect(try cli.run("open", "--date", "2027-09-01", "--url", enrol, "--yes").status == 0)
        #expect(cli.mailFiles().count == files + 1)
    }

    @Test("Without a tag argument the tag is found in Delivered-To, or in To when there is none")
    func tagFromHeaders() async throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        let config = try await announced(cli)
        #expect(try cli.pipe(BounceMail.dsn(tag: try cli.bounceTag(of: "anna@example.com")), config: config).status == 0)
        #expect(try cli.subscriberStatus("anna@example.com") == "bounced")
        let plain = BounceMail.plain(tag: try cli.bounceTag(of: "boris@example.com").uppercased())
        #expect(try cli.pipe(plain, arguments: [""], config: config).status == 0)
        #expect(try cli.subscriberStatus("boris@example.com") == "bounced")
    }

    @Test("A delay only counts; a forged tag, an unknown one and no tag change nothing, and all exit 0")
    func delaysAndForgeries() async throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        let config = try await announced(cli)
        let tag = try cli.bounceTag(of: "anna@example.com")
        let delay = BounceMail.dsn(
            tag: tag, action: "delayed", status: "4.4.1", diagnostic: "X-Postfix; connect to mx.example.com: timed out")
        #expect(try cli.pipe(delay, arguments: [tag], config: config).status == 0)
        let id = Int64(tag.split(separator: "-")[0])!
        #expect(try AppDatabase.open(path: cli.databasePath).delayNotices(outboxId: id) == 1)

        let otherKey = BounceTags(address: BounceAddress("bounces@school.example")!, key: Data(repeating: 1, count: 32))
        let forged = otherKey.tag(outboxId: id)
        #expect(try cli.pipe(BounceMail.dsn(tag: forged), arguments: [forged], config: config).status == 0)
        #expect(try cli.pipe(BounceMail.dsn(tag: forged), config: config).status == 0)
        let unknown = BounceTags(
            address: BounceAddress("bounces@school.example")!,
            key: try AppDatabase.open(path: cli.databasePath).secret(named: BounceTags.secretName)
        ).tag(outboxId: 999_999)
        #expect(try cli.pipe(BounceMail.dsn(tag: unknown), arguments: [unknown], config: config).status == 0)
        #expect(try cli.pipe(BounceMail.dsn(tag: "x", deliveredTo: false), arguments: ["nonsense"], config: config).status == 0)
        #expect(try cli.subscriberStatus("anna@example.com") == "confirmed")
        #expect(try cli.subscriberStatus("boris@example.com") == "confirmed")
    }

    @Test("Input that is not a mail exits 65 and changes nothing")
    func notAMail() async throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        let config = try await announced(cli)
        for input in [[UInt8](), Array("this is no mail\n".utf8), [0, 1, 2, 255, 254]] {
            let result = try cli.pipe(input, arguments: [try cli.bounceTag(of: "anna@example.com")], config: config)
            #expect(result.status == 65)
            #expect(result.stderr.contains("not a mail"))
        }
        #expect(try cli.subscriberStatus("anna@example.com") == "confirmed")
    }

    @Test("A missing bounce setting, a database that cannot be opened and a locked one exit 75; the retry then works")
    func temporaryFailures() async throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        _ = try await announced(cli)
        let tag = try cli.bounceTag(of: "anna@example.com")
        let dsn = BounceMail.dsn(tag: tag)

        let unset = try cli.pipe(dsn, arguments: [tag], config: try cli.writeConfig(bounceAddress: nil))
        #expect(unset.status == 75)
        #expect(unset.stderr.contains("WAITLIST_BOUNCE_ADDRESS"))
        let folder = cli.directory.appendingPathComponent("mail").path
        #expect(try cli.pipe(dsn, arguments: [tag], config: try cli.writeConfig(database: folder)).status == 75)
        #expect(try cli.pipe(dsn, arguments: [tag], config: try cli.writeConfig(database: folder + "/none.sqlite")).status == 75)

        // Another process holds the write lock past the busy timeout.
        let config = try cli.writeConfig()
        var configuration = Configuration()
        configuration.allowsUnsafeTransactions = true
        let holder = try DatabaseQueue(path: cli.databasePath, configuration: configuration)
        try holder.inDatabase { db in try db.execute(sql: "BEGIN IMMEDIATE") }
        let locked = await onOwnThread { try? cli.pipe(dsn, arguments: [tag], config: config) }
        try holder.inDatabase { db in try db.execute(sql: "ROLLBACK") }
        #expect(locked?.status == 75, "\(locked?.stderr ?? "")")
        #expect(try cli.subscriberStatus("anna@example.com") == "confirmed")

        #expect(try cli.pipe(dsn, arguments: [tag], config: config).status == 0)
        #expect(try cli.subscriberStatus("anna@example.com") == "bounced")
    }
}

@Suite("Envelope senders over SMTP")
struct BounceEnvelopeTests {
    @Test("With WAITLIST_BOUNCE_ADDRESS the relay sees bounces+TAG as MAIL FROM, the tag names the message; From is unchanged")
    func envelopeSenderCarriesTag() async throws {
        let server = try await SMTPTestServer.start()
        defer { server.stop() }
        var world = try await TestWorld.make()
        world.settings.mailFrom = Mailbox(displayName: "Школа", address: "school@school.example")
        let address = BounceAddress("bounces@school.example")!
        let tags = BounceTags(address: address, key: try world.database.secret(named: BounceTags.secretName))
        let sender = OutboxSender(
            store: world.database,
            transport: SMTPTransport(configuration: try SMTPConfiguration(url: server.url), ehloName: "school.example"),
            composer: world.composer, concurrency: 1, logger: .init(label: "test"), bounceTags: tags, now: world.clock.function)
        try await world.signUp("anna@example.com")
        #expect(try await sender.run(mode: .drain).sent == 1)

        let received = try #require(try server.receivedMessages().first)
        let tag = try #require(address.tag(in: received.mailFrom))
        #expect(received.mailFrom == "bounces+\(tag)@school.example")
        let id = try #require(tags.outboxId(fromTag: tag))
        let outboxRecipient = try await world.database.writer.read { db in
            try String.fetchOne(
                db, sql: "SELECT s.email FROM outbox o JOIN subscriber s ON s.id = o.subscriberId WHERE o.id = ?", arguments: [id])
        }
        #expect(outboxRecipient == "anna@example.com")
        #expect(RawMail(received.data).header("From")?.contains("<school@school.example>") == true)

        // Unset: the envelope sender is the From address.
        try await world.signUp("boris@example.com")
        let plain = OutboxSender(
            store: world.database,
            transport: SMTPTransport(configuration: try SMTPConfiguration(url: server.url), ehloName: "school.example"),
            composer: world.composer, concurrency: 1, logger: .init(label: "test"), now: world.clock.function)
        #expect(try await plain.run(mode: .drain).sent == 1)
        #expect(try server.receivedMessages().last?.mailFrom == "school@school.example")
    }
}
