import Foundation
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

// MARK: - Cases

/// One message to render and read back, with what a reader must find in it.
private struct RoundTripCase: Sendable, CustomTestStringConvertible {
    var label: String
    var subject: String
    var fromName: String? = "Waitlist"
    var toName: String? = nil
    var text: String = "Hello.\n"
    var html: String? = nil
    var extraHeaders: [(name: String, value: String)] = []
    /// The extra headers a reader must find, in order, when the renderer leaves some out or renames them.
    var expectedExtraHeaders: [(name: String, value: String)]? = nil

    var testDescription: String { label }

    /// The message this case renders.
    func message(id: String = "case@example.org") -> MailMessage {
        MailMessage(
            from: Mailbox(displayName: fromName, address: "waitlist@example.org"),
            to: Mailbox(displayName: toName, address: "student@example.net"),
            subject: subject,
            text: text,
            html: html,
            extraHeaders: extraHeaders,
            messageID: id,
            date: Date(timeIntervalSince1970: 1_795_913_799)
        )
    }
}

/// The inputs every round trip is tried with.
private let roundTripCases: [RoundTripCase] = [
    RoundTripCase(
        label: "plain ASCII",
        subject: "Please confirm your place on the waitlist",
        text: "Hello,\n\nconfirm here: http://127.0.0.1:8080/confirm/abc123\n"
    ),
    RoundTripCase(
        label: "Russian course title everywhere",
        subject: "Переговоры и отношения с клиентами",
        fromName: "Переговоры и отношения с клиентами",
        toName: "Иван Петров",
        text: "Здравствуйте!\n\nЗапись на курс «Переговоры и отношения с клиентами» открыта.\n",
        html: "<p>Здравствуйте!</p>\n<p>Запись на курс «Переговоры и отношения с клиентами» открыта.</p>\n",
        extraHeaders: [(name: "X-Course", value: "Переговоры и отношения с клиентами")]
    ),
    RoundTripCase(
        label: "emoji, ZWJ families and flags",
        subject: "🎉 Enrolment is open 👩‍👩‍👧‍👦 🇷🇺 ✅",
        fromName: "Team 🚀",
        toName: "👩🏽‍💻",
        text: "Party 🎉🎉🎉 and a family 👩‍👩‍👧‍👦\n",
        html: "<b>🎉</b>"
    ),
    RoundTripCase(
        label: "long ASCII subject is folded",
        subject: String(repeating: "Negotiation and client relations course opens soon ", count: 8),
        text: "x"
    ),
    RoundTripCase(
        label: "long Russian subject is folded",
        subject: String(repeating: "Переговоры и отношения с клиентами — ", count: 6),
        fromName: String(repeating: "Школа переговоров ", count: 5)
    ),
    RoundTripCase(
        label: "lines starting with a dot",
        subject: "dots",
        text: ".\n..\n.leading dot\nmiddle\n.",
        html: ".<p>\n.</p>"
    ),
    RoundTripCase(
        label: "long lines and trailing whitespace",
        subject: "long lines",
        text: String(repeating: "abcdefghij", count: 500) + "\n" + String(repeating: "Щ", count: 3000) + "\n"
            + "trailing spaces   \n\ttabs\t\n" + String(repeating: "=", count: 200) + " \n"
            + String(repeating: " ", count: 100) + "\n" + String(repeating: "x", count: 75) + "\n"
            + String(repeating: "y", count: 76),
        html: String(repeating: "<td class=\"cell\">ячейка</td>", count: 200)
    ),
    RoundTripCase(
        label: "text that looks like encoded-words",
        subject: "=?utf-8?B?SGVsbG8=?= and =?utf-8?q?x?=",
        fromName: "=?utf-8?Q?Evil?=",
        toName: "a=?b",
        text: "=?utf-8?B?SGVsbG8=?=\n=?\n?=\n",
        html: "<p>=?utf-8?q?x?=</p>",
        extraHeaders: [(name: "X-Note", value: "=?utf-8?B?SGVsbG8=?=")]
    ),
    RoundTripCase(
        label: "lines that look like boundaries",
        subject: "boundaries",
        text: "--=_Waitlist_Alternative_Part\n--=_Waitlist_Alternative_Part--\n--boundary\n--\n",
        html: "--=_Waitlist_Alternative_Part\r\n--boundary--"
    ),
    RoundTripCase(
        label: "CR and LF injection",
        subject: "Hello\r\nBcc: victim@example.org\r\n\r\nbody",
        fromName: "Eve\r\nBcc: eve@example.org",
        toName: "Bob\nX-Injected: 1",
        text: "ok",
        extraHeaders: [
            (name: "X-Tag\r\nBcc", value: "v\r\nX-Evil: 1"),
            (name: "X-Other", value: "a\rb\nc"),
        ],
        expectedExtraHeaders: [
            (name: "X-TagBcc", value: "v X-Evil: 1"),
            (name: "X-Other", value: "a b c"),
        ]
    ),
    RoundTripCase(
        label: "other control characters",
        subject: "bell\u{07} null\u{00} escape\u{1B}[31m del\u{7F} nel\u{85} ls\u{2028} tab\t vt\u{0B} ff\u{0C} c1\u{9B}",
        fromName: "Name\u{00}\u{08}",
        toName: "\u{07}\u{1B}",
        text: "null\u{00} bell\u{07} esc\u{1B} del\u{7F}\n",
        extraHeaders: [(name: "X-Ctl", value: "a\u{00}b\u{1F}c\u{7F}d\te")]
    ),
    RoundTripCase(
        label: "ASCII display names with specials",
        subject: "specials",
        fromName: "J. \"Bob\" O'Neil, Jr. (admin) <root>",
        toName: "back\\slash; colon: [x]@y"
    ),
    RoundTripCase(
        label: "surrounding and doubled whitespace",
        subject: "  spaced   out  ",
        fromName: "  lead and trail  ",
        toName: "double  space",
        text: "  \n\t\n",
        extraHeaders: [(name: "X-Space", value: " x  y ")]
    ),
    RoundTripCase(
        label: "empty fields",
        subject: "",
        fromName: "",
        toName: nil,
        text: "",
        html: "",
        extraHeaders: [(name: "X-Empty", value: "")]
    ),
    RoundTripCase(
        label: "every kind of line break in the body",
        subject: "breaks",
        text: "crlf\r\ncr\rlf\n\n\r\r\nend\r\n",
        html: "a\rb"
    ),
    RoundTripCase(
        label: "graphemes longer than one encoded-word",
        subject: "e" + String(repeating: "\u{301}", count: 60) + " and " + String(repeating: "👩‍👩‍👧‍👦", count: 12),
        fromName: String(repeating: "🏳️‍🌈", count: 20)
    ),
    RoundTripCase(
        label: "HTML full of equals signs and quotes",
        subject: "html",
        text: "see the HTML",
        html: "<a href=\"http://127.0.0.1:8080/confirm/a=b&c=d\">=3D =0A =</a>\n<!-- = -->"
    ),
    RoundTripCase(
        label: "announcement headers in order",
        subject: "Запись открыта",
        extraHeaders: [
            (name: "List-Unsubscribe", value: "<http://127.0.0.1:8080/unsubscribe/tok_123>"),
            (name: "List-Unsubscribe-Post", value: "List-Unsubscribe=One-Click"),
            (name: "Reply-To", value: "teacher@example.org"),
        ]
    ),
    RoundTripCase(
        label: "extra headers the renderer writes itself are left out",
        subject: "reserved",
        extraHeaders: [
            (name: "Content-Type", value: "text/evil"),
            (name: "subject", value: "second subject"),
            (name: "MIME-Version", value: "2.0"),
            (name: "Content-Transfer-Encoding", value: "binary"),
            (name: "\r\n", value: "nameless"),
            (name: String(repeating: "X", count: 77), value: "name too long"),
            (name: "X-Kept", value: "kept"),
        ],
        expectedExtraHeaders: [(name: "X-Kept", value: "kept")]
    ),
]

