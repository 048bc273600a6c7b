import Foundation
import GRDB
import NIOConcurrencyHelpers
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

@Suite("Opening enrolment and delivering the outbox")
struct OutboxTests {
    private let enrol = "https://school.example/enrol"

    /// A database where anna@example.com signed up at `moment`: one confirmation queued.
    private func databaseWithOneSignup(at moment: Date) async throws -> AppDatabase {
        let database = try AppDatabase.inMemory()
        _ = try await database.subscribeDurably(
            email: try EmailAddress("anna@example.com"), courseId: 1, language: .ru, client: ClientContext(), now: moment)
        return database
    }

    @Test("Open queues one announcement per confirmed subscriber, and nobody else")
    func openQueuesConfirmedOnly() async throws {
        // Given two confirmed, one pending and one unsubscribed address
        let world = try await TestWorld.make()
        try await world.confirmedSubscriber("anna@example.com")
        try await world.confirmedSubscriber("boris@example.com", language: .en)
        try await world.confirmedSubscriber("left@example.com")
        _ = try world.database.unsubscribe(try world.token("unsubscribe", sentTo: "left@example.com"))
        try await world.signUp("pending@example.com")
        try await world.deliverAll()
        let before = world.transport.messages.count
        // When enrolment opens
        let result = try await world.database.open(
            courseId: try world.course.id!, date: "2027-03-15", enrolURL: enrol, now: world.clock.now)
        try await world.deliverAll()
        // Then exactly the confirmed ones get the announcement
        #expect(result.newlyQueued == 2)
        let announcements = world.transport.messages.dropFirst(before)
        #expect(Set(announcements.map(\.to.address)) == ["anna@example.com", "boris@example.com"])
        #expect(announcements.count == 2)
    }

    @Test("Running open again for the same date mails nobody twice")
    func openAgainMailsNobodyTwice() async throws {
        let world = try await TestWorld.make()
        for name in ["anna", "boris", "vera"] { try await world.confirmedSubscriber("\(name)@example.com") }
        let courseId = try world.course.id!
        let first = try await world.database.open(courseId: courseId, date: "2027-03-15", enrolURL: enrol, now: world.clock.now)
        try await world.deliverAll()
        let count = world.transport.messages.count
        let second = try await world.database.open(courseId: courseId, date: "2027-03-15", enrolURL: enrol, now: world.clock.now)
        try await world.deliverAll()
        #expect(first.newlyQueued == 3)
        #expect(second.newlyQueued == 0)
        #expect(!second.isNew)
        #expect(world.transport.messages.count == count)
    }

    @Test("Open for another date while open is refused")
    func openOtherDateWhileOpenIsRefused() async throws {
        let world = try await TestWorld.make()
        let courseId = try world.course.id!
        _ = try await world.database.open(courseId: courseId, date: "2027-03-15", enrolURL: enrol)
        await #expect(throws: WaitlistError.self) { try await world.database.open(courseId: courseId, date: "2027-04-01", enrolURL: enrol) }
    }

    @Test("After close, an open for a new date mails every confirmed, still subscribed address once more")
    func reopenAfterClose() async throws {
        let world = try await TestWorld.make()
        try await world.confirmedSubscriber("anna@example.com")
        try await world.confirmedSubscriber("boris@example.com")
        let courseId = try world.course.id!
        _ = try await world.database.open(courseId: courseId, date: "2027-03-15", enrolURL: enrol, now: world.clock.now)
        try await world.deliverAll()
        _ = try world.database.unsubscribe(try world.token("unsubscribe", sentTo: "boris@example.com"))
        #expect(try world.database.close(courseId: courseId) != nil)
        #expect(try world.database.currentOpening(courseId: courseId) == nil)
        let count = world.transport.messages.count
        let reopened = try await world.database.open(courseId: courseId, date: "2027-09-01", enrolURL: enrol, now: world.clock.now)
        try await world.deliverAll()
        #expect(reopened.newlyQueued == 1)
        let new = world.transport.messages.dropFirst(count)
        #expect(new.map(\.to.address) == ["anna@example.com"])
        #expect(new.first?.text.contains("1 сентября 2027") == true)
    }

