import Foundation
import Glibc
import NIOConcurrencyHelpers
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

/// A clock tests move by hand.
final class TestClock: Sendable {
    private let current: NIOLockedValueBox<Date>

    init(_ start: Date = Date(timeIntervalSince1970: 1_795_000_000)) {
        current = NIOLockedValueBox(start)
    }

    var now: Date { current.withLockedValue { $0 } }

    func advance(by seconds: TimeInterval) {
        current.withLockedValue { $0 = $0.addingTimeInterval(seconds) }
    }

    /// The clock as the closure the app takes.
    var function: @Sendable () -> Date { { self.now } }
}

/// A transport that keeps every message, and can be told to fail.
///
/// It takes what production sends, the rendered bytes and their envelope, and reads each message
/// back with ``IndependentMailParser`` for the tests to look into.
final class RecordingTransport: MailTransport, Sendable {
    private let state = NIOLockedValueBox<(messages: [MailMessage], failures: [DeliveryError], refused: [String: DeliveryError])>(
        ([], [], [:]))

    /// Every message delivered so far.
    var messages: [MailMessage] { state.withLockedValue { $0.messages } }

    /// The next deliveries fail with these errors, in order.
    func failNext(_ errors: DeliveryError...) {
        failNext(contentsOf: errors)
    }

    func failNext(contentsOf errors: [DeliveryError]) {
        state.withLockedValue { $0.failures.append(contentsOf: errors) }
    }

    /// Every delivery to these addresses fails with `error`.
    func refuse(_ addresses: [String], with error: DeliveryError) {
        state.withLockedValue { state in
            for address in addresses { state.refused[address] = error }
        }
    }

    func makeSession() throws(DeliveryError) -> any MailSession {
        ForwardingSession(
            begin: { (mail) throws(DeliveryError) in try self.begin(mail) },
            finish: { mail in self.record(mail) })
    }

    /// The failures the test asked for come at the first phase, as a relay's refusals of the envelope do.
    fileprivate func begin(_ mail: OutgoingMail) throws(DeliveryError) {
        let failure = state.withLockedValue { state in
            state.refused[mail.recipient] ?? (state.failures.isEmpty ? nil : state.failures.removeFirst())
        }
        if let failure { throw failure }
    }

    /// The message arrived: it is parsed as a recipient's mail program would, and kept.
    fileprivate func record(_ mail: OutgoingMail) {
        let message: MailMessage
        do {
            message = try IndependentMailParser.message(mail)
        } catch {
            Issue.record("the sender sent a message that does not parse: \(error)")
            return
        }
        state.withLockedValue { $0.messages.append(message) }
    }
}

/// A session of a test transport: hands each phase of a message to the transport.
final class ForwardingSession: MailSession {
    private let beginning: (OutgoingMail) throws(DeliveryError) -> Void
    private let finishing: (OutgoingMail) throws(DeliveryError) -> Void
    private let abandoning: (OutgoingMail) -> Void
    private var begun: OutgoingMail?

    init(
        begin: @escaping (OutgoingMail) throws(DeliveryError) -> Void,
        finish: @escaping (OutgoingMail) throws(DeliveryError) -> Void = { _ in },
        abandon: @escaping (OutgoingMail) -> Void = { _ in }
    ) {
        self.beginning = begin
        self.finishing = finish
        self.abandoning = abandon
    }

    func begin(_ mail: OutgoingMail, following: OutgoingMail?) throws(DeliveryError) {
        try beginning(mail)
        begun = mail
    }

    func finish() throws(DeliveryError) {
        guard let mail = begun else { throw .transient("no message begun") }
        begun = nil
        try finishing(mail)
    }

    func abandon() {
        if let mail = begun { abandoning(mail) }
        begun = nil
    }

    func close() {}
}

extension AppDatabase {
    /// Claims as the sender `owner` would: takes the sending role (at `now`, for `lease` seconds)
    /// and claims up to `limit` due messages.
    func claimAsSender(owner: String = "test", limit: Int, lease: TimeInterval = 60, now: Date = Date()) throws -> [Delivery] {
        if let holder = try takeSendingRole(owner: owner, lease: lease, now: now) {
            throw WaitlistError(.unavailable, "\(holder.owner) holds the sending role")
        }
        return try claimDue(owner: owner, limit: limit, now: now)
    }
}