/// Renders messages and reads them back with a parser of its own (``IndependentMailParser``).
@Suite struct MIMERendererTests {
    // MARK: - Round trips

    @Test(arguments: roundTripCases)
    fileprivate func renderedMessageParsesBackToItsFields(_ testCase: RoundTripCase) throws {
        let message = testCase.message()
        let bytes = MIMERenderer.render(message)
        try expectWireFormat(bytes, asciiOnly: true)
        try expectRoundTrip(message, bytes: bytes, expectedExtraHeaders: testCase.expectedExtraHeaders)
    }

    @Test func randomUnicodeStringsRoundTrip() throws {
        let seed = ProcessInfo.processInfo.environment["WAITLIST_MIME_SEED"].flatMap { UInt64($0) } ?? 0x5EED_2026_1129
        var generator = SplitMix64(seed: seed)
        for iteration in 0..<400 {
            let html: String? = Int.random(in: 0..<3, using: &generator) == 0 ? nil : randomText(using: &generator, maxPieces: 200)
            let message = MailMessage(
                from: Mailbox(displayName: randomText(using: &generator, maxPieces: 40), address: "waitlist@example.org"),
                to: Mailbox(displayName: randomText(using: &generator, maxPieces: 40), address: "student@example.net"),
                subject: randomText(using: &generator, maxPieces: 120),
                text: randomText(using: &generator, maxPieces: 400),
                html: html,
                extraHeaders: [(name: "X-Random", value: randomText(using: &generator, maxPieces: 120))],
                messageID: MIMERenderer.makeMessageID(domain: "example.org"),
                date: Date(timeIntervalSince1970: Double(Int.random(in: 0..<4_000_000_000, using: &generator)))
            )
            let bytes = MIMERenderer.render(message)
            let context = "seed \(seed) (set WAITLIST_MIME_SEED to repeat), iteration \(iteration)"
            var passed = false
            do {
                passed = try expectWireFormat(bytes, asciiOnly: true, foldingExemptFields: ["X-Random"], context: context)
                passed = try expectRoundTrip(message, bytes: bytes, context: context) && passed
            } catch {
                Issue.record(error, "\(context)")
            }
            if !passed {
                print("MIMERenderer random round trip failed: \(context)")
                break
            }
        }
    }

