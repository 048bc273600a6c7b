import Foundation
import NIOConcurrencyHelpers
import WaitlistCore

/// Turns a claimed outbox row into the message to send: subject, text and HTML in the subscriber's
/// language, links with their tokens, and the RFC 8058 unsubscribe headers.
public struct MailComposer: Sendable {
    let templates: Templates
    /// The public address every link starts with.
    let baseURL: String
    package let from: Mailbox
    /// Dates as people read them, worked out once per date and language (formatting is costly
    /// next to everything else a message takes).
    private let humanDates = Memo<String, String>()
    /// Bodies rendered with stand-ins for the tokens, per template, language and content.
    private let renderedBodies = Memo<String, (text: String, html: String)>()
    /// Whole messages rendered once for all their recipients, per mail, language and content;
    /// `nil` where a template could not be made and each message is rendered in full.
    private let messageTemplates = Memo<TemplateKey, MessageTemplate?>()
    /// The host part of every message ID.
    private let messageIDDomain: String
    /// Signs every rendered message; `nil`: no DKIM keys.
    public let signer: DKIMSigner?

    public init(templates: Templates, baseURL: String, from: Mailbox, signer: DKIMSigner? = nil) {
        self.templates = templates
        self.baseURL = baseURL
        self.from = from
        self.signer = signer
        self.messageIDDomain = MIMERenderer.messageIDDomain(Self.domain(of: from.address))
    }

    /// The host of the public address: the namespace of every course's `List-Id`.
    var listHost: String { URL(string: baseURL)?.host ?? "localhost" }

    /// The link that confirms a signup.
    func confirmURL(_ token: Token) -> String { "\(baseURL)/confirm/\(token.value)" }
    /// The link that unsubscribes (or cancels a pending signup).
    func unsubscribeURL(_ token: Token) -> String { "\(baseURL)/unsubscribe/\(token.value)" }

    /// The bytes of the message for one delivery, as ``MIMERenderer`` renders
    /// ``message(for:now:)``: written into a copy of the mail's template, or rendered in full
    /// where there is no template; then signed with every DKIM key.
    public func renderedMessage(for delivery: Delivery, now: Date = Date()) -> [UInt8] {
        signed(unsignedMessage(for: delivery, now: now), at: now)
    }

    /// The test message of `waitlist test-mail`, rendered and signed like every other message.
    public func renderedTestMail(to address: EmailAddress, now: Date = Date()) -> OutgoingMail {
        let message = testMessage(to: address, now: now)
        return OutgoingMail(bytes: signed(MIMERenderer.render(message), at: now), sender: from.address, recipient: address.value)
    }

    /// Rendered bytes with a DKIM signature per configured key in front: the one place where
    /// messages are signed, so every transport gets them signed.
    func signed(_ bytes: [UInt8], at now: Date) -> [UInt8] {
        signer?.sign(bytes, at: now) ?? bytes
    }

    /// The bytes of the message for one delivery before it is signed.
    func unsignedMessage(for delivery: Delivery, now: Date) -> [UInt8] {
        let parts = MessageTemplate.Parts(
            recipient: delivery.recipient, date: now, messageIDDigits: MIMERenderer.makeMessageIDDigits(),
            unsubscribeToken: delivery.unsubscribeToken, confirmToken: delivery.confirmToken)
        if let template = template(for: delivery), let bytes = template.message(for: parts) { return bytes }
        return MIMERenderer.render(message(for: delivery, now: now, messageIDDigits: parts.messageIDDigits))
    }

    /// The template of a delivery's mail, made on first use; `nil` when none can be made.
    func template(for delivery: Delivery) -> MessageTemplate? {
        let key = TemplateKey(
            kind: delivery.kind, language: delivery.language, courseId: delivery.course.id,
            course: delivery.course.title(in: delivery.language),
            openingId: delivery.opening?.id, date: delivery.opening?.date, enrolURL: delivery.opening?.enrolURL)
        return messageTemplates.value(for: key) {
            MessageTemplate(hasConfirmLink: delivery.confirmToken != nil) { parts in
                var standIn = delivery
                standIn.recipient = parts.recipient
                standIn.unsubscribeToken = parts.unsubscribeToken
                standIn.confirmToken = parts.confirmToken
                return MIMERenderer.render(message(for: standIn, now: parts.date, messageIDDigits: parts.messageIDDigits))
            }
        }
    }

    /// What tells two templates apart: everything of a delivery that a message shows, but the
    /// recipient's own parts.
    private struct TemplateKey: Hashable {
        var kind: MailKind
        var language: Language
        var courseId: Int64?
        var course: String
        var openingId: Int64?
        var date: String?
        var enrolURL: String?

        /// Only the short fields: hashing the texts for every message cost more than the lookup
        /// saves, and equal keys have equal short fields anyway.
        func hash(into hasher: inout Hasher) {
            hasher.combine(kind)
            hasher.combine(language)
            hasher.combine(courseId)
            hasher.combine(openingId)
        }
    }

