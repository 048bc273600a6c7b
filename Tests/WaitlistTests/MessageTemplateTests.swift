import Foundation
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

/// Messages written into a template must be, byte for byte, what the renderer makes of the whole
/// message: the template is only a faster way to the same bytes.
@Suite struct MessageTemplateTests {
    @Test func templatedMessagesAreTheBytesTheRendererMakes() async throws {
        let world = try await TestWorld.make()
        let seed = ProcessInfo.processInfo.environment["WAITLIST_TEMPLATE_SEED"].flatMap { UInt64($0) } ?? 0x7E3B_1A7E_2026
        var generator = SplitMix64(seed: seed)
        for iteration in 0..<300 {
            // The service's own settings vary too: where links point, who the mail is from.
            let composer = MailComposer(
                templates: world.templates,
                baseURL: "https://" + ["school.example", "xn--80aswg.xn--p1ai", "a.example"].randomElement(using: &generator)!
                    + String(repeating: "/waitlist", count: Int.random(in: 0...12, using: &generator)),
                from: Mailbox(
                    displayName: Bool.random(using: &generator) ? randomText(using: &generator, maxPieces: 30) : nil,
                    address: ["school@example.org", "школа@пример.рф", "no-reply@mail.school.example"].randomElement(using: &generator)!))
            let delivery = randomDelivery(using: &generator)
            let now = Date(timeIntervalSince1970: Double.random(in: 0..<4_000_000_000, using: &generator))
            let context = "seed \(seed) (set WAITLIST_TEMPLATE_SEED to repeat), iteration \(iteration)"

            #expect(composer.template(for: delivery) != nil, "no template: \(context)")
            let bytes = composer.renderedMessage(for: delivery, now: now)
            let digits = try #require(messageIDDigits(in: bytes), "no message ID: \(context)")
            let expected = MIMERenderer.render(composer.message(for: delivery, now: now, messageIDDigits: digits))
            if bytes != expected {
                Issue.record("templated message differs from the rendered one: \(context)\n\(String(decoding: bytes, as: UTF8.self))")
                return
            }
        }
    }

    @Test func everyMessageHasItsOwnMessageIDAndTokens() async throws {
        let world = try await TestWorld.make()
        var generator = SplitMix64(seed: 1)
        var delivery = randomDelivery(using: &generator)
        delivery.kind = .announcement
        delivery.confirmToken = nil
        let first = world.composer.renderedMessage(for: delivery, now: Date())
        delivery.unsubscribeToken = Token.generate()
        let second = world.composer.renderedMessage(for: delivery, now: Date())
        #expect(messageIDDigits(in: first) != messageIDDigits(in: second))
        #expect(String(decoding: second, as: UTF8.self).contains(delivery.unsubscribeToken.value))
    }

    @Test func aDateTheTemplateCannotHoldIsRenderedInFull() async throws {
        let world = try await TestWorld.make()
        var generator = SplitMix64(seed: 2)
        let delivery = randomDelivery(using: &generator)
        // The year 10000 has five digits: the `Date` no longer fits the template's place.
        let now = Date(timeIntervalSince1970: 253_402_300_800 + 5)
        let bytes = world.composer.renderedMessage(for: delivery, now: now)
        #expect(String(decoding: bytes, as: UTF8.self).hasPrefix("Date: Sat, 01 Jan 10000 00:00:05 +0000\r\n"))
        let digits = try #require(messageIDDigits(in: bytes))
        #expect(bytes == MIMERenderer.render(world.composer.message(for: delivery, now: now, messageIDDigits: digits)))
    }

    @Test func aRegularMessageGivesATemplateThatFillsEveryPlace() throws {
        let template = try #require(MessageTemplate(hasConfirmLink: true, render: toyMessage))
        let parts = MessageTemplate.Parts(
            recipient: "a.much.longer.recipient.address@example.org", date: Date(timeIntervalSince1970: 1_800_000_000),
            messageIDDigits: "0123456789abcdef0123456789abcdef", unsubscribeToken: Token.generate(), confirmToken: Token.generate())
        #expect(template.message(for: parts) == toyMessage(parts))
        var withoutConfirm = parts
        withoutConfirm.confirmToken = nil
        #expect(template.message(for: withoutConfirm) == nil)
    }

    @Test(arguments: IrregularRender.allCases)
    func noTemplateIsMadeFromAnIrregularMessage(_ irregularity: IrregularRender) {
        #expect(MessageTemplate(hasConfirmLink: true) { irregularity.render($0) } == nil)
    }

    enum IrregularRender: CaseIterable {
        /// Only part of the token is in the message.
        case partialToken
        /// The token changes the message's length (escaped, say).
        case tokenChangesLength
        /// The `Date` header is not first.
        case dateNotFirst
        /// Two `To` lines with the address.
        case twoToLines
        /// No confirm link although the mail should have one.
        case missingConfirmLink
        /// The message ID appears twice.
        case messageIDTwice
        /// Right for the stand-ins, wrong for any other parts: the proof catches it.
        case wrongForOtherParts