    // MARK: - Wire format

    @Test func linesEndWithCRLFAndStayShort() throws {
        for testCase in roundTripCases {
            let bytes = MIMERenderer.render(testCase.message())
            #expect(bytes.suffix(2) == [13, 10], "\(testCase.label)")
            let lines = try IndependentMailParser.lines(of: bytes)
            #expect(lines.allSatisfy { $0.utf8.count <= 998 }, "\(testCase.label)")
        }
    }

    @Test func headerFieldsFoldAt78Characters() throws {
        let message = RoundTripCase(
            label: "long",
            subject: String(repeating: "Переговоры и отношения с клиентами ", count: 10),
            fromName: String(repeating: "Very Long School Name ", count: 8),
            toName: String(repeating: "Иван Петров ", count: 12),
            extraHeaders: [(name: "X-Long", value: String(repeating: "word ", count: 60))]
        ).message()
        let lines = try IndependentMailParser.lines(of: MIMERenderer.render(message))
        let headerLines = lines.prefix { !$0.isEmpty }
        #expect(headerLines.count > 10, "long fields should take several lines")
        for line in headerLines {
            #expect(line.utf8.count <= 78, "\(line)")
        }
    }

    @Test func anUnbreakableExtraHeaderValueStaysWholeOnOneLongLine() throws {
        let link = "<http://127.0.0.1:8080/unsubscribe/" + String(repeating: "t", count: 200) + ">"
        let message = RoundTripCase(label: "", subject: "s", extraHeaders: [(name: "List-Unsubscribe", value: link)]).message()
        let bytes = MIMERenderer.render(message)
        let lines = try IndependentMailParser.lines(of: bytes)
        #expect(lines.contains("List-Unsubscribe: \(link)"))
        #expect(lines.allSatisfy { $0.utf8.count <= 998 })
    }

