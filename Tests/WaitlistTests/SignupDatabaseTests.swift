import Foundation
import GRDB
import Testing

@testable import Waitlist

@Suite("Signups, confirmation and unsubscribing in the database")
struct SignupDatabaseTests {
    @Test("A fresh database holds the negotiation course")
    func freshDatabaseHasDefaultCourse() throws {
        let database = try AppDatabase.inMemory()
        let courses = try database.courses()
        #expect(courses.map(\.slug) == ["negotiation"])
        #expect(courses.first?.title == "Переговоры и отношения с клиентами")
    }

    @Test("A new address becomes pending with exactly one confirmation queued")
    func newAddressQueuesOneConfirmation() async throws {
        // Given a fresh database
        let world = try await TestWorld.make()
        // When an address signs up
        let outcome = try world.signUp("anna@example.com")
        // Then it is pending with one confirmation queued, in the same transaction
        #expect(outcome == .confirmationQueued)
        let status = try world.database.status(courseId: try world.course.id!)
        #expect(status.pending == 1)
        #expect(status.mailQueued == 1)
    }

    @Test("Signing up again within 24 hours sends nothing; after 24 hours one more; never more than three")
    func confirmationsAreThrottled() async throws {
        let world = try await TestWorld.make()
        #expect(try world.signUp("anna@example.com") == .confirmationQueued)
        for _ in 0..<10 { #expect(try world.signUp("ANNA@example.com") == .throttled) }
        world.clock.advance(by: 24 * 3600 + 1)
        #expect(try world.signUp("anna@example.com") == .confirmationQueued)
        world.clock.advance(by: 24 * 3600 + 1)
        #expect(try world.signUp("anna@example.com") == .confirmationQueued)
        world.clock.advance(by: 24 * 3600 + 1)
        #expect(try world.signUp("anna@example.com") == .throttled)
        #expect(try world.database.status(courseId: try world.course.id!).mailQueued == 3)
    }

    @Test("A confirmed address gets nothing more when it signs up again")
    func confirmedAddressGetsNoMail() async throws {
        let world = try await TestWorld.make()
        try await world.confirmedSubscriber("anna@example.com")
        world.clock.advance(by: 48 * 3600)
        #expect(try world.signUp("anna@example.com") == .alreadyConfirmed)
        #expect(try world.database.backlog(now: world.clock.now).isEmpty)
    }

    @Test("The confirmation link confirms, and a second click changes nothing")
    func confirmationTokenConfirms() async throws {
        let world = try await TestWorld.make()
        try world.signUp("anna@example.com")
        try await world.deliverAll()
        let message = try #require(world.lastMessage(to: "anna@example.com"))
        let token = try #require(world.linkToken("confirm", in: message))
        guard case .valid(let pending, _) = try world.database.lookUp(token, purpose: .confirm, now: world.clock.now) else {
            Issue.record("the token is not valid")
            return
        }
        #expect(pending.status == .pending)
        let client = ClientContext(source: nil, ip: "192.0.2.7", userAgent: "Test")
        guard case .valid(let confirmed, _) = try world.database.confirm(token, client: client, now: world.clock.now) else {
            Issue.record("confirming failed")
            return
        }
        #expect(confirmed.status == .confirmed)
        #expect(confirmed.confirmIP == "192.0.2.7")
        #expect(confirmed.confirmedAt == world.clock.now)
        world.clock.advance(by: 60)
        guard case .valid(let again, _) = try world.database.confirm(token, client: ClientContext(), now: world.clock.now) else {
            Issue.record("a second click failed")
            return
        }
        #expect(again.confirmedAt == confirmed.confirmedAt)
    }

    @Test("A confirmation link expires after 7 days")
    func confirmationTokenExpires() async throws {
        let world = try await TestWorld.make()
        try world.signUp("anna@example.com")
        try await world.deliverAll()
        let message = try #require(world.lastMessage(to: "anna@example.com"))
        let token = try #require(world.linkToken("confirm", in: message))
        world.clock.advance(by: 7 * 24 * 3600 + 1)
        guard case .expired = try world.database.confirm(token, client: ClientContext(), now: world.clock.now) else {
            Issue.record("the token did not expire")
            return
        }
        #expect(try world.database.status(courseId: try world.course.id!).confirmed == 0)
    }

    @Test("An unknown token is unknown")
    func unknownToken() throws {
        let database = try AppDatabase.inMemory()
        #expect(try database.confirm(Token.generate(), client: ClientContext()) == .unknown)
        #expect(try database.unsubscribe(Token.generate()) == .unknown)
    }

    @Test("The database keeps only token hashes, never a token in clear")
    func tokensAreStoredHashed() async throws {
        let world = try await TestWorld.make()
        try world.signUp("anna@example.com")
        try await world.deliverAll()
        let message = try #require(world.lastMessage(to: "anna@example.com"))
        let confirm = try #require(world.linkToken("confirm", in: message))
        let unsubscribe = try #require(world.linkToken("unsubscribe", in: message))
        let dump = try await world.database.writer.read { db in
            var text = ""
            for table in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'") {
                for row in try Row.fetchAll(db, sql: "SELECT * FROM \(table)") { text += row.description }
            }
            return text
        }
        #expect(!dump.contains(confirm.value))
        #expect(!dump.contains(unsubscribe.value))
        // Only the hashes: the confirm token's in the token table, the unsubscribe token's with its mail.
        let hashes = try await world.database.writer.read { db in
            (try Data.fetchAll(db, sql: "SELECT hash FROM token"), try Data.fetchAll(db, sql: "SELECT unsubscribeHash FROM outbox"))
        }
        #expect(hashes.0.contains(confirm.hash))
        #expect(hashes.1.contains(unsubscribe.hash))
    }