        func render(_ parts: MessageTemplate.Parts) -> [UInt8] {
            var message = String(decoding: toyMessage(parts), as: UTF8.self)
            let unsubscribe = parts.unsubscribeToken.value
            switch self {
            case .partialToken:
                message = message.replacingOccurrences(of: unsubscribe, with: String(unsubscribe.prefix(20)))
            case .tokenChangesLength:
                message = message.replacingOccurrences(of: unsubscribe, with: unsubscribe.replacingOccurrences(of: "B", with: "%42"))
            case .dateNotFirst:
                message = "X-First: 1\r\n" + message
            case .twoToLines:
                message = message.replacingOccurrences(of: "\r\n\r\n", with: "\r\nTo: \(parts.recipient)\r\n\r\n")
            case .missingConfirmLink:
                message = message.replacingOccurrences(of: parts.confirmToken?.value ?? "", with: "")
            case .messageIDTwice:
                message += "\(parts.messageIDDigits)\r\n"
            case .wrongForOtherParts:
                message = message.replacingOccurrences(of: "Check", with: "Czech")
            }
            return Array(message.utf8)
        }
    }
}

/// A small message laid out as the renderer lays one out, with quoted-printable soft line breaks
/// falling inside the tokens.
private func toyMessage(_ parts: MessageTemplate.Parts) -> [UInt8] {
    let unsubscribe = parts.unsubscribeToken.value
    let confirm = parts.confirmToken?.value ?? ""
    let text =
        "Date: \(MIMERenderer.rfc5322Date(parts.date))\r\nFrom: w@example.org\r\nTo: \(parts.recipient)\r\n"
        + "Message-ID: <\(parts.messageIDDigits)@example.org>\r\nList-Unsubscribe: <https://x.example/u/\(unsubscribe)>\r\n\r\n"
        + "Confirm: https://x.example/confirm/\(confirm.prefix(30))=\r\n\(confirm.dropFirst(30))\r\n"
        + "Leave: https://x.example/u/\(unsubscribe.prefix(7))=\r\n\(unsubscribe.dropFirst(7))\r\n"
    return Array(text.utf8)
}

/// The 32 hex digits of a rendered message's `Message-ID`.
private func messageIDDigits(in bytes: [UInt8]) -> String? {
    let text = String(decoding: bytes, as: UTF8.self)
    guard let start = text.range(of: "\r\nMessage-ID: <")?.upperBound else { return nil }
    let digits = text[start...].prefix(32)
    return digits.count == 32 && digits.allSatisfy(\.isHexDigit) ? String(digits) : nil
}

/// A delivery of either kind, in either language, for a course and opening with random text, to a
/// random address (ASCII of any length, non-ASCII, or with characters a header drops).
private func randomDelivery(using generator: inout SplitMix64) -> Delivery {
    let kind: MailKind = Bool.random(using: &generator) ? .announcement : .confirmation
    let title =
        Bool.random(using: &generator)
        ? randomText(using: &generator, maxPieces: 80)
        : ["Переговоры и отношения с клиентами", "Negotiation & <client> \"relations\"", String(repeating: "Длинное название ", count: 12)]
            .randomElement(using: &generator)!
    let course = Course(id: 1, slug: "course", title: title, enrolURL: nil, createdAt: Date(timeIntervalSince1970: 0))
    let date =
        Bool.random(using: &generator)
        ? String(
            format: "%04d-%02d-%02d", Int.random(in: 2026...2099, using: &generator), Int.random(in: 1...12, using: &generator),
            Int.random(in: 1...28, using: &generator))
        : randomText(using: &generator, maxPieces: 12)
    let enrolURL =
        "https://school.example/enrol?course=" + String(repeating: "x", count: Int.random(in: 0...120, using: &generator))
        + randomText(using: &generator, maxPieces: 10)
    let opening = Opening(id: 1, courseId: 1, date: date, enrolURL: enrolURL, openedAt: Date(timeIntervalSince1970: 0), closedAt: nil)
    let local = String((0..<Int.random(in: 1...64, using: &generator)).map { _ in "abcxyz019.+-_".randomElement(using: &generator)! })
    let recipients = [
        "\(local)@example.org", "анна@пример.рф", "\(local)@\(String(repeating: "sub.", count: 40))example.org", "a b\u{7}@example.org",
    ]
    return Delivery(
        outboxId: 1, kind: kind, recipient: recipients.randomElement(using: &generator)!,
        language: Bool.random(using: &generator) ? .ru : .en, course: course, opening: kind == .announcement ? opening : nil,
        confirmToken: kind == .confirmation ? Token.generate() : nil, unsubscribeToken: Token.generate(), attempt: 1)
}