    @Test func outputIsASCIIWhenAddressesAreASCII() {
        for testCase in roundTripCases {
            let bytes = MIMERenderer.render(testCase.message())
            #expect(bytes.allSatisfy { $0 < 0x80 }, "\(testCase.label)")
        }
    }

    @Test func nonASCIIAddressesAreWrittenAsTheyAre() throws {
        let message = MailMessage(
            from: Mailbox(displayName: "Школа", address: "waitlist@example.org"),
            to: Mailbox(displayName: nil, address: "иван@пример.рф"),
            subject: "s",
            text: "t",
            messageID: "id@example.org",
            date: Date(timeIntervalSince1970: 0)
        )
        let parsed = try IndependentMailParser.parse(MIMERenderer.render(message))
        #expect(parsed.field("To") == "иван@пример.рф")
    }

    @Test func boundaryOfTheRenderedMessageDoesNotOccurInItsParts() throws {
        var message = RoundTripCase(label: "", subject: "s", html: "<p>x</p>").message()
        let first = try IndependentMailParser.parse(MIMERenderer.render(message))
        let boundary = try #require(first.boundary)
        message.text = "--\(boundary)\n--\(boundary)--\n\(boundary)"
        message.html = "--\(boundary)--"
        let bytes = MIMERenderer.render(message)
        let lines = try IndependentMailParser.lines(of: bytes)
        #expect(lines.filter { $0.contains(boundary) }.count == 4, "Content-Type and three delimiters only")
        try expectRoundTrip(message, bytes: bytes)
    }

    @Test func quotedPrintableBodyLinesNeverStartWithADot() throws {
        let message = RoundTripCase(label: "", subject: "s", text: ".\n" + String(repeating: "a", count: 75) + "..\n.x").message()
        let lines = try IndependentMailParser.lines(of: MIMERenderer.render(message))
        let bodyLines = lines.drop { !$0.isEmpty }
        #expect(bodyLines.allSatisfy { !$0.hasPrefix(".") })
    }

