import Foundation
import NIOConcurrencyHelpers
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

/// Parsing of `WAITLIST_SMTP_URL`; no network.
@Suite struct SMTPConfigurationTests {
    /// A URL that parses, and what it must mean.
    struct GoodURL: Sendable, CustomTestStringConvertible {
        var url: String
        var host: String
        var port: Int
        var credentials: SMTPConfiguration.Credentials?
        var tlsPolicy: SMTPConfiguration.TLSPolicy
        var testDescription: String { url }
    }

    static let goodURLs: [GoodURL] = [
        GoodURL(url: "smtp://mail.example.org", host: "mail.example.org", port: 25, tlsPolicy: .startTLSWhenOffered),
        GoodURL(url: "smtps://mail.example.org", host: "mail.example.org", port: 465, tlsPolicy: .implicitTLS),
        GoodURL(url: "SMTP://relay.example.org:2525/", host: "relay.example.org", port: 2525, tlsPolicy: .startTLSWhenOffered),
        GoodURL(url: "smtp://127.0.0.1:1025", host: "127.0.0.1", port: 1025, tlsPolicy: .startTLSWhenOffered),
        GoodURL(url: "smtp://[::1]:2525", host: "::1", port: 2525, tlsPolicy: .startTLSWhenOffered),
        GoodURL(url: "smtps://[2001:db8::25]", host: "2001:db8::25", port: 465, tlsPolicy: .implicitTLS),
        GoodURL(
            url: "smtp://apikey:s3cr3t@smtp.example.org:587", host: "smtp.example.org", port: 587,
            credentials: .init(user: "apikey", password: "s3cr3t"), tlsPolicy: .startTLSRequired
        ),
        GoodURL(
            url: "smtp://user%40example.org:p%40ss%3Aw%2Frd@smtp.example.org", host: "smtp.example.org", port: 25,
            credentials: .init(user: "user@example.org", password: "p@ss:w/rd"), tlsPolicy: .startTLSRequired
        ),
        GoodURL(
            url: "smtps://user:pa/ss?#@smtp.example.org", host: "smtp.example.org", port: 465,
            credentials: .init(user: "user", password: "pa/ss?#"), tlsPolicy: .implicitTLS
        ),
        GoodURL(
            url: "smtp://почта:пароль@почта.рф", host: "почта.рф", port: 25,
            credentials: .init(user: "почта", password: "пароль"), tlsPolicy: .startTLSRequired
        ),
    ]

    @Test(arguments: goodURLs)
    func parsesGoodURL(_ expected: GoodURL) throws {
        let configuration = try SMTPConfiguration(url: expected.url)
        #expect(configuration.host == expected.host)
        #expect(configuration.port == expected.port)
        #expect(configuration.credentials == expected.credentials)
        #expect(configuration.tlsPolicy == expected.tlsPolicy)
        #expect(configuration.caFile == nil)
        #expect(configuration.connectTimeout == .seconds(10))
        #expect(configuration.messageTimeout == .seconds(60))
    }

    static let badURLs: [(url: String, error: SMTPConfigurationError)] = [
        ("", .notAnSMTPURL),
        ("mail.example.org:25", .notAnSMTPURL),
        ("http://mail.example.org", .unsupportedScheme("http")),
        ("smtp+tls://mail.example.org", .unsupportedScheme(nil)),
        ("smtp://", .missingHost),
        ("smtp://:25", .missingHost),
        ("smtp://user:pass@", .missingHost),
        ("smtp://mail example.org", .invalidHost),
        ("smtp://mail.example.org:25:26", .invalidHost),
        ("smtp://::1:25", .invalidHost),
        ("smtp://[::1", .invalidHost),
        ("smtp://[not-ipv6]:25", .invalidHost),
        ("smtp://[::1]25", .invalidHost),
        ("smtp://mail.example.org:", .invalidPort),
        ("smtp://mail.example.org:0", .invalidPort),
        ("smtp://mail.example.org:65536", .invalidPort),
        ("smtp://mail.example.org:twenty", .invalidPort),
        ("smtp://mail.example.org:+25", .invalidPort),
        ("smtp://mail.example.org/relay", .pathOrQuery),
        ("smtp://mail.example.org:25?tls=1", .pathOrQuery),
        ("smtp://mail.example.org#x", .pathOrQuery),
        ("smtp://user@mail.example.org", .incompleteCredentials),
        ("smtp://user:@mail.example.org", .incompleteCredentials),
        ("smtp://:pass@mail.example.org", .incompleteCredentials),
        ("smtp://user:50%@mail.example.org", .invalidCredentials),
        ("smtp://user:pass%0D%0AQUIT@mail.example.org", .invalidCredentials),
    ]