    /// The message for one delivery.
    public func message(for delivery: Delivery, now: Date = Date()) -> MailMessage {
        message(for: delivery, now: now, messageIDDigits: MIMERenderer.makeMessageIDDigits())
    }

    /// The message for one delivery, with the message ID `messageIDDigits@domain`.
    func message(for delivery: Delivery, now: Date, messageIDDigits: String) -> MailMessage {
        let language = delivery.language
        let unsubscribe = unsubscribeURL(delivery.unsubscribeToken)
        let subject: String
        let template: String
        let title = delivery.course.title(in: language)
        var context: [String: Any] = ["course": title]
        switch delivery.kind {
        case .confirmation:
            template = "confirmation"
            subject = MailWords.of(language).confirmationSubject(title)
        case .announcement:
            let date =
                delivery.opening.map { opening in
                    humanDates.value(for: "\(language.rawValue) \(opening.date)") { HumanDate.text(opening.date, language: language) }
                } ?? ""
            context["date"] = date
            context["enrolURL"] = delivery.opening?.enrolURL ?? baseURL
            template = "announcement"
            subject = MailWords.of(language).announcementSubject(title, date)
        }
        // The bodies are the same for every recipient but for the links' tokens: render each
        // template once with stand-ins for the tokens, then put each recipient's tokens in.
        let key =
            "\(template)|\(language.rawValue)|\(context.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "|"))"
        let bodies = renderedBodies.value(for: key) {
            var slots = context
            slots["confirmURL"] = "\(baseURL)/confirm/\(Self.confirmSlot)"
            slots["unsubscribeURL"] = "\(baseURL)/unsubscribe/\(Self.unsubscribeSlot)"
            return (
                templates.render("mail/\(template).\(language.rawValue).txt", slots),
                templates.render("mail/\(template).\(language.rawValue).html", slots)
            )
        }
        func personal(_ body: String) -> String {
            var body = body.replacingOccurrences(of: Self.unsubscribeSlot, with: delivery.unsubscribeToken.value)
            if let confirm = delivery.confirmToken { body = body.replacingOccurrences(of: Self.confirmSlot, with: confirm.value) }
            return body
        }
        return MailMessage(
            from: from,
            to: Mailbox(address: delivery.recipient),
            subject: subject,
            text: personal(bodies.text),
            html: personal(bodies.html),
            extraHeaders: [
                (name: "List-Unsubscribe", value: "<\(unsubscribe)>"),
                (name: "List-Unsubscribe-Post", value: "List-Unsubscribe=One-Click"),
                (name: "Content-Language", value: language.rawValue),
            ],
            messageID: "\(messageIDDigits)@\(messageIDDomain)",
            date: now,
            // The confirmation is the list's mail too: without List-Id beside List-Unsubscribe it
            // looks like an incomplete list message to spam filters (SpamAssassin's LIST_PARTIAL_*).
            listID: ListID(title: title, id: "\(delivery.course.slug).\(listHost)"))
    }

    /// Stand-ins for the tokens while a body is rendered: letters only, so no escaping changes
    /// them, and long enough never to occur in a template or a course's text.
    static let confirmSlot = "WaitlistConfirmTokenSlotQx7vZk2mPa9Lr4Tn8WbYc3"
    static let unsubscribeSlot = "WaitlistUnsubscribeTokenSlotHs5Jd1Fg6Ke0Rm2Vp7"

    /// The message `waitlist test-mail` sends.
    public func testMessage(to address: EmailAddress, now: Date = Date()) -> MailMessage {
        MailMessage(
            from: from, to: Mailbox(address: address.value), subject: MailWords.testSubject,
            text: templates.render("mail/test.en.txt", ["baseURL": baseURL]),
            messageID: "\(MIMERenderer.makeMessageIDDigits())@\(messageIDDomain)", date: now)
    }

    package static func domain(of address: String) -> String {
        address.split(separator: "@").last.map(String.init) ?? "localhost"
    }
}

/// Values worked out once per key: course dates as people read them, mail bodies rendered with
/// stand-ins for the tokens, message templates. A sender needs a handful at a time, so a memo is simply emptied when
/// it grows past a few dozen.
private final class Memo<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let values = NIOLockedValueBox<[Key: Value]>([:])

    func value(for key: Key, make: () -> Value) -> Value {
        if let known = values.withLockedValue({ $0[key] }) { return known }
        let value = make()
        values.withLockedValue { values in
            if values.count >= 64 { values.removeAll() }
            values[key] = value
        }
        return value
    }
}

extension MailComposer {
    /// The announcement a Russian-speaking subscriber would get for an opening, with a sample
    /// unsubscribe link, for `open --dry-run`.
    public func preview(course: Course, date: String, enrolURL: String) -> MailMessage {
        let opening = Opening(id: nil, courseId: course.id ?? 0, date: date, enrolURL: enrolURL, openedAt: Date(), closedAt: nil)
        return message(
            for: Delivery(
                outboxId: 0, kind: .announcement, recipient: "subscriber@example.org", language: .ru, course: course, opening: opening,
                confirmToken: nil, unsubscribeToken: Token.generate(), attempt: 1))
    }
}