    @Test func headersComeInTheDocumentedOrder() throws {
        let message = RoundTripCase(
            label: "",
            subject: "s",
            html: "<p>h</p>",
            extraHeaders: [
                (name: "List-Unsubscribe", value: "<http://x/u>"), (name: "List-Unsubscribe-Post", value: "List-Unsubscribe=One-Click"),
            ]
        ).message()
        let parsed = try IndependentMailParser.parse(MIMERenderer.render(message))
        #expect(
            parsed.fields.map(\.name) == [
                "Date", "From", "To", "Subject", "Message-ID", "MIME-Version", "List-Unsubscribe", "List-Unsubscribe-Post", "Content-Type",
            ]
        )
        #expect(parsed.field("MIME-Version") == "1.0")
        #expect(parsed.field("Content-Type")?.hasPrefix("multipart/alternative;") == true)
    }

    @Test func singlePartMessageIsQuotedPrintablePlainText() throws {
        let parsed = try IndependentMailParser.parse(MIMERenderer.render(RoundTripCase(label: "", subject: "s").message()))
        #expect(parsed.field("Content-Type") == "text/plain; charset=utf-8")
        #expect(parsed.field("Content-Transfer-Encoding") == "quoted-printable")
        #expect(parsed.html == nil)
    }

    // MARK: - Encoded-words

    @Test func encodedWordsAreShortWholeUTF8AndKeepGraphemesTogether() throws {
        let subject = String(repeating: "Переговоры 👩‍👩‍👧‍👦 🇷🇺 é ", count: 12)
        let message = RoundTripCase(
            label: "",
            subject: subject,
            fromName: String(repeating: "Школа 🚀 ", count: 10),
            extraHeaders: [(name: "X-A-Rather-Long-Header-Name-For-Testing", value: subject)]
        ).message()
        let parsed = try IndependentMailParser.parse(MIMERenderer.render(message))
        for name in ["Subject", "From", "X-A-Rather-Long-Header-Name-For-Testing"] {
            let value = try #require(parsed.field(name))
            let words = value.split(separator: " ").filter { $0.hasPrefix("=?") }
            #expect(words.count > 2, "\(name) should take several encoded-words")
            var graphemesWordByWord = 0
            var whole = ""
            for word in words {
                #expect(word.count <= 75, "\(word)")
                let decoded = try #require(try IndependentMailParser.decodeEncodedWord(word), "\(word) is not an encoded-word")
                graphemesWordByWord += decoded.count
                whole += decoded
            }
            #expect(graphemesWordByWord == whole.count, "a grapheme of \(name) was split across encoded-words")
        }
    }

    @Test func aGraphemeTooLongForOneWordIsSplitBetweenScalars() throws {
        let subject = "e" + String(repeating: "\u{301}", count: 60)
        let parsed = try IndependentMailParser.parse(MIMERenderer.render(RoundTripCase(label: "", subject: subject).message()))
        let value = try #require(parsed.field("Subject"))
        let words = value.split(separator: " ")
        #expect(words.count > 1)
        for word in words {
            // decodeEncodedWord throws when a word is not whole UTF-8 on its own.
            _ = try IndependentMailParser.decodeEncodedWord(word)
        }
        #expect(Array(try IndependentMailParser.decodeHeaderText(value).unicodeScalars) == Array(subject.unicodeScalars))
    }

    @Test func plainASCIISubjectIsNotEncoded() throws {
        let parsed = try IndependentMailParser.parse(MIMERenderer.render(RoundTripCase(label: "", subject: "Hello, world!").message()))
        #expect(parsed.field("Subject") == "Hello, world!")
    }

    // MARK: - Injection

    @Test func injectedLineBreaksNeverStartAHeader() throws {
        let attempts = ["\r\nBcc: x@y", "\nBcc: x@y", "\rBcc: x@y", "\r\n\r\nbody", "\u{2028}Bcc: x@y", "\u{85}Bcc: x@y", "\r\n Folded: x"]
        for attempt in attempts {
            let message = MailMessage(
                from: Mailbox(displayName: "Eve" + attempt, address: "eve@example.org" + attempt),
                to: Mailbox(displayName: "Bob" + attempt, address: "bob@example.org"),
                subject: "Hi" + attempt,
                text: "t",
                extraHeaders: [(name: "X-Tag" + attempt, value: "v" + attempt)],
                messageID: "id@example.org" + attempt,
                date: Date(timeIntervalSince1970: 0)
            )
            let bytes = MIMERenderer.render(message)
            try expectWireFormat(bytes, asciiOnly: true)
            let parsed = try IndependentMailParser.parse(bytes)
            #expect(
                parsed.fields.map(\.name) == [
                    "Date", "From", "To", "Subject", "Message-ID", "MIME-Version", parsed.fields[6].name, "Content-Type",
                    "Content-Transfer-Encoding",
                ],
                "\(attempt.debugDescription)"
            )
            #expect(parsed.fields[6].name.hasPrefix("X-Tag"))
            #expect(!parsed.fields.map(\.name).contains("Bcc"))
            #expect(parsed.text == "t")
            #expect(parsed.field("Message-ID")?.contains(" ") == false)
        }
    }

    // MARK: - Date and Message-ID

    @Test(arguments: [
        (1_795_913_799.0, "Sun, 29 Nov 2026 00:56:39 +0000"),
        (1_796_115_907.999, "Tue, 01 Dec 2026 09:05:07 +0000"),
        (1_835_481_599.0, "Tue, 29 Feb 2028 23:59:59 +0000"),
        (0.0, "Thu, 01 Jan 1970 00:00:00 +0000"),
    ])
    func dateHeaderIsRFC5322InUTC(seconds: Double, expected: String) throws {
        var message = RoundTripCase(label: "", subject: "s").message()
        message.date = Date(timeIntervalSince1970: seconds)
        let lines = try IndependentMailParser.lines(of: MIMERenderer.render(message))
        #expect(lines.first == "Date: \(expected)")
    }

    @Test func messageIDsAreRandomHexAtTheDomain() {
        let ids = (0..<2000).map { _ in MIMERenderer.makeMessageID(domain: "example.org") }
        #expect(Set(ids).count == ids.count)
        let hex = Set("0123456789abcdef")
        for id in ids {
            let parts = id.split(separator: "@", omittingEmptySubsequences: false)
            #expect(parts.count == 2 && parts[0].count == 32 && parts[0].allSatisfy(hex.contains) && parts[1] == "example.org", "\(id)")
        }
    }

    @Test func messageIDDomainLosesCharactersThatCannotStandThere() {
        #expect(MIMERenderer.makeMessageID(domain: "exa mple.org\r\n<x>").hasSuffix("@example.orgx"))
        #expect(MIMERenderer.makeMessageID(domain: "").hasSuffix("@localhost"))
    }

    @Test func messageIDHeaderWrapsTheIDInAngleBrackets() throws {
        var message = RoundTripCase(label: "", subject: "s").message()
        message.messageID = "1a2b3c@example.org"
        let parsed = try IndependentMailParser.parse(MIMERenderer.render(message))
        #expect(parsed.field("Message-ID") == "<1a2b3c@example.org>")
    }

    @Test func renderingTheSameMessageTwiceGivesTheSameBytes() {
        let message = roundTripCases[1].message()
        #expect(MIMERenderer.render(message) == MIMERenderer.render(message))
    }
}