/// Everything a test of the service needs: an in-memory database, the real templates, a
/// recording transport and a hand-moved clock.
struct TestWorld {
    let database: AppDatabase
    let templates: Templates
    let transport = RecordingTransport()
    let clock = TestClock()
    var settings = Settings()

    static func make() async throws -> TestWorld {
        TestWorld(database: try AppDatabase.inMemory(), templates: try await Templates.load())
    }

    var composer: MailComposer {
        MailComposer(templates: templates, baseURL: settings.baseURL, from: settings.mailFrom)
    }

    var course: Course {
        get throws { try database.resolveCourse(slug: nil) }
    }

    /// Delivers everything due through the recording transport, as the worker would.
    @discardableResult
    func deliverAll() async throws -> OutboxSender.Summary {
        try await sender().run(mode: .drain)
    }

    func sender(concurrency: Int = 1) -> OutboxSender {
        OutboxSender(
            store: database, transport: transport, composer: composer, concurrency: concurrency, logger: .init(label: "test"),
            now: clock.function)
    }

    /// Signs an address up as a visitor's form does: through the signup writer, answered once
    /// the signup is committed.
    @discardableResult
    func signUp(_ address: String, language: Language = .ru) async throws -> SignupOutcome {
        try await database.subscribeDurably(
            email: try EmailAddress(address), courseId: try course.id!, language: language, client: ClientContext(), now: clock.now)
    }

    /// The token of the first `kind` link (`confirm` or `unsubscribe`) in a message's text.
    func linkToken(_ kind: String, in message: MailMessage) -> Token? {
        let prefix = "\(settings.baseURL)/\(kind)/"
        guard let range = message.text.range(of: prefix) else { return nil }
        return Token(link: String(message.text[range.upperBound...].prefix(43)))
    }

    /// The token of a `confirm` or `unsubscribe` link in the last message to `address`.
    func token(_ kind: String, sentTo address: String) throws -> Token {
        let message = try #require(lastMessage(to: address))
        return try #require(linkToken(kind, in: message))
    }

    func lastMessage(to address: String) -> MailMessage? {
        transport.messages.last { $0.to.address == address }
    }

    /// Signs up and delivers the confirmation; returns the token of its confirm link.
    func pendingSubscriber(_ address: String) async throws -> Token {
        try await signUp(address)
        try await deliverAll()
        return try token("confirm", sentTo: address)
    }

    /// Signs up, delivers the confirmation and confirms through its link.
    func confirmedSubscriber(_ address: String, language: Language = .ru) async throws {
        try await signUp(address, language: language)
        try await deliverAll()
        let message = try #require(lastMessage(to: address))
        let token = try #require(linkToken("confirm", in: message))
        _ = try database.confirm(token, client: ClientContext(), now: clock.now)
    }
}

/// Runs blocking work on a thread of its own and awaits its result.
///
/// Tests run on Swift's concurrency pool, which has as many threads as the machine has cores, and
/// many tests block them (waiting for a child process, say). Work here neither holds one of them
/// nor waits for one to run again: what it does after a wait (signal a process the moment a relay
/// holds its messages) happens at once, however busy the pool is.
func onOwnThread<T: Sendable>(_ body: @escaping () -> T) async -> T {
    let work = UncheckedSendable(body)
    return await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: work.value()) }.start()
    }
}

/// Carries a value the compiler cannot prove may cross threads, where the code hands it over once.
private struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value

    init(_ value: Value) {
        self.value = value
    }
}

extension Pipe {
    /// Reads what a child process writes until the text contains `expected`, the writer closes
    /// its end, or `timeout` passes; returns everything read. Blocks its thread (use it inside
    /// ``onOwnThread(_:)``).
    func read(until expected: String, timeout: Duration = .seconds(60)) -> String {
        let descriptor = fileHandleForReading.fileDescriptor
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !String(decoding: bytes, as: UTF8.self).contains(expected), clock.now < deadline {
            var ready = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, 50) >= 0 else { break }
            guard ready.revents != 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            bytes += buffer[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension MailSession {
    /// Delivers one message knowing the one the test sends after it, with nothing to check before its end.
    func send(_ mail: OutgoingMail, following: OutgoingMail?) throws(DeliveryError) {
        try begin(mail, following: following)
        try finish()
    }
}