    @Test("Close cancels announcements not yet sent")
    func closeCancelsQueued() async throws {
        let world = try await TestWorld.make()
        try await world.confirmedSubscriber("anna@example.com")
        let courseId = try world.course.id!
        _ = try await world.database.open(courseId: courseId, date: "2027-03-15", enrolURL: enrol, now: world.clock.now)
        try world.database.close(courseId: courseId)
        let count = world.transport.messages.count
        try await world.deliverAll()
        #expect(world.transport.messages.count == count)
        #expect(try world.database.status(courseId: courseId).mailQueued == 0)
    }

    @Test("Someone who confirms while enrolment is open gets the announcement at once")
    func confirmWhileOpenQueuesAnnouncement() async throws {
        let world = try await TestWorld.make()
        _ = try await world.database.open(courseId: try world.course.id!, date: "2027-03-15", enrolURL: enrol, now: world.clock.now)
        try await world.confirmedSubscriber("late@example.com")
        try await world.deliverAll()
        let last = try #require(world.lastMessage(to: "late@example.com"))
        #expect(last.text.contains(enrol))
    }

    @Test("The announcement has the date, the enrolment link, a visible unsubscribe link and the RFC 8058 headers")
    func announcementContent() async throws {
        let world = try await TestWorld.make()
        try await world.confirmedSubscriber("anna@example.com")
        try await world.confirmedSubscriber("boris@example.com", language: .en)
        _ = try await world.database.open(courseId: try world.course.id!, date: "2027-03-15", enrolURL: enrol, now: world.clock.now)
        try await world.deliverAll()
        for (address, date) in [("anna@example.com", "15 марта 2027"), ("boris@example.com", "15 March 2027")] {
            let message = try #require(world.lastMessage(to: address))
            let unsubscribe = try #require(world.linkToken("unsubscribe", in: message))
            let link = "\(world.settings.baseURL)/unsubscribe/\(unsubscribe.value)"
            #expect(message.text.contains(date))
            #expect(message.text.contains(enrol))
            #expect(message.text.contains(link))
            #expect(message.html?.contains(#"href="\#(link)""#) == true)
            #expect(message.html?.contains(enrol) == true)
            let headers = Dictionary(uniqueKeysWithValues: message.extraHeaders.map { ($0.name, $0.value) })
            #expect(headers["List-Unsubscribe"] == "<\(link)>")
            #expect(headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click")
        }
        #expect(world.lastMessage(to: "anna@example.com")?.subject.contains("Открыта запись") == true)
        #expect(world.lastMessage(to: "boris@example.com")?.subject.contains("Enrolment is open") == true)
    }

    @Test("Each recipient's mail carries its own working links, whatever was rendered before")
    func eachMailHasItsOwnLinks() async throws {
        let world = try await TestWorld.make()
        for name in ["anna", "boris", "vera"] { try await world.confirmedSubscriber("\(name)@example.com") }
        _ = try await world.database.open(courseId: 1, date: "2027-03-15", enrolURL: enrol, now: world.clock.now)
        try await world.deliverAll()
        var tokens: Set<String> = []
        for name in ["anna", "boris", "vera"] {
            let message = try #require(world.lastMessage(to: "\(name)@example.com"))
            #expect(!message.text.contains("Slot") && message.html?.contains("Slot") == false)
            let token = try #require(world.linkToken("unsubscribe", in: message))
            #expect(message.html?.contains(token.value) == true)
            guard case .valid(let subscriber, _) = try world.database.lookUp(token, purpose: .unsubscribe) else {
                Issue.record("the link of \(name) does not work")
                continue
            }
            #expect(subscriber.email == "\(name)@example.com")
            tokens.insert(token.value)
        }
        #expect(tokens.count == 3)
    }