// MARK: - Expectations shared by the tests

/// Records a failure unless `condition` holds; returns `condition`, so a caller can tell whether a
/// whole set of checks passed.
@discardableResult
private func check(_ condition: Bool, _ comment: @autoclosure () -> String, sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
    if !condition {
        Issue.record(Comment(rawValue: comment()), sourceLocation: sourceLocation)
    }
    return condition
}

/// Records a failure unless two strings are the same scalar by scalar (Swift's `==` would call
/// canonically equivalent strings equal and hide a change of normalization); returns whether they are.
@discardableResult
private func checkSame(
    _ actual: String,
    _ expected: String,
    _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) -> Bool {
    check(
        Array(actual.unicodeScalars) == Array(expected.unicodeScalars),
        "\(what): got \(actual.debugDescription), expected \(expected.debugDescription)",
        sourceLocation: sourceLocation
    )
}

/// Checks what every rendered message must be on the wire: CRLF line endings only (no bare CR or
/// LF), ending with CRLF; no line over 998 octets; header lines at most 78 characters (but in
/// `foldingExemptFields`); quoted-printable body lines at most 76; ASCII only when asked.
/// Returns whether all checks passed.
@discardableResult
private func expectWireFormat(
    _ bytes: [UInt8],
    asciiOnly: Bool,
    foldingExemptFields: Set<String> = [],
    context: String = "",
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> Bool {
    let lines = try IndependentMailParser.lines(of: bytes)
    var passed = check(lines.last == "", "the message should end with CRLF; \(context)", sourceLocation: sourceLocation)
    var inHeader = true
    var currentField = ""
    for line in lines {
        passed = check(line.utf8.count <= 998, "line over 998 octets; \(context)", sourceLocation: sourceLocation) && passed
        if line.isEmpty {
            inHeader = false
        }
        if inHeader {
            if let first = line.first, first != " " && first != "\t", let colon = line.firstIndex(of: ":") {
                currentField = String(line[..<colon])
            }
            if !foldingExemptFields.contains(currentField) {
                passed = check(line.utf8.count <= 78, "header line over 78: \(line); \(context)", sourceLocation: sourceLocation) && passed
            }
        } else {
            passed = check(line.utf8.count <= 76, "body line over 76: \(line); \(context)", sourceLocation: sourceLocation) && passed
        }
    }
    if asciiOnly {
        passed = check(bytes.allSatisfy { $0 < 0x80 }, "non-ASCII output; \(context)", sourceLocation: sourceLocation) && passed
    }
    return passed
}

/// Parses the rendered bytes back and checks that every field came through: subject, display
/// names, addresses, text, HTML and extra headers, exactly as a reader should see them (control
/// characters in headers replaced or dropped as documented, line breaks in bodies as LF), and that
/// no header other than the expected ones appeared. Returns whether all checks passed.
@discardableResult
private func expectRoundTrip(
    _ message: MailMessage,
    bytes: [UInt8],
    expectedExtraHeaders: [(name: String, value: String)]? = nil,
    context: String = "",
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> Bool {
    let parsed = try IndependentMailParser.parse(bytes)
    let extras = expectedExtraHeaders ?? message.extraHeaders.map { (name: $0.name, value: expectedHeaderText($0.value)) }
    var expectedNames = ["Date", "From", "To", "Subject", "Message-ID", "MIME-Version"] + extras.map(\.name) + ["Content-Type"]
    if message.html == nil {
        expectedNames.append("Content-Transfer-Encoding")
    }
    let names = parsed.fields.map(\.name)
    var passed = check(
        names == expectedNames, "header fields \(names), expected \(expectedNames); \(context)", sourceLocation: sourceLocation)

    let subject = try IndependentMailParser.decodeHeaderText(parsed.field("Subject") ?? "")
    passed = checkSame(subject, expectedHeaderText(message.subject), "Subject; \(context)", sourceLocation: sourceLocation) && passed
    for (field, mailbox) in [("From", message.from), ("To", message.to)] {
        let (displayName, address) = try IndependentMailParser.parseMailbox(parsed.field(field) ?? "")
        let expectedName = expectedHeaderText(mailbox.displayName ?? "")
        passed = checkSame(displayName ?? "", expectedName, "\(field) display name; \(context)", sourceLocation: sourceLocation) && passed
        passed = checkSame(address, mailbox.address, "\(field) address; \(context)", sourceLocation: sourceLocation) && passed
    }
    for (index, extra) in extras.enumerated() where 6 + index < parsed.fields.count {
        let decoded = try IndependentMailParser.decodeHeaderText(parsed.fields[6 + index].value)
        passed = checkSame(decoded, extra.value, "\(extra.name); \(context)", sourceLocation: sourceLocation) && passed
    }
    passed = checkSame(parsed.text, normalizedLineBreaks(message.text), "text; \(context)", sourceLocation: sourceLocation) && passed
    passed =
        check(
            (parsed.html == nil) == (message.html == nil), "html present: \(parsed.html != nil); \(context)", sourceLocation: sourceLocation
        ) && passed
    if let html = parsed.html, let expected = message.html {
        passed = checkSame(html, normalizedLineBreaks(expected), "html; \(context)", sourceLocation: sourceLocation) && passed
    }
    return passed
}

/// What a header's text must read as after rendering: every line break (CRLF counting as one, CR,
/// LF, VT, FF, NEL, U+2028, U+2029) and tab as one space, other control characters gone.
private func expectedHeaderText(_ text: String) -> String {
    let spaceLike: Set<UInt32> = [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x85, 0x2028, 0x2029]
    let scalars = Array(text.unicodeScalars)
    var result = String.UnicodeScalarView()
    var index = 0
    while index < scalars.count {
        let value = scalars[index].value
        if value == 0x0D, index + 1 < scalars.count, scalars[index + 1].value == 0x0A {
            result.append(" ")
            index += 2
            continue
        }
        if spaceLike.contains(value) {
            result.append(" ")
        } else if !(value < 0x20 || (0x7F...0x9F).contains(value)) {
            result.append(scalars[index])
        }
        index += 1
    }
    return String(result)
}

/// The text with CRLF and lone CR turned into LF, as a reader of the body sees its lines.
func normalizedLineBreaks(_ text: String) -> String {
    let scalars = Array(text.unicodeScalars)
    var result = String.UnicodeScalarView()
    var index = 0
    while index < scalars.count {
        if scalars[index] == "\r" {
            result.append("\n")
            if index + 1 < scalars.count, scalars[index + 1] == "\n" {
                index += 1
            }
        } else {
            result.append(scalars[index])
        }
        index += 1
    }
    return String(result)
}
