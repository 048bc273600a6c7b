import Foundation
import NIOConcurrencyHelpers
import GRDB
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

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
        let outcome = try await world.signUp("anna@example.com")
        // Then it is pending with one confirmation queued, in the same transaction
        #expect(outcome == .confirmationQueued)
        let status = try world.database.status(courseId: try world.course.id!)
        #expect(status.pending == 1)
        #expect(status.mailQueued == 1)
    }

    @Test("Signing up again within 24 hours sends nothing; after 24 hours one more; never more than three")
    func confirmationsAreThrottled() async throws {
        let world = try await TestWorld.make()
        #expect(try await world.signUp("anna@example.com") == .confirmationQueued)
        for _ in 0..<10 { #expect(try await world.signUp("ANNA@example.com") == .throttled) }
        world.clock.advance(by: 24 * 3600 + 1)
        #expect(try await world.signUp("anna@example.com") == .confirmationQueued)
        world.clock.advance(by: 24 * 3600 + 1)
        #expect(try await world.signUp("anna@example.com") == .confirmationQueued)
        world.clock.advance(by: 24 * 3600 + 1)
        #expect(try await world.signUp("anna@example.com") == .throttled)
        #expect(try world.database.status(courseId: try world.course.id!).mailQueued == 3)
    }

    @Test("The 24 hours run to the second: a signup a second before they are up sends nothing, one a second after sends")
    func throttleEndsAfterExactly24Hours() async throws {
        let world = try await TestWorld.make()
        #expect(try await world.signUp("anna@example.com") == .confirmationQueued)
        world.clock.advance(by: AppDatabase.confirmationInterval - 1)
        #expect(try await world.signUp("anna@example.com") == .throttled)
        world.clock.advance(by: 2)
        #expect(try await world.signUp("anna@example.com") == .confirmationQueued)
    }

    @Test("A confirmed address gets nothing more when it signs up again")
    func confirmedAddressGetsNoMail() async throws {
        let world = try await TestWorld.make()
        try await world.confirmedSubscriber("anna@example.com")
        world.clock.advance(by: 48 * 3600)
        #expect(try await world.signUp("anna@example.com") == .alreadyConfirmed)
        #expect(try world.database.backlog(now: world.clock.now).isEmpty)
    }

    @Test("The confirmation link confirms, and a second click changes nothing")
    func confirmationTokenConfirms() async throws {
        let world = try await TestWorld.make()
        try await world.signUp("anna@example.com")
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
        guard case .alreadyDone(let again, _) = try world.database.confirm(token, client: ClientContext(), now: world.clock.now) else {
            Issue.record("a second click did not say 'already confirmed'")
            return
        }
        #expect(again.confirmedAt == confirmed.confirmedAt)
        #expect(again.confirmIP == "192.0.2.7")
    }

    @Test("A used confirmation link never subscribes again: not after unsubscribing, not after a bounce")
    func usedConfirmationLinkIsSpent() async throws {
        let world = try await TestWorld.make()
        let token = try await world.pendingSubscriber("anna@example.com")
        _ = try world.database.confirm(token, client: ClientContext(), now: world.clock.now)
        let unsubscribe = try world.token("unsubscribe", sentTo: "anna@example.com")
        _ = try world.database.unsubscribe(unsubscribe, now: world.clock.now)
        world.clock.advance(by: 60)

        #expect(
            try world.database.confirm(token, client: ClientContext(ip: "203.0.113.9"), now: world.clock.now) == .expired(try world.course))
        let subscriber = try #require(try await world.database.writer.read { db in try Subscriber.fetchOne(db) })
        #expect(subscriber.status == .unsubscribed)
        #expect(subscriber.unsubscribedAt != nil)
        #expect(subscriber.confirmIP == nil)

        // Bounced: the same.
        try await world.database.writer.write { db in
            try db.execute(sql: "UPDATE subscriber SET status = 'bounced', bouncedAt = ?", arguments: [Date()])
        }
        #expect(try world.database.confirm(token, client: ClientContext(), now: world.clock.now) == .expired(try world.course))
        #expect(try world.database.status(courseId: 1).bounced == 1)

        // A new signup and its own new link bring the address back; the old link still does nothing.
        try await world.database.writer.write { db in try db.execute(sql: "UPDATE subscriber SET status = 'unsubscribed', bouncedAt = NULL")
        }
        world.clock.advance(by: AppDatabase.confirmationInterval)
        let fresh = try await world.pendingSubscriber("anna@example.com")
        #expect(fresh != token)
        #expect(try world.database.confirm(token, client: ClientContext(), now: world.clock.now) == .expired(try world.course))
        guard case .valid(let back, _) = try world.database.confirm(fresh, client: ClientContext(), now: world.clock.now) else {
            Issue.record("the new link did not confirm")
            return
        }
        #expect(back.status == .confirmed)
    }

    @Test("A confirmation link left unused when the address unsubscribed does not confirm a later signup of it")
    func earlierSignupsLinkDoesNotConfirmALaterOne() async throws {
        // Given anna signed up and unsubscribed through her confirmation mail without confirming
        let world = try await TestWorld.make()
        let earlier = try await world.pendingSubscriber("anna@example.com")
        world.clock.advance(by: 60)
        _ = try world.database.unsubscribe(try world.token("unsubscribe", sentTo: "anna@example.com"), now: world.clock.now)
        // When someone signs her address up again a day later and its confirmation goes out
        world.clock.advance(by: AppDatabase.confirmationInterval + 1)
        let later = try await world.pendingSubscriber("anna@example.com")
        #expect(later != earlier)
        // Then the earlier link is expired and confirms nothing; the new signup's own link confirms it
        let course = try world.course
        #expect(try world.database.lookUp(earlier, purpose: .confirm, now: world.clock.now) == .expired(course))
        #expect(try world.database.confirm(earlier, client: ClientContext(ip: "203.0.113.9"), now: world.clock.now) == .expired(course))
        #expect(try world.database.status(courseId: 1).pending == 1)
        guard case .valid(let confirmed, _) = try world.database.confirm(later, client: ClientContext(), now: world.clock.now) else {
            Issue.record("the later signup's own link did not confirm")
            return
        }
        #expect(confirmed.status == .confirmed)
    }

    // MARK: - Confirmation caps

    @Test("One address gets at most three confirmation mails in 24 hours over all courses; the fourth course's signup waits a day")
    func confirmationsAcrossCoursesAreCapped() async throws {
        // Given four courses
        let world = try await TestWorld.make()
        var courses = [try world.course.id!]
        for slug in ["pricing", "sales", "service"] {
            courses.append(try world.database.addCourse(slug: slug, title: slug).id!)
        }
        func signUp(for courseId: Int64) async throws -> SignupOutcome {
            try await world.database.subscribeDurably(
                email: try EmailAddress("anna@example.com"), courseId: courseId, language: .ru, client: ClientContext(),
                now: world.clock.now)
        }
        // When one address signs up for each of them, a few seconds apart
        let start = world.clock.now
        var outcomes: [SignupOutcome] = []
        for courseId in courses {
            outcomes.append(try await signUp(for: courseId))
            world.clock.advance(by: 5)
        }
        try await world.deliverAll()
        // Then the first three courses' confirmations go out, the fourth's does not
        #expect(outcomes == [.confirmationQueued, .confirmationQueued, .confirmationQueued, .throttled])
        #expect(world.transport.messages.count == 3)
        // And once the first mail is a day old, the fourth course's signup gets its confirmation
        world.clock.advance(by: start.addingTimeInterval(AppDatabase.confirmationInterval + 1).timeIntervalSince(world.clock.now))
        #expect(try await signUp(for: courses[3]) == .confirmationQueued)
    }

    @Test("After unconfirmed signups are purged, the cap of three confirmation mails per address and course still holds")
    func perCourseCapOutlivesThePurge() async throws {
        // Given an address that got one confirmation and never confirmed, purged after 7 days
        let world = try await TestWorld.make()
        #expect(try await world.signUp("anna@example.com") == .confirmationQueued)
        try await world.deliverAll()
        world.clock.advance(by: AppDatabase.unconfirmedRetention + 60)
        #expect(try world.database.purgeUnconfirmed(now: world.clock.now).signups == 1)
        // When it is signed up again, day after day
        var outcomes: [SignupOutcome] = []
        for _ in 0..<3 {
            outcomes.append(try await world.signUp("ANNA@example.com"))
            try await world.deliverAll()
            world.clock.advance(by: AppDatabase.confirmationInterval + 1)
        }
        // Then it gets the two confirmations left of its three, not three more
        #expect(outcomes == [.confirmationQueued, .confirmationQueued, .throttled])
        #expect(world.transport.messages.count == 3)
        // And after the next purge too
        world.clock.advance(by: AppDatabase.unconfirmedRetention)
        #expect(try world.database.purgeUnconfirmed(now: world.clock.now).signups == 1)
        #expect(try await world.signUp("anna@example.com") == .throttled)
    }

    @Test("A purged signup leaves only a keyed hash of its address, its course and a count, kept for a year after its last mail")
    func purgeKeepsOnlyAKeyedCountForAYear() async throws {
        // Given an address that got its three confirmations and never confirmed
        let world = try await TestWorld.make()
        for _ in 0..<3 {
            try await world.signUp("anna@example.com")
            try await world.deliverAll()
            world.clock.advance(by: AppDatabase.confirmationInterval + 1)
        }
        // When its signup is purged
        world.clock.advance(by: AppDatabase.unconfirmedRetention)
        #expect(try world.database.purgeUnconfirmed(now: world.clock.now).signups == 1)
        // Then what is kept is a 32-byte digest that is not the address's plain hash, the course and the count
        let kept = try world.database.writer.read { db in try Row.fetchAll(db, sql: "SELECT * FROM purged_confirmations") }
        #expect(kept.count == 1)
        let digest = try #require(kept.first?["addressDigest"] as Data?)
        #expect(digest.count == 32)
        #expect(digest != Token.hash(of: "anna@example.com"))
        #expect(kept.first?["courseId"] as Int64? == 1)
        #expect(kept.first?["mails"] as Int? == 3)
        #expect(!kept.description.contains("anna"))
        #expect(try await world.signUp("anna@example.com") == .throttled)
        // And a year after its last mail the count is gone, and the address may be mailed again
        world.clock.advance(by: AppDatabase.purgedConfirmationsRetention)
        try world.database.purgeUnconfirmed(now: world.clock.now)
        #expect(try await world.database.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM purged_confirmations") } == 0)
        #expect(try await world.signUp("anna@example.com") == .confirmationQueued)
    }

    @Test("Once an address confirms, its purged signups' mails no longer count against it")
    func confirmingEndsThePurgedCount() async throws {
        // Given an address purged after two unanswered confirmations
        let world = try await TestWorld.make()
        for _ in 0..<2 {
            try await world.signUp("anna@example.com")
            try await world.deliverAll()
            world.clock.advance(by: AppDatabase.confirmationInterval + 1)
        }
        world.clock.advance(by: AppDatabase.unconfirmedRetention)
        #expect(try world.database.purgeUnconfirmed(now: world.clock.now).signups == 1)
        // And that signs up again and confirms with its third, then unsubscribes
        let token = try await world.pendingSubscriber("anna@example.com")
        _ = try world.database.confirm(token, client: ClientContext(), now: world.clock.now)
        world.clock.advance(by: 60)
        _ = try world.database.unsubscribe(try world.token("unsubscribe", sentTo: "anna@example.com"), now: world.clock.now)
        // When it signs up again, day after day
        var outcomes: [SignupOutcome] = []
        for _ in 0..<4 {
            world.clock.advance(by: AppDatabase.confirmationInterval + 1)
            outcomes.append(try await world.signUp("anna@example.com"))
        }
        // Then it gets three confirmations since it confirmed, as any address does
        #expect(outcomes == [.confirmationQueued, .confirmationQueued, .confirmationQueued, .throttled])
    }

    @Test("Forgetting an address erases the counts kept of its purged signups")
    func forgetErasesPurgedCounts() async throws {
        // Given an address purged after its three unanswered confirmations, and another one
        let world = try await TestWorld.make()
        for _ in 0..<3 {
            try await world.signUp("anna@example.com")
            try await world.signUp("boris@example.com")
            try await world.deliverAll()
            world.clock.advance(by: AppDatabase.confirmationInterval + 1)
        }
        world.clock.advance(by: AppDatabase.unconfirmedRetention)
        #expect(try world.database.purgeUnconfirmed(now: world.clock.now).signups == 2)
        // When the address is forgotten
        #expect(try world.database.forget(email: " Anna@Example.com") == .init(subscriptions: 1, logCleared: true))
        // Then its count is gone, the other's stays, and it may sign up as a new address
        #expect(try await world.database.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM purged_confirmations") } == 1)
        #expect(try await world.signUp("anna@example.com") == .confirmationQueued)
        #expect(try await world.signUp("boris@example.com") == .throttled)
    }

    @Test("A signup runs the same statements whatever the address's state: new, pending, throttled, confirmed, unsubscribed, bounced")
    func signupDoesTheSameWorkInEveryState() async throws {
        let statements = NIOLockedValueBox<[String]>([])
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.prepareDatabase { db in
            db.trace(options: .statement) { event in
                if case .statement(let statement) = event { statements.withLockedValue { $0.append(statement.sql) } }
            }
        }
        let database = try AppDatabase(DatabaseQueue(configuration: configuration))
        let clock = TestClock()
        func signUp(_ address: String) async throws -> (SignupOutcome, [String]) {
            statements.withLockedValue { $0 = [] }
            let outcome = try await database.subscribeDurably(
                email: try EmailAddress(address), courseId: 1, language: .ru, client: ClientContext(ip: "192.0.2.1"), now: clock.now)
            return (outcome, statements.withLockedValue { $0 })
        }
        func setStatus(_ status: String, of address: String) async throws {
            try await database.writer.write { db in
                try db.execute(
                    sql: "UPDATE subscriber SET status = ?, confirmedAt = ?, bouncedAt = ? WHERE email = ?",
                    arguments: [status, status == "pending" ? nil : clock.now, status == "bounced" ? clock.now : nil, address])
            }
        }
        let (new, work) = try await signUp("anna@example.com")
        #expect(new == .confirmationQueued)
        #expect(work.contains { $0.hasPrefix("INSERT INTO subscriber") })
        let (throttled, throttledWork) = try await signUp("anna@example.com")
        #expect(throttled == .throttled)
        clock.advance(by: AppDatabase.confirmationInterval + 1)
        let (again, againWork) = try await signUp("anna@example.com")
        #expect(again == .confirmationQueued)
        try await setStatus("confirmed", of: "anna@example.com")
        let (confirmed, confirmedWork) = try await signUp("anna@example.com")
        #expect(confirmed == .alreadyConfirmed)
        try await setStatus("unsubscribed", of: "anna@example.com")
        clock.advance(by: 1)
        let (unsubscribed, unsubscribedWork) = try await signUp("anna@example.com")
        #expect(unsubscribed == .confirmationQueued)
        try await setStatus("bounced", of: "anna@example.com")
        let (bounced, bouncedWork) = try await signUp("anna@example.com")
        #expect(bounced == .suppressed)
        for other in [throttledWork, againWork, confirmedWork, unsubscribedWork, bouncedWork] {
            #expect(other == work)
        }
    }

    @Test("The consent record keeps every event: each signup, confirmation and unsubscription, none overwritten")
    func consentRecordKeepsEveryEvent() async throws {
        let world = try await TestWorld.make()
        let first = ClientContext(source: "https://school.example/a", ip: "192.0.2.1", userAgent: "First")
        _ = try await world.database.subscribeDurably(
            email: try EmailAddress("anna@example.com"), courseId: 1, language: .ru, client: first, now: world.clock.now)
        try await world.deliverAll()
        let token = try world.token("confirm", sentTo: "anna@example.com")
        _ = try world.database.confirm(token, client: ClientContext(ip: "192.0.2.2", userAgent: "Second"), now: world.clock.now)
        _ = try world.database.unsubscribe(try world.token("unsubscribe", sentTo: "anna@example.com"), now: world.clock.now)
        world.clock.advance(by: AppDatabase.confirmationInterval)
        let second = ClientContext(source: "https://school.example/b", ip: "192.0.2.3", userAgent: "Third")
        _ = try await world.database.subscribeDurably(
            email: try EmailAddress("anna@example.com"), courseId: 1, language: .ru, client: second, now: world.clock.now)

        let events = try world.database.consentEvents(email: "anna@example.com")
        #expect(events.map(\.kind) == [.signup, .confirm, .unsubscribe, .signup])
        #expect(events.map(\.ip) == ["192.0.2.1", "192.0.2.2", nil, "192.0.2.3"])
        #expect(events[0].source == "https://school.example/a")
        #expect(events[3].source == "https://school.example/b")
    }

    @Test("A confirmation link expires after 7 days")
    func confirmationTokenExpires() async throws {
        let world = try await TestWorld.make()
        try await world.signUp("anna@example.com")
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
        try await world.signUp("anna@example.com")
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
        _ = try await world.database.open(
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
        try await world.signUp("boris@example.com")
        #expect(try world.database.forget(email: "ANNA@example.com ") == .init(subscriptions: 1, logCleared: true))
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
        try await world.signUp("anna@example.com")
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