    @Test("The confirmation carries the confirm link under the base URL, in the subscriber's language")
    func confirmationContent() async throws {
        var world = try await TestWorld.make()
        world.settings.baseURL = "https://waitlist.example.org"
        try await world.signUp("anna@example.com")
        try await world.signUp("boris@example.com", language: .en)
        try await world.deliverAll()
        let russian = try #require(world.lastMessage(to: "anna@example.com"))
        #expect(russian.text.contains("https://waitlist.example.org/confirm/"))
        #expect(russian.subject.contains("Подтвердите подписку"))
        #expect(russian.text.contains("ничего не пришлём"))
        let english = try #require(world.lastMessage(to: "boris@example.com"))
        #expect(english.subject.hasPrefix("Please confirm"))
        #expect(world.linkToken("confirm", in: english) != nil)
    }

    // MARK: - Failures

    @Test("A transient failure is retried after the back-off, then delivered")
    func transientFailureIsRetried() async throws {
        let world = try await TestWorld.make()
        world.transport.failNext(.transient("451 try again later"))
        try await world.signUp("anna@example.com")
        let first = try await world.deliverAll()
        #expect(first.retried == 1)
        #expect(first.leftQueued == 1)
        #expect(world.transport.messages.isEmpty)
        let backlog = try world.database.backlog(now: world.clock.now)
        #expect(backlog.later == 1)
        #expect(backlog.nextAttemptAt == world.clock.now.addingTimeInterval(30))
        world.clock.advance(by: 31)
        let second = try await world.deliverAll()
        #expect(second.sent == 1)
        #expect(world.transport.messages.count == 1)
        #expect(try world.database.backlog(now: world.clock.now).isEmpty)
    }

    @Test("A permanent failure marks the subscriber bounced and is never retried")
    func permanentFailureBounces() async throws {
        let world = try await TestWorld.make()
        try await world.confirmedSubscriber("anna@example.com")
        world.transport.failNext(.permanent("550 no such user"))
        _ = try await world.database.open(courseId: try world.course.id!, date: "2027-03-15", enrolURL: enrol, now: world.clock.now)
        let summary = try await world.deliverAll()
        #expect(summary.failed == 1)
        world.clock.advance(by: 3600)
        try await world.deliverAll()
        let status = try world.database.status(courseId: try world.course.id!)
        #expect(status.bounced == 1)
        #expect(status.mailFailed == 1)
        #expect(status.mailQueued == 0)
        #expect(try await world.signUp("anna@example.com") == .suppressed)
    }

    @Test("A message still failing after three days is given up")
    func givesUpAfterThreeDays() async throws {
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let database = try await databaseWithOneSignup(at: start)
        var now = start
        var state = OutboxState.queued
        var attempts = 0
        while state == .queued, attempts < 1000 {
            let claimed = try database.claimAsSender(owner: "test", limit: 1, now: now)
            if let delivery = claimed.first {
                attempts += 1
                state = try database.markFailed(id: delivery.outboxId, error: .transient("connection refused"), owner: "test", now: now)
            }
            now = now.addingTimeInterval(60)
        }
        #expect(state == .failed)
        #expect(now.timeIntervalSince(start) >= RetryPolicy.giveUpAfter)
        #expect(now.timeIntervalSince(start) < RetryPolicy.giveUpAfter + 16 * 60)
    }

    // MARK: - Unsubscribe links

    @Test("A retried mail gets a new link, and the earlier attempt's link, which may have arrived, keeps working")
    func earlierAttemptsLinkKeepsWorking() async throws {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let database = try await databaseWithOneSignup(at: now)
        let first = try #require(try database.claimAsSender(owner: "test", limit: 1, now: now).first)
        // The relay timed out after the message's end: it may or may not have taken it.
        try database.markFailed(id: first.outboxId, error: .transient("timed out"), owner: "test", now: now)
        let later = now.addingTimeInterval(RetryPolicy.firstDelay + 1)
        let second = try #require(try database.claimAsSender(owner: "test", limit: 1, now: later).first)
        #expect(second.outboxId == first.outboxId)
        #expect(second.unsubscribeToken != first.unsubscribeToken)
        for token in [first.unsubscribeToken, second.unsubscribeToken] {
            #expect(token.keyedMessageId == first.outboxId)
            guard case .valid(let subscriber, _) = try database.lookUp(token, purpose: .unsubscribe, now: later) else {
                Issue.record("\(token) does not work")
                continue
            }
            #expect(subscriber.email == "anna@example.com")
        }
        // Neither is a confirmation token, and only the real ones work.
        #expect(try database.lookUp(second.unsubscribeToken, purpose: .confirm, now: later) == .unknown)
        #expect(try database.lookUp(Token.generate(keyedBy: first.outboxId), purpose: .unsubscribe, now: later) == .unknown)
        #expect(try database.lookUp(Token.generate(keyedBy: first.outboxId + 1), purpose: .unsubscribe, now: later) == .unknown)
        #expect(try database.lookUp(Token.generate(), purpose: .unsubscribe, now: later) == .unknown)
        guard case .valid(let left, _) = try database.unsubscribe(first.unsubscribeToken, now: later) else {
            Issue.record("the earlier link does not unsubscribe")
            return
        }
        #expect(left.status == .unsubscribed)
    }