    @Test(arguments: badURLs)
    func refusesBadURL(_ url: String, expected: SMTPConfigurationError) {
        #expect(throws: expected) { try SMTPConfiguration(url: url) }
    }

    @Test func errorMessagesAreOneSentenceWithoutThePassword() {
        let mistakes = ["smtp://user:hunter2", "smtp://user:hunter2/x", "smtp://u:hunter2@host:hunter2", "hunter2://x"]
        for url in mistakes {
            #expect {
                try SMTPConfiguration(url: url)
            } throws: { error in
                let text = "\(error)"
                return !text.contains("hunter2") && text.hasSuffix(".") && !text.contains("\n")
            }
        }
    }

    @Test func descriptionAndMirrorHideThePassword() throws {
        let configuration = try SMTPConfiguration(url: "smtp://mailer:hunter%32@smtp.example.org:587")
        #expect(configuration.description == "smtp://mailer:***@smtp.example.org:587")
        var dumped = ""
        dump(configuration, to: &dumped)
        for text in ["\(configuration)", String(reflecting: configuration), dumped, "\(configuration.credentials!)"] {
            #expect(!text.contains("hunter"), "\(text)")
        }
    }

    @Test func descriptionBracketsAnIPv6Host() throws {
        #expect(try SMTPConfiguration(url: "smtps://[::1]").description == "smtps://[::1]:465")
    }

    @Test func refusesAnUnreadableCAFile() {
        #expect(throws: SMTPConfigurationError.unreadableCAFile("/nonexistent/ca.pem")) {
            try SMTPConfiguration(url: "smtp://mail.example.org", caFile: "/nonexistent/ca.pem")
        }
    }
}

/// `SMTPTransport` against a real aiosmtpd server (`Tests/support/smtp_server.py`), one per test.
@Suite struct SMTPTransportLiveTests {
    static let sender = Mailbox(displayName: "Waitlist", address: "waitlist@example.org")

    /// A message to `address` whose text has a line starting with a dot, so dot-stuffing is exercised.
    static func message(to address: String, subject: String = "Запись открыта", number: Int = 1) -> MailMessage {
        MailMessage(
            from: sender,
            to: Mailbox(displayName: "Анна Иванова", address: address),
            subject: subject,
            text: "Здравствуйте!\r\n.Строка с точкой в начале.\r\n..\r\n.\r\nЗапись на курс «Переговоры» открыта: ünïcödé ✓\r\n",
            messageID: "test-\(number)@example.org",
            date: Date(timeIntervalSince1970: 1_700_000_000)
        )
    }

    static func session(url: String, caFile: String? = nil, messageTimeout: Duration = .seconds(10)) throws -> any MailSession {
        let configuration = try SMTPConfiguration(url: url, caFile: caFile, connectTimeout: .seconds(5), messageTimeout: messageTimeout)
        return try SMTPTransport(configuration: configuration, ehloName: "waitlist.test").makeSession()
    }

    @Test(arguments: [true, false]) func deliversRussianMessageByteForByte(pipelining: Bool) async throws {
        let server = try await SMTPTestServer.start(.init(offersPipelining: pipelining))
        defer { server.stop() }
        let session = try Self.session(url: server.url)
        defer { session.close() }
        let message = Self.message(to: "anna@example.com")

        try session.send(message)

        let received = try server.receivedMessages()
        try #require(received.count == 1)
        #expect(received[0].data == MIMERenderer.render(message))
        #expect(received[0].mailFrom == "waitlist@example.org")
        #expect(received[0].recipients == ["anna@example.com"])
    }

    @Test(arguments: [true, false]) func linesStartingWithADotArriveUnchanged(pipelining: Bool) async throws {
        let server = try await SMTPTestServer.start(.init(offersPipelining: pipelining))
        defer { server.stop() }
        let configuration = try SMTPConfiguration(url: server.url)
        let session = try SMTPSession(configuration: configuration, ehloName: "waitlist.test")
        defer { session.close() }
        let message = Array("Subject: dots\r\n\r\n.\r\n..\r\n.leading dot\r\n\r\n.\r\nend\r\n".utf8)

        try session.send(OutgoingMail(bytes: message, sender: "waitlist@example.org", recipient: "anna@example.com"))

        #expect(try server.receivedMessages().map(\.data) == [message])
    }

