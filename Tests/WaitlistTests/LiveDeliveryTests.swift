import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

/// The whole path over real SMTP: the service's outbox delivers through libcurl to an aiosmtpd
/// server started by the test, and the test reads what arrived.
@Suite("Live delivery through aiosmtpd")
struct LiveDeliveryTests {
    @Test("A signup's confirmation and the announcement arrive over SMTP with working links and the unsubscribe headers")
    func confirmationAndAnnouncementArrive() async throws {
        let server = try await SMTPTestServer.start()
        defer { server.stop() }
        var world = try await TestWorld.make()
        world.settings.baseURL = "https://waitlist.example.org"
        world.settings.mailFrom = Mailbox(displayName: "Школа дизайна", address: "school@example.org")
        let transport = SMTPTransport(configuration: try SMTPConfiguration(url: server.url), ehloName: "waitlist.example.org")
        let sender = OutboxSender(
            store: world.database, transport: transport, composer: world.composer, concurrency: 2, logger: .init(label: "test"),
            now: world.clock.function)

        // A visitor signs up through the API, and the worker delivers the confirmation.
        try await world.application().test(.router) { client async throws in
            let response = try await client.postJSON("/api/subscribe", #"{"email": "anna@example.com"}"#)
            #expect(response.status == .accepted)
        }
        #expect(try await sender.run(mode: .drain).sent == 1)
        let confirmation = try #require(try server.receivedMessages().first)
        #expect(confirmation.mailFrom == "school@example.org")
        #expect(confirmation.recipients == ["anna@example.com"])
        let confirmationText = RawMail(confirmation.data)
        #expect(confirmationText.header("Subject")?.hasPrefix("=?utf-8?") == true)
        #expect(confirmationText.header("Message-ID") != nil)
        #expect(confirmationText.header("Date") != nil)
        let confirmLink = try #require(confirmationText.link(after: "https://waitlist.example.org/confirm/"))

        // The subscriber clicks the link (GET shows a button) and presses it (POST).
        try await world.application().test(.router) { client async throws in
            #expect(try await client.get(confirmLink).status == .ok)
            #expect(try await client.post(confirmLink).status == .ok)
        }
        #expect(try world.database.status(courseId: 1).confirmed == 1)

        // Enrolment opens: the announcement arrives with the RFC 8058 headers.
        _ = try await world.database.open(courseId: 1, date: "2027-03-15", enrolURL: "https://school.example/enrol", now: world.clock.now)
        #expect(try await sender.run(mode: .drain).sent == 1)
        let received = try server.receivedMessages()
        #expect(received.count == 2)
        let announcement = RawMail(try #require(received.last).data)
        let unsubscribeLink = try #require(announcement.link(after: "https://waitlist.example.org/unsubscribe/"))
        #expect(announcement.header("List-Unsubscribe") == "<https://waitlist.example.org\(unsubscribeLink)>")
        #expect(announcement.header("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click")
        #expect(announcement.decodedBody.contains("15 марта 2027"))
        #expect(announcement.decodedBody.contains("https://school.example/enrol"))

        // The one-click POST a mail client sends unsubscribes.
        try await world.application().test(.router) { client async throws in
            #expect(try await client.postForm(unsubscribeLink, [("List-Unsubscribe", "One-Click")]).status == .ok)
        }
        #expect(try world.database.status(courseId: 1).unsubscribed == 1)
    }

    @Test("While the tokens cannot be stored nothing is sent; once they can, every mail goes out with links that work")
    func nothingGoesOutWhileTokensCannotBeStored() async throws {
        let server = try await SMTPTestServer.start()
        defer { server.stop() }
        let world = try await TestWorld.make()
        for address in ["anna@example.com", "boris@example.com", "vera@example.com"] {
            try await world.confirmedSubscriber(address)
        }
        _ = try await world.database.open(courseId: 1, date: "2027-03-15", enrolURL: "https://school.example/enrol", now: world.clock.now)
        let transport = SMTPTransport(configuration: try SMTPConfiguration(url: server.url), ehloName: "waitlist.test")
        let sender = OutboxSender(
            store: world.database, transport: transport, composer: world.composer, concurrency: 2, logger: .init(label: "test"),
            now: world.clock.function)
        let receivedBefore = server.receivedCount()

        // The database refuses the tokens' hashes (a full disk, say): no announcement may leave without its link's token.
        try await world.database.writer.write { db in
            try db.execute(
                sql: "CREATE TRIGGER refuse_tokens BEFORE UPDATE OF unsubscribeHash ON outbox BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        }
        await #expect(throws: WaitlistError.self) { try await sender.run(mode: .drain) }
        #expect(server.receivedCount() == receivedBefore)
        #expect(try world.database.announcementCounts(openingId: 1)[.queued] == 3)
        #expect(try world.database.backlog(now: world.clock.now).ready == 3, "a failed claim holds nothing")

        // The database recovers: every announcement goes, each with a link that works.
        try await world.database.writer.write { db in try db.execute(sql: "DROP TRIGGER refuse_tokens") }
        #expect(try await sender.run(mode: .drain).sent == 3)
        let announcements = try server.receivedMessages().dropFirst(receivedBefore)
        #expect(announcements.count == 3)
        for announcement in announcements {
            let link = try #require(RawMail(announcement.data).link(after: "\(world.settings.baseURL)/unsubscribe/"))
            let token = try #require(Token(link: String(link.split(separator: "/").last ?? "")))
            #expect(try world.database.lookUp(token, purpose: .unsubscribe, now: world.clock.now) != .unknown)
        }
    }

    @Test(
        "A lane sends each message's envelope with the end of the one before when its turn is due at once; with a rate to keep, it waits for its turn instead",
        arguments: [false, true])
    func aLanePipelinesTheNextEnvelopeUnlessItMustWait(rateLimited: Bool) async throws {
        let server = try await SMTPTestServer.start()
        defer { server.stop() }
        let world = try await TestWorld.make()
        let addresses = (1...5).map { "reader\($0)@example.com" }
        for address in addresses { try await world.confirmedSubscriber(address) }
        _ = try await world.database.open(courseId: 1, date: "2027-03-15", enrolURL: "https://school.example/enrol", now: world.clock.now)
        let before = server.receivedCount()
        let transport = SMTPTransport(configuration: try SMTPConfiguration(url: server.url), ehloName: "waitlist.test")
        let sender = OutboxSender(
            store: world.database, transport: transport, composer: world.composer, concurrency: 1, logger: .init(label: "test"),
            rate: rateLimited ? Rate(count: 4, per: .second) : nil, now: world.clock.function)
        #expect(try await sender.run(mode: .drain).sent == 5)
        let received = Array(try server.receivedMessages().dropFirst(before))
        #expect(received.flatMap(\.recipients).sorted() == addresses)
        #expect(Set(received.map(\.peer)).count == 1)
        #expect(
            received.map(\.nextEnvelopeAhead) == (rateLimited ? [false, false, false, false, false] : [true, true, true, true, false]))
        #expect(try world.database.announcementCounts(openingId: 1) == [.sent: 5])
    }

    @Test("waitlist open delivers every announcement through the SMTP relay and exits 0")
    func openCommandOverSMTP() async throws {
        let server = try await SMTPTestServer.start()
        defer { server.stop() }
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        let addresses = (1...40).map { "person\($0)@example.com" }
        try await cli.addConfirmed(addresses)
        let result = try cli.run(
            "open", "--date", "2027-03-15", "--url", "https://school.example/enrol", "--yes",
            extraEnvironment: ["WAITLIST_SMTP_URL": server.url])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("40/40 sent"))
        let received = try server.receivedMessages()
        #expect(received.count == 40)
        #expect(Set(received.flatMap(\.recipients)) == Set(addresses))
        #expect(cli.mailFiles().isEmpty)
        let again = try cli.run("open", "--date", "2027-03-15", "--yes", extraEnvironment: ["WAITLIST_SMTP_URL": server.url])
        #expect(again.status == 0)
        #expect(try server.receivedMessages().count == 40)
    }
}

/// A received message, read just enough for the tests: unfolded headers and the quoted-printable text part.
struct RawMail {
    let text: String

    init(_ bytes: [UInt8]) {
        text = String(decoding: bytes, as: UTF8.self)
    }

    /// The unfolded value of the first header with this name.
    func header(_ name: String) -> String? {
        let head = text.components(separatedBy: "\r\n\r\n").first ?? ""
        let unfolded = head.replacingOccurrences(of: "\r\n ", with: " ").replacingOccurrences(of: "\r\n\t", with: " ")
        for line in unfolded.components(separatedBy: "\r\n") where line.lowercased().hasPrefix(name.lowercased() + ":") {
            return line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces)
        }
        return nil
    }

    /// The message after its header, with quoted-printable soft breaks and escapes undone.
    var decodedBody: String {
        let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n").replacingOccurrences(
            of: "=\r\n", with: "")
        var bytes: [UInt8] = []
        var index = body.utf8.startIndex
        let utf8 = body.utf8
        while index != utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "="), let end = utf8.index(index, offsetBy: 3, limitedBy: utf8.endIndex),
                let value = UInt8(String(decoding: utf8[utf8.index(after: index)..<end], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                index = end
            } else {
                bytes.append(byte)
                index = utf8.index(after: index)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The path of the first link starting with `prefix`, e.g. `/confirm/TOKEN`.
    func link(after prefix: String) -> String? {
        let body = decodedBody
        guard let range = body.range(of: prefix) else { return nil }
        let token = body[range.upperBound...].prefix { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }
        let path = URL(string: prefix)!.path
        return path + "/" + String(token)
    }
}