    @Test("Links mailed before the database was upgraded keep working after it")
    func linksFromBeforeTheUpgradeKeepWorking() async throws {
        // A database as the previous release left it: an unsubscribe token in the token table.
        let queue = try DatabaseQueue()
        try AppDatabase.migrator.migrate(queue, upTo: "v2: secrets")
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let mailed = Token.generate()
        try await queue.write { db in
            try db.execute(
                sql: """
                    INSERT INTO subscriber (courseId, email, emailKey, language, status, createdAt, confirmedAt)
                    VALUES (1, 'anna@example.com', 'anna@example.com', 'ru', 'confirmed', ?, ?)
                    """, arguments: [now, now])
            try db.execute(
                sql: "INSERT INTO token (subscriberId, purpose, hash, createdAt) VALUES (?, 'unsubscribe', ?, ?)",
                arguments: [db.lastInsertedRowID, mailed.hash, now])
        }
        let database = try AppDatabase(queue)
        guard case .valid(let subscriber, _) = try database.lookUp(mailed, purpose: .unsubscribe, now: now) else {
            Issue.record("the old link no longer works")
            return
        }
        #expect(subscriber.email == "anna@example.com")
        // And new mail to the same subscriber carries a keyed link that works too.
        _ = try await database.open(courseId: 1, date: "2027-03-15", enrolURL: enrol, now: now)
        let announcement = try #require(try database.claimAsSender(owner: "test", limit: 1, now: now).first)
        #expect(try database.lookUp(announcement.unsubscribeToken, purpose: .unsubscribe, now: now) != .unknown)
    }

    // MARK: - Marks

