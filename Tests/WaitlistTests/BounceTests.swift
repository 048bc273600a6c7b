import Foundation
import GRDB
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

@Suite("Bounce tags and reports")
struct BounceTests {
    private let address = BounceAddress("bounces@school.example")!
    private let key = Data(repeating: 7, count: 32)

    @Test("A tag names its message, survives a relay lower- or upper-casing it, and is made of local-part characters")
    func tagRoundTrips() throws {
        let tags = BounceTags(address: address, key: key)
        let tag = tags.tag(outboxId: 4711)
        #expect(tag.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") })
        #expect(tags.outboxId(fromTag: tag) == 4711)
        #expect(tags.outboxId(fromTag: tag.uppercased()) == 4711)
        let sender = tags.envelopeSender(outboxId: 4711)
        #expect(sender == "bounces+\(tag)@school.example")
        #expect(EmailAddress.isValidSender(sender))
        #expect(address.tag(in: sender.uppercased()) == tag)
        #expect(address.tag(in: "someone+\(tag)@school.example") == nil)
    }

    @Test("A tag with another message's number, another key's signature or a changed letter is refused")
    func forgedTagsAreRefused() {
        let tags = BounceTags(address: address, key: key)
        let tag = tags.tag(outboxId: 12)
        let signature = tag.split(separator: "-")[1]
        #expect(tags.outboxId(fromTag: "13-\(signature)") == nil)
        #expect(tags.outboxId(fromTag: BounceTags(address: address, key: Data(repeating: 8, count: 32)).tag(outboxId: 12)) == nil)
        var changed = Array(tag)
        changed[changed.count - 1] = changed.last == "a" ? "b" : "a"
        #expect(tags.outboxId(fromTag: String(changed)) == nil)
        #expect(tags.outboxId(fromTag: "12") == nil)
        #expect(tags.outboxId(fromTag: "") == nil)
    }

    @Test("WAITLIST_BOUNCE_ADDRESS is read, and one with a + or no @ is refused with a sentence")
    func bounceAddressSetting() throws {
        #expect(try Settings(environment: [:]).bounceAddress == nil)
        #expect(try Settings(environment: ["WAITLIST_BOUNCE_ADDRESS": "bounces@school.example"]).bounceAddress == address)
        for bad in ["bounces+x@school.example", "bounces", "a b@school.example"] {
            #expect(throws: SettingsError.self) { try Settings(environment: ["WAITLIST_BOUNCE_ADDRESS": bad]) }
        }
    }