    @Test("A message sent the moment the relay hangs up, before its hang-up arrives, goes once more on a new connection")
    func aHangUpStillOnTheWayIsSurvived() async throws {
        let server = try await SMTPTestServer.start(.init(hangsUpAfter: 1))
        defer { server.stop() }
        let session = try Self.session(url: server.url)
        defer { session.close() }
        // The relay closes each connection after its first message; the next goes out at once.
        for number in 1...12 {
            try session.send(Self.message(to: "person\(number)@example.com", number: number))
        }
        let received = try server.receivedMessages()
        #expect(received.map(\.recipients) == (1...12).map { ["person\($0)@example.com"] })
    }

    @Test func aConnectionTheRelayHungUpIsReplacedBeforeTheNextMessage() async throws {
        let server = try await SMTPTestServer.start(.init(hangsUpAfter: 1))
        defer { server.stop() }
        let session = try Self.session(url: server.url)
        defer { session.close() }

        try session.send(Self.message(to: "first@example.com", number: 1))
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(20))
        while server.hangUps() == 0 && clock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        try #require(server.hangUps() == 1)
        try session.send(Self.message(to: "second@example.com", number: 2))

        let received = try server.receivedMessages()
        #expect(received.map(\.recipients) == [["first@example.com"], ["second@example.com"]])
        #expect(received[0].peer != received[1].peer)
    }

    @Test func dotStuffingDoublesTheDotAtTheStartOfEveryLineAndEndsTheData() {
        func stuffed(_ text: String) -> String {
            String(decoding: SMTPConnection.dotStuffed(Array(text.utf8)), as: UTF8.self)
        }
        #expect(stuffed(".a\r\nb.\r\n.\r\n..c\r\n") == "..a\r\nb.\r\n..\r\n...c\r\n.\r\n")
        // Only after CRLF does a line start; a message without a last CRLF gets one before the end.
        #expect(stuffed("a\n.b\r\n.") == "a\n.b\r\n..\r\n.\r\n")
        #expect(stuffed("") == "\r\n.\r\n")
    }

    @Test(arguments: [1, 300_000], [true, false])
    func theRelayHasNothingOfABegunMessageUntilItIsFinished(lines: Int, pipelining: Bool) async throws {
        let server = try await SMTPTestServer.start(.init(offersPipelining: pipelining))
        defer { server.stop() }
        let session = try SMTPSession(configuration: try SMTPConfiguration(url: server.url), ehloName: "waitlist.test")
        defer { session.close() }
        // One line, or a message many times the part sent at its end.
        let message = Array(("Subject: phases\r\n\r\n" + String(repeating: "line\r\n", count: lines)).utf8)

        try session.begin(OutgoingMail(bytes: message, sender: "waitlist@example.org", recipient: "anna@example.com"), following: nil)
        #expect(server.receivedCount() == 0)
        try session.finish()

        #expect(try server.receivedMessages().map(\.data) == [message])
    }

    @Test(arguments: [1, 300_000], [true, false])
    func anAbandonedMessageNeverArrivesAndTheNextGoesOnANewConnection(lines: Int, pipelining: Bool) async throws {
        let server = try await SMTPTestServer.start(.init(offersPipelining: pipelining))
        defer { server.stop() }
        let session = try SMTPSession(configuration: try SMTPConfiguration(url: server.url), ehloName: "waitlist.test")
        defer { session.close() }
        let message = Array(("Subject: held back\r\n\r\n" + String(repeating: "line\r\n", count: lines)).utf8)

        // When a message is begun, knowing the next, and abandoned
        let next = OutgoingMail(Self.message(to: "boris@example.com", number: 2))
        try session.begin(OutgoingMail(bytes: message, sender: "waitlist@example.org", recipient: "anna@example.com"), following: next)
        session.abandon()
        try await Task.sleep(for: .milliseconds(300))
        // Then the relay never has it, and the next message goes through on a connection of its own
        #expect(server.receivedCount() == 0)
        try session.send(next, following: nil)
        let received = try server.receivedMessages()
        #expect(received.map(\.recipients) == [["boris@example.com"]])
    }

    @Test(arguments: [true, false]) func aRefusedRecipientFailsTheFirstPhase(pipelining: Bool) async throws {
        let server = try await SMTPTestServer.start(.init(offersPipelining: pipelining))
        defer { server.stop() }
        let session = try SMTPSession(configuration: try SMTPConfiguration(url: server.url), ehloName: "waitlist.test")
        defer { session.close() }

        let error = try #require(throws: DeliveryError.self) {
            try session.begin(
                OutgoingMail(bytes: Array("Subject: x\r\n\r\nx\r\n".utf8), sender: "waitlist@example.org", recipient: "reject@example.com"),
                following: nil)
        }
        #expect(error.isPermanent)
        #expect(server.receivedCount() == 0)
    }

    @Test func refusesAnAddressThatWouldChangeTheSMTPCommand() async throws {
        let server = try await SMTPTestServer.start()
        defer { server.stop() }
        let session = try Self.session(url: server.url)
        defer { session.close() }

        let error = try #require(throws: DeliveryError.self) {
            try session.send(Self.message(to: "anna@example.com>\r\nRCPT TO:<other@example.com"))
        }
        #expect(error.isPermanent)
        #expect(try server.receivedMessages().isEmpty)
    }

    @Test(arguments: [true, false]) func deliversToNonASCIIAddressWithSMTPUTF8(pipelining: Bool) async throws {
        let server = try await SMTPTestServer.start(.init(offersPipelining: pipelining))
        defer { server.stop() }
        let session = try Self.session(url: server.url)
        defer { session.close() }

        try session.send(Self.message(to: "анна@пример.рф"))

        let received = try server.receivedMessages()
        try #require(received.count == 1)
        #expect(received[0].mailOptions.contains("SMTPUTF8"))
        #expect(received[0].recipients == ["анна@пример.рф"])
    }

    @Test(arguments: [true, false])
    func sendsConsecutiveMessagesOverOneConnectionPipelinedOnlyWhenTheRelayOffersIt(pipelining: Bool) async throws {
        let server = try await SMTPTestServer.start(.init(offersPipelining: pipelining))
        defer { server.stop() }
        let session = try Self.session(url: server.url)
        defer { session.close() }

        try session.send(Self.message(to: "first@example.com", number: 1))
        try session.send(Self.message(to: "second@example.com", number: 2))

        let received = try server.receivedMessages()
        try #require(received.count == 2)
        #expect(received.map(\.recipients) == [["first@example.com"], ["second@example.com"]])
        #expect(received[0].peer == received[1].peer)
        #expect(received.map(\.pipelined) == [pipelining, pipelining])
    }

    @Test(arguments: [true, false])
    func theNextEnvelopeGoesOutWithTheEndOfTheMessageBeforeItWhereTheRelayOffersPipelining(pipelining: Bool) async throws {
        let server = try await SMTPTestServer.start(.init(offersPipelining: pipelining))
        defer { server.stop() }
        let session = try Self.session(url: server.url)
        defer { session.close() }
        let mails = (1...3).map { OutgoingMail(Self.message(to: "reader\($0)@example.com", number: $0)) }

        // When each message is sent knowing the one after it
        try session.send(mails[0], following: mails[1])
        try session.send(mails[1], following: mails[2])
        try session.send(mails[2], following: nil)

        // Then, over one connection, the envelopes of the second and third went out with the end of
        // the message before them (with PIPELINING only), and each message arrived whole, once
        let received = try server.receivedMessages()
        try #require(received.count == 3)
        #expect(received.map(\.recipients) == [["reader1@example.com"], ["reader2@example.com"], ["reader3@example.com"]])
        #expect(Set(received.map(\.peer)).count == 1)
        #expect(received.map(\.nextEnvelopeAhead) == [pipelining, pipelining, false])
        #expect(received.map(\.data) == mails.map(\.bytes))
        #expect(received.map { $0.mailOptions.contains("SIZE=\(mails[0].bytes.count)") } == [true, true, true])
    }

    @Test("An envelope sent ahead and then not followed by its message leaves nothing at the relay, and closing does not wait")
    func anEnvelopeSentAheadAndClosedLeavesNoMessage() async throws {
        let server = try await SMTPTestServer.start(.init(offersPipelining: true))
        defer { server.stop() }
        let (first, second, third) = (
            OutgoingMail(Self.message(to: "first@example.com", number: 1)), OutgoingMail(Self.message(to: "second@example.com", number: 2)),
            OutgoingMail(Self.message(to: "third@example.com", number: 3))
        )
        // Given the second message's envelope sent after the first's end
        let session = try Self.session(url: server.url)
        try session.send(first, following: second)
        // When the session is closed instead (the lane stops), within the relay's patience, and
        // another session sends a third
        let started = ContinuousClock.now
        session.close()
        #expect(ContinuousClock.now - started < .seconds(5), "closing waited for an answer to QUIT")
        let other = try Self.session(url: server.url)
        defer { other.close() }
        try other.send(third)
        // Then the relay has the first and the third, and never the second
        let received = try server.receivedMessages()
        #expect(received.map(\.recipients) == [["first@example.com"], ["third@example.com"]])
    }

    @Test("A message other than the one whose envelope went ahead is sent on a new connection; the one announced never arrives")
    func anotherMessageThanTheOneAnnouncedGoesOnANewConnection() async throws {
        let server = try await SMTPTestServer.start(.init(offersPipelining: true))
        defer { server.stop() }
        let session = try Self.session(url: server.url)
        defer { session.close() }
        let (first, announced, instead) = (
            OutgoingMail(Self.message(to: "first@example.com", number: 1)),
            OutgoingMail(Self.message(to: "announced@example.com", number: 2)),
            OutgoingMail(Self.message(to: "instead@example.com", number: 3))
        )
        try session.send(first, following: announced)
        try session.send(instead)
        try session.send(OutgoingMail(Self.message(to: "after@example.com", number: 4)))
        let received = try server.receivedMessages()
        #expect(received.map(\.recipients) == [["first@example.com"], ["instead@example.com"], ["after@example.com"]])
        try #require(received.count == 3)
        #expect(received[0].peer != received[1].peer && received[1].peer == received[2].peer)
    }

    @Test(
        "A message the relay refuses at its end leaves the next one's envelope, sent ahead, to be answered: it arrives on the same connection"
    )
    func aRefusalAtTheEndKeepsTheEnvelopeAhead() async throws {
        let server = try await SMTPTestServer.start(.init(offersPipelining: true))
        defer { server.stop() }
        let session = try Self.session(url: server.url)
        defer { session.close() }
        let (refused, next) = (
            OutgoingMail(Self.message(to: "spam@example.com", number: 1)), OutgoingMail(Self.message(to: "next@example.com", number: 2))
        )
        #expect(throws: DeliveryError.self) { try session.send(refused, following: next) }
        try session.send(next)
        let received = try server.receivedMessages()
        try #require(received.count == 1)
        #expect(received[0].recipients == ["next@example.com"])
        #expect(received[0].pipelined)
    }

    /// A refusal the test server produces, and what the transport must make of it.
    struct Refusal: Sendable, CustomTestStringConvertible {
        var sender = "waitlist@example.org"
        var recipient: String
        /// ``DeliveryError/kind`` of the error expected.
        var kind: String
        var replyCode: String
        var testDescription: String { "\(sender) → \(recipient)" }
    }

    static let refusals: [Refusal] = [
        Refusal(recipient: "rejected@example.com", kind: "permanent", replyCode: "550 5.1.1"),
        Refusal(recipient: "deferred@example.com", kind: "deferred", replyCode: "451 4.3.0"),
        Refusal(recipient: "spam@example.com", kind: "policy", replyCode: "554 5.7.1"),
        Refusal(sender: "rejected@example.org", recipient: "anna@example.com", kind: "senderRefused", replyCode: "553 5.7.1"),
    ]

    @Test(arguments: refusals, [true, false])
    func classifiesRefusalAndKeepsTheSessionUsable(_ refusal: Refusal, pipelining: Bool) async throws {
        let server = try await SMTPTestServer.start(.init(offersPipelining: pipelining))
        defer { server.stop() }
        let session = try Self.session(url: server.url)
        defer { session.close() }
        var refused = Self.message(to: refusal.recipient)
        refused.from.address = refusal.sender

        let error = try #require(throws: DeliveryError.self) { try session.send(refused) }
        #expect(error.kind == refusal.kind)
        #expect(error.reason.contains(refusal.replyCode), "\(error.reason)")

        try session.send(Self.message(to: "after@example.com"))
        #expect(try server.receivedMessages().map(\.recipients) == [["after@example.com"]])
    }

    @Test("A refusal's reason, stored and logged, never holds the address the relay quoted")
    func refusalReasonLeavesTheAddressOut() {
        let reply = SMTPConnection.Reply(
            code: 550,
            refusal: Array("550 5.1.1 <Anna.Ivanova@example.com>: Recipient address rejected: user anna@example.com unknown\r".utf8))
        #expect(reply.line == "550 5.1.1 <address> Recipient address rejected: user <address> unknown")
        #expect(reply.isPolicyRefusal == false)
    }

    @Test func closedPortIsTransient() async throws {
        let server = try await SMTPTestServer.start()
        let url = server.url
        server.stop()
        let session = try Self.session(url: url)
        defer { session.close() }

        let error = try #require(throws: DeliveryError.self) { try session.send(Self.message(to: "anna@example.com")) }
        #expect(!error.isPermanent)
        #expect(error.reason.contains("Could not connect"), "\(error.reason)")
    }

    @Test func silentRelayTimesOutAsTransient() async throws {
        let server = try await SMTPTestServer.start(.init(staysSilent: true))
        defer { server.stop() }
        let session = try Self.session(url: server.url, messageTimeout: .seconds(1))
        defer { session.close() }

        let error = try #require(throws: DeliveryError.self) { try session.send(Self.message(to: "anna@example.com")) }
        #expect(!error.isPermanent)
        #expect(error.reason.contains("did not answer in time"), "\(error.reason)")
    }

    @Test func neverSendsAPasswordWithoutTLS() async throws {
        let server = try await SMTPTestServer.start(.init(credentials: ("mailer", "hunter2"), offersAuthWithoutTLS: true))
        defer { server.stop() }
        let session = try Self.session(url: server.url(user: "mailer", password: "hunter2"))
        defer { session.close() }

        let error = try #require(throws: DeliveryError.self) { try session.send(Self.message(to: "anna@example.com")) }
        #expect(!error.isPermanent)
        #expect(error.reason.contains("STARTTLS"), "\(error.reason)")
        #expect(!error.reason.contains("hunter2"))
        #expect(try server.authAttempts().isEmpty)
        #expect(try server.receivedMessages().isEmpty)
    }

    @Test func deliversWithSTARTTLSAndLogin() async throws {
        let server = try await SMTPTestServer.start(
            .init(credentials: ("mailer", "p@ss:wörd"), offersStartTLS: true, requiresStartTLS: true)
        )
        defer { server.stop() }
        let session = try Self.session(url: server.url(user: "mailer", password: "p@ss:wörd"), caFile: server.certificateFile)
        defer { session.close() }

        try session.send(Self.message(to: "anna@example.com", number: 1))
        try session.send(Self.message(to: "boris@example.com", number: 2))

        let received = try server.receivedMessages()
        try #require(received.count == 2)
        #expect(received.allSatisfy { $0.tls && $0.authenticated })
        #expect(received[0].peer == received[1].peer)
        #expect(try server.authAttempts().map(\.success) == [true])
    }

    @Test func wrongPasswordIsTransientAndDeliversNothing() async throws {
        let server = try await SMTPTestServer.start(.init(credentials: ("mailer", "right"), offersStartTLS: true))
        defer { server.stop() }
        let session = try Self.session(url: server.url(user: "mailer", password: "wrong"), caFile: server.certificateFile)
        defer { session.close() }

        let error = try #require(throws: DeliveryError.self) { try session.send(Self.message(to: "anna@example.com")) }
        #expect(error.kind == "senderRefused")
        #expect(error.reason.contains("535"), "\(error.reason)")
        #expect(!error.reason.contains("wrong"))
        #expect(try server.receivedMessages().isEmpty)
    }

    @Test func untrustedCertificateIsTransientNotADowngrade() async throws {
        let server = try await SMTPTestServer.start(.init(offersStartTLS: true))
        defer { server.stop() }
        let session = try Self.session(url: server.url)
        defer { session.close() }

        let error = try #require(throws: DeliveryError.self) { try session.send(Self.message(to: "anna@example.com")) }
        #expect(!error.isPermanent)
        #expect(error.reason.contains("TLS"), "\(error.reason)")
        #expect(try server.receivedMessages().isEmpty)
    }
}

extension DeliveryError {
    /// Whether the outbox would give up on the message for good.
    var isPermanent: Bool {
        if case .permanent = self { true } else { false }
    }

    /// The case, for tests to compare: `policy` for a permanent refusal with a policy reason.
    var kind: String {
        switch self {
        case .transient: "transient"
        case .deferred: "deferred"
        case .permanent(_, let policy): policy ? "policy" : "permanent"
        case .senderRefused: "senderRefused"
        }
    }
}