    // A lane that did not hold the message back keeps resending the unrecorded ones while the
    // test's clock stands still: the time limit makes that a failure rather than a hang. It is
    // generous because the test shares two threads with the live tests, which can keep it waiting.
    @Test(
        "While a record cannot be written, the lane's next message is held back before its end, so one message at most is unrecorded",
        .timeLimit(.minutes(3)))
    func messageIsHeldBackWhileTheMarkBeforeItFails() async throws {
        let world = try await TestWorld.make()
        for address in ["anna@example.com", "boris@example.com", "vera@example.com"] {
            try await world.confirmedSubscriber(address)
        }
        _ = try await world.database.open(courseId: 1, date: "2027-03-15", enrolURL: enrol, now: world.clock.now)
        // The database refuses marks (a full disk, say) until the first message is held back.
        try await world.database.writer.write { db in
            try db.execute(
                sql:
                    "CREATE TRIGGER refuse_marks BEFORE INSERT ON outbox_sent BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        }
        let database = world.database
        let transport = HookedTransport {
            try? database.writer.write { db in try db.execute(sql: "DROP TRIGGER refuse_marks") }
        }
        let sender = OutboxSender(
            store: world.database, transport: transport, composer: world.composer, concurrency: 1, logger: .init(label: "test"),
            now: world.clock.function)
        let first = try await sender.run(mode: .drain)

        // The first message went, its record failed; the second was held back at its end; the third
        // went once the records worked again; the first, never recorded, went once more, but only
        // once the lanes that had it in hand were done (the next time the sender took the role).
        #expect(
            transport.events == [
                .delivered("anna@example.com"), .heldBack("boris@example.com"), .delivered("vera@example.com"),
                .delivered("anna@example.com"),
            ])
        #expect(first.sent == 3)
        #expect(first.retried == 1)
        world.clock.advance(by: RetryPolicy.firstDelay)
        #expect(try await sender.run(mode: .drain).sent == 1)
        #expect(transport.events.last == .delivered("boris@example.com"))
        #expect(try world.database.announcementCounts(openingId: 1) == [.sent: 3])
    }

    @Test("A message recorded sent by a sender that died is never claimed again; the next claim marks it sent")
    func recordedMessageIsNotClaimedAgain() async throws {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let database = try await databaseWithOneSignup(at: now)
        let claimed = try #require(try database.claimAsSender(owner: "dead", limit: 10, now: now).first)
        try database.recordSent(ids: [claimed.outboxId], now: now.addingTimeInterval(1))

        // Long after the dead sender's lease ran out.
        #expect(try database.claimAsSender(owner: "alive", limit: 10, now: now.addingTimeInterval(3600)).isEmpty)
        let row = try await database.writer.read { db in try OutboxMessage.fetchOne(db, key: claimed.outboxId) }
        #expect(row?.state == .sent)
        #expect(row?.sentAt == now.addingTimeInterval(1))
        #expect(try await database.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox_sent") } == 0)
    }

    @Test("Closing enrolment cancels what is queued, but an announcement recorded sent stays sent")
    func closingKeepsRecordedAnnouncementsSent() async throws {
        let world = try await TestWorld.make()
        for address in ["anna@example.com", "boris@example.com"] {
            try await world.confirmedSubscriber(address)
        }
        let opening = try await world.database.open(courseId: 1, date: "2027-03-15", enrolURL: enrol, now: world.clock.now)
        let claimed = try world.database.claimAsSender(owner: "lane", limit: 1, now: world.clock.now)
        try world.database.recordSent(ids: claimed.map(\.outboxId), now: world.clock.now)

        _ = try world.database.close(courseId: 1, now: world.clock.now)

        #expect(try world.database.announcementCounts(openingId: try #require(opening.opening.id)) == [.sent: 1, .cancelled: 1])
    }

    @Test("An unsubscribe cancels the subscriber's queued mail, but not a message recorded sent")
    func unsubscribingKeepsRecordedMailSent() async throws {
        let world = try await TestWorld.make()
        try await world.confirmedSubscriber("anna@example.com")
        let opening = try await world.database.open(courseId: 1, date: "2027-03-15", enrolURL: enrol, now: world.clock.now)
        let claimed = try #require(try world.database.claimAsSender(owner: "lane", limit: 1, now: world.clock.now).first)
        try world.database.recordSent(ids: [claimed.outboxId], now: world.clock.now)

        _ = try world.database.unsubscribe(claimed.unsubscribeToken, now: world.clock.now)

        #expect(try world.database.announcementCounts(openingId: try #require(opening.opening.id)) == [.sent: 1])
    }

    // MARK: - The sending role

    @Test("The sending role left by a sender that died is taken over once its lease runs out, and not before")
    func expiredRoleIsTakenOver() async throws {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let database = try await databaseWithOneSignup(at: now)
        let first = try database.claimAsSender(owner: "dead", limit: 10, now: now)
        #expect(first.count == 1)
        #expect(try database.takeSendingRole(owner: "alive", lease: 60, now: now.addingTimeInterval(59))?.owner == "dead")
        #expect(throws: SendingRoleLost.self) { try database.claimDue(owner: "alive", limit: 10, now: now.addingTimeInterval(59)) }
        let second = try database.claimAsSender(owner: "alive", limit: 10, now: now.addingTimeInterval(61))
        #expect(second.map(\.outboxId) == first.map(\.outboxId))
        #expect(second.first?.attempt == 2)
        // The dead sender, back, can neither renew nor claim nor record a failure.
        #expect(try database.renewSendingRole(owner: "dead", lease: 60, now: now.addingTimeInterval(62)) == false)
        #expect(throws: SendingRoleLost.self) { try database.claimDue(owner: "dead", limit: 10, now: now.addingTimeInterval(62)) }
        #expect(throws: SendingRoleLost.self) {
            try database.markFailed(id: first[0].outboxId, error: .permanent("550"), owner: "dead", now: now.addingTimeInterval(62))
        }
    }