    @Test("A Postfix DSN with Action: failed and a 5.x.x status is a permanent failure, its diagnostic without addresses")
    func dsnFailure() throws {
        let report = try BounceReport(BounceMail.dsn(tag: "1-abc"))
        #expect(
            report.verdict
                == .permanent(diagnostic: "550 5.1.1 <address> Recipient address rejected: User unknown in virtual mailbox table"))
        #expect(report.recipientAddresses.first == "bounces+1-abc@school.example")
    }

    @Test("A DSN of a delay or of a 4.x.x failure is a delay")
    func dsnDelay() throws {
        let delayed = try BounceReport(
            BounceMail.dsn(tag: "1-abc", action: "delayed", status: "4.4.1", diagnostic: "X-Postfix; connect timed out"))
        #expect(delayed.verdict == .delayed(diagnostic: "connect timed out"))
        let failed4 = try BounceReport(
            BounceMail.dsn(tag: "1-abc", action: "failed", status: "4.2.2", diagnostic: "smtp; 452 4.2.2 Mailbox full"))
        #expect(failed4.verdict == .delayed(diagnostic: "452 4.2.2 Mailbox full"))
    }

    @Test("A plain bounce quoting a 5xx reply is permanent, one quoting 4xx a delay; an out-of-office note quoting numbers is neither")
    func plainBounces() throws {
        #expect(
            try BounceReport(BounceMail.plain(tag: "1-abc")).verdict
                == .permanent(diagnostic: "550 5.1.1 The email account that you tried to reach does not exist."))
        #expect(
            try BounceReport(BounceMail.plain(tag: "1-abc", reply: "421 4.7.0 Try again later, closing connection.")).verdict
                == .delayed(diagnostic: "421 4.7.0 Try again later, closing connection."))
        let vacation = Array(
            "From: Anna <anna@example.com>\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\nCall: 550 5.1.1 is my extension, back on Monday.\r\n"
                .utf8)
        #expect(try BounceReport(vacation).verdict == .other)
    }

    @Test("Input without a header block is not a mail; a Postfix From line before the headers is allowed")
    func notAMail() throws {
        for input in ["", "hello world\n", "\n\nSubject: late\n", ": no name\n"] {
            #expect(throws: BounceReport.NotAMail.self) { try BounceReport(Array(input.utf8)) }
        }
        #expect(throws: BounceReport.NotAMail.self) { try BounceReport([0xFF, 0xFE, 0x00, 0x01]) }
        let withFromLine = Array("From MAILER-DAEMON  Tue Dec  1 12:00:00 2026\n".utf8) + BounceMail.dsn(tag: "1-abc")
        #expect(try BounceReport(withFromLine).verdict != .other)
    }

    @Test("A permanent late bounce marks the subscriber bounced, keeps the reply and cancels its queued mail; openings skip it")
    func lateBounceMarksBounced() async throws {
        // Given two confirmed subscribers who got the announcement
        let world = try await TestWorld.make()
        try await world.confirmedSubscriber("anna@example.com")
        try await world.confirmedSubscriber("boris@example.com")
        let course = try world.course.id!
        _ = try await world.database.open(
            courseId: course, date: "2027-03-15", enrolURL: "https://school.example/enrol", now: world.clock.now)
        try await world.deliverAll()
        let annaId = try announcementId(of: "anna@example.com", in: world.database)
        // When a DSN comes back for anna's announcement
        let outcome = try world.database.recordLateBounce(
            outboxId: annaId, verdict: try BounceReport(BounceMail.dsn(tag: "x")).verdict, now: world.clock.now)
        // Then anna is bounced with the reply, and the next opening mails only boris
        #expect(outcome == .bounced(email: "anna@example.com"))
        var bounced: [ConsentRecord] = []
        try world.database.forEachSubscriber(courseId: nil, status: .bounced) { bounced.append($0) }
        #expect(bounced.map(\.email) == ["anna@example.com"])
        #expect(bounced.first?.bounceReply?.hasPrefix("550 5.1.1 <address> Recipient address rejected") == true)
        #expect(bounced.first?.events.last?.kind == .bounce)
        #expect(
            try world.database.recordLateBounce(outboxId: annaId, verdict: .permanent(diagnostic: "550"), now: world.clock.now)
                == .alreadyStopped)
        _ = try world.database.close(courseId: course, now: world.clock.now)
        let before = world.transport.messages.count
        _ = try await world.database.open(
            courseId: course, date: "2027-09-01", enrolURL: "https://school.example/enrol", now: world.clock.now)
        try await world.deliverAll()
        #expect(world.transport.messages.dropFirst(before).map(\.to.address) == ["boris@example.com"])
    }

    @Test("A delay only counts; a report naming no failure and an unknown message change nothing")
    func delaysOnlyCount() async throws {
        let world = try await TestWorld.make()
        try await world.confirmedSubscriber("anna@example.com")
        let id = try announcementOrConfirmationId(of: "anna@example.com", in: world.database)
        #expect(try world.database.recordLateBounce(outboxId: id, verdict: .delayed(diagnostic: "4.4.1")) == .delayCounted(1))
        #expect(try world.database.recordLateBounce(outboxId: id, verdict: .delayed(diagnostic: "4.4.1")) == .delayCounted(2))
        #expect(try world.database.recordLateBounce(outboxId: id, verdict: .other) == .ignored)
        #expect(try world.database.recordLateBounce(outboxId: 999_999, verdict: .permanent(diagnostic: "550")) == .unknownMessage)
        #expect(try world.database.status(courseId: 1).confirmed == 1)
        #expect(try world.database.status(courseId: 1).bounced == 0)
    }

    @Test("A refusal at RCPT TO keeps its reply with the bounced subscriber too, and taking it back clears it")
    func rcptRefusalKeepsReply() async throws {
        // Given a relay that refuses anna's address for good
        let world = try await TestWorld.make()
        world.transport.refuse(
            ["anna@example.com"], with: .permanent("The relay refused a recipient: 550 5.1.1 <anna@example.com> no such user."))
        try await world.signUp("anna@example.com")
        // When her confirmation is sent
        try await world.deliverAll()
        // Then she is bounced, with the reply and without her address
        var bounced: [ConsentRecord] = []
        try world.database.forEachSubscriber(courseId: nil, status: .bounced) { bounced.append($0) }
        #expect(bounced.map(\.bounceReply) == ["The relay refused a recipient: 550 5.1.1 <address> no such user."])
        let id = try announcementOrConfirmationId(of: "anna@example.com", in: world.database)
        #expect(try world.database.revertRefusals(outboxIds: [id]) == 1)
        var all: [ConsentRecord] = []
        try world.database.forEachSubscriber(courseId: nil, status: nil) { all.append($0) }
        #expect(all.map(\.status) == [.pending])
        #expect(all.map(\.bounceReply) == [nil])
    }

    /// The outbox row of the announcement to `email`.
    private func announcementId(of email: String, in database: AppDatabase) throws -> Int64 {
        try #require(
            try database.writer.read { db in
                try Int64.fetchOne(
                    db,
                    sql:
                        "SELECT o.id FROM outbox o JOIN subscriber s ON s.id = o.subscriberId WHERE s.email = ? AND o.kind = 'announcement'",
                    arguments: [email])
            })
    }

    /// The latest outbox row of mail to `email`, whatever its kind.
    private func announcementOrConfirmationId(of email: String, in database: AppDatabase) throws -> Int64 {
        try #require(
            try database.writer.read { db in
                try Int64.fetchOne(
                    db, sql: "SELECT max(o.id) FROM outbox o JOIN subscriber s ON s.id = o.subscriberId WHERE s.email = ?",
                    arguments: [email])
            })
    }
}