    @Test("Unsubscribing stops everything still queued for the address")
    func unsubscribeCancelsQueuedMail() async throws {
        let world = try await TestWorld.make()
        try await world.confirmedSubscriber("anna@example.com")
        _ = try world.database.open(
            courseId: try world.course.id!, date: "2027-03-15", enrolURL: "https://school.example/enrol", now: world.clock.now)
        let message = try #require(world.lastMessage(to: "anna@example.com"))
        let token = try #require(world.linkToken("unsubscribe", in: message))
        guard case .valid(let subscriber, _) = try world.database.unsubscribe(token, now: world.clock.now) else {
            Issue.record("unsubscribing failed")
            return
        }
        #expect(subscriber.status == .unsubscribed)
        let before = world.transport.messages.count
        try await world.deliverAll()
        #expect(world.transport.messages.count == before)
    }

    @Test("Forgetting an address erases its subscriber, tokens and mail rows")
    func forgetErasesEverything() async throws {
        let world = try await TestWorld.make()
        try await world.confirmedSubscriber("anna@example.com")
        try world.signUp("boris@example.com")
        #expect(try world.database.forget(email: "ANNA@example.com ") == 1)
        let remaining = try await world.database.writer.read { db in
            (
                try String.fetchAll(db, sql: "SELECT email FROM subscriber"),
                try Int.fetchOne(
                    db, sql: "SELECT count(*) FROM token t JOIN subscriber s ON s.id = t.subscriberId WHERE s.emailKey = 'anna@example.com'"
                ),
                try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE subscriberId NOT IN (SELECT id FROM subscriber)")
            )
        }
        #expect(remaining.0 == ["boris@example.com"])
        #expect(remaining.1 == 0)
        #expect(remaining.2 == 0)
    }

    @Test("The schema refuses a second subscriber row for the same address and course")
    func schemaEnforcesUniqueAddress() async throws {
        let world = try await TestWorld.make()
        try world.signUp("anna@example.com")
        #expect(throws: DatabaseError.self) {
            try world.database.writer.write { db in
                try db.execute(
                    sql:
                        "INSERT INTO subscriber (courseId, email, emailKey, language, status, createdAt) VALUES (1, 'Anna@example.com', 'anna@example.com', 'ru', 'pending', ?)",
                    arguments: [Date()])
            }
        }
    }
}