    @Test("Claims unsent at a stop are given back: no attempt counted, and the token made for them is dropped")
    func unsentClaimsAreGivenBack() async throws {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let database = try await databaseWithOneSignup(at: now)
        let claimed = try database.claimAsSender(owner: "me", limit: 10, now: now)
        try database.releaseClaims(ids: claimed.map(\.outboxId), owner: "me", now: now)
        let row = try database.writer.read { db in try Row.fetchOne(db, sql: "SELECT attempts, unsubscribeHash FROM outbox") }
        #expect(row?["attempts"] as Int? == 0)
        #expect(row?["unsubscribeHash"] as Data? == nil)
        // Not once the role is another sender's.
        let again = try database.claimAsSender(owner: "me", limit: 10, now: now)
        try database.releaseSendingRole(owner: "me")
        _ = try database.takeSendingRole(owner: "other", lease: 60, now: now)
        #expect(throws: SendingRoleLost.self) { try database.releaseClaims(ids: again.map(\.outboxId), owner: "me", now: now) }
    }

    @Test("Two senders on one database file never send the same message twice")
    func twoSendersNoDuplicates() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("waitlist-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("waitlist.sqlite").path
        let first = try AppDatabase.open(path: path)
        let second = try AppDatabase.open(path: path)
        let world = try await TestWorld.make()
        for index in 0..<300 {
            _ = try await first.subscribeDurably(
                email: try EmailAddress("person\(index)@example.com"), courseId: 1, language: .ru, client: ClientContext())
        }
        let transport = RecordingTransport()
        let senders = [first, second].map {
            OutboxSender(
                store: $0, transport: transport, composer: world.composer, concurrency: 3, logger: .init(label: "test"), batchSize: 4)
        }
        async let a = senders[0].run(mode: .drain)
        async let b = senders[1].run(mode: .drain)
        let (summaryA, summaryB) = try await (a, b)
        let recipients = transport.messages.map(\.to.address)
        #expect(recipients.count == 300)
        #expect(Set(recipients).count == 300)
        #expect(summaryA.sent + summaryB.sent == 300)
        #expect(try first.backlog().isEmpty)
    }

    /// 40 confirmations queued, and a sender of two lanes and batches of 10 draining them through a
    /// transport that lets `passing` messages through and holds the rest until it is opened.
    private func startGatedSender(passing: Int) async throws -> (AppDatabase, GatedTransport, Task<OutboxSender.Summary, any Error>) {
        let database = try AppDatabase.inMemory()
        for index in 0..<40 {
            _ = try await database.subscribeDurably(
                email: try EmailAddress("person\(index)@example.com"), courseId: 1, language: .ru, client: ClientContext())
        }
        let world = try await TestWorld.make()
        let transport = GatedTransport(passing: passing)
        let sender = OutboxSender(
            store: database, transport: transport, composer: world.composer, concurrency: 2, logger: .init(label: "test"), batchSize: 10)
        return (database, transport, Task { try await sender.run(mode: .drain) })
    }

    @Test("The next batch is claimed while the lanes still send the current one, not after it runs out")
    func nextBatchIsClaimedAhead() async throws {
        // The eight first messages go through, then both lanes are held with the batch's last two
        // messages in hand, and nothing of the batch is waiting.
        let (database, transport, run) = try await startGatedSender(passing: 8)
        let claimedWhileHeld = await onOwnThread { () -> Int in
            transport.waitUntilHolding(2)
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(10)
            var claimed = 0
            repeat {
                claimed =
                    (try? database.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE attempts > 0") }) ?? 0
                if claimed >= 20 { break }
                usleep(10_000)
            } while clock.now < deadline
            return claimed
        }
        transport.open()
        let summary = try await run.value
        #expect(claimedWhileHeld == 20, "claimed while the lanes were held: \(claimedWhileHeld)")
        #expect(summary.sent == 40)
        #expect(Set(transport.recipients).count == 40 && transport.recipients.count == 40)
    }

    @Test("A claim ahead that fails leaves the lanes the rest of their batch; the claim when they run out reports the failure")
    func failedClaimAheadKeepsTheBatch() async throws {
        // One message goes through, the lanes are held with the next two (each lane has taken the
        // message after its own: five of the batch, and no claim ahead yet), and from then on every
        // claim fails (the claim's UPDATE is refused).
        let (database, transport, run) = try await startGatedSender(passing: 1)
        await onOwnThread { transport.waitUntilHolding(2) }
        try await database.writer.write { db in
            try db.execute(
                sql: "CREATE TRIGGER refuseClaims BEFORE UPDATE OF attempts ON outbox BEGIN SELECT RAISE(ABORT, 'no claims'); END")
        }
        transport.open()
        await #expect(throws: WaitlistError.self) { try await run.value }
        #expect(transport.recipients.count == 10, "\(transport.recipients.count) of the first batch sent")
        #expect(Set(transport.recipients).count == transport.recipients.count)
    }
}

/// A transport whose sessions take rendered messages and call the hook before their end as the
/// SMTP session does, and note what became of each message.
private final class HookedTransport: MailTransport, Sendable {
    enum Event: Equatable {
        case delivered(String)
        case heldBack(String)
    }

    private let state = NIOLockedValueBox<(events: [Event], heldBack: Int)>(([], 0))
    /// Called once, the first time a message is held back.
    private let onFirstHoldBack: @Sendable () -> Void

    init(onFirstHoldBack: @escaping @Sendable () -> Void) {
        self.onFirstHoldBack = onFirstHoldBack
    }

    var events: [Event] { state.withLockedValue { $0.events } }

    func makeSession() throws(DeliveryError) -> any MailSession {
        HookedSession(transport: self)
    }

    fileprivate func delivered(_ recipient: String) {
        state.withLockedValue { $0.events.append(.delivered(recipient)) }
    }

    fileprivate func heldBack(_ recipient: String) {
        let isFirst = state.withLockedValue { state in
            state.events.append(.heldBack(recipient))
            state.heldBack += 1
            return state.heldBack == 1
        }
        if isFirst { onFirstHoldBack() }
    }
}

private final class HookedSession: MailSession {
    let transport: HookedTransport
    private var begun: OutgoingMail?

    init(transport: HookedTransport) {
        self.transport = transport
    }

    func begin(_ mail: OutgoingMail, following: OutgoingMail?) throws(DeliveryError) {
        begun = mail
    }

    func finish() throws(DeliveryError) {
        if let mail = begun { transport.delivered(mail.recipient) }
        begun = nil
    }

    func abandon() {
        if let mail = begun { transport.heldBack(mail.recipient) }
        begun = nil
    }

    func close() {}
}

/// A transport that lets its first messages through and holds every later one until ``open()``.
private final class GatedTransport: MailTransport, Sendable {
    private let passing: Int
    private let condition = NSCondition()
    private nonisolated(unsafe) var started = 0
    private nonisolated(unsafe) var isOpen = false
    private nonisolated(unsafe) var delivered: [String] = []

    init(passing: Int) {
        self.passing = passing
    }

    var recipients: [String] { condition.withLock { delivered } }

    func makeSession() throws(DeliveryError) -> any MailSession {
        ForwardingSession(
            begin: { (mail) throws(DeliveryError) in self.hold(mail) },
            finish: { mail in self.condition.withLock { self.delivered.append(mail.recipient) } })
    }

    /// Waits until `count` messages are held.
    func waitUntilHolding(_ count: Int) {
        condition.withLock {
            while started < passing + count { condition.wait() }
        }
    }

    func open() {
        condition.withLock {
            isOpen = true
            condition.broadcast()
        }
    }

    /// Takes a message's first phase, holding it while the gate is shut.
    fileprivate func hold(_ mail: OutgoingMail) {
        condition.withLock {
            started += 1
            condition.broadcast()
            if started > passing {
                while !isOpen { condition.wait() }
            }
        }
    }
}
