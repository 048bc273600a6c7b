import Foundation
import WaitlistCore

/// What a message that came back to a bounce address says, read from its bytes: the addresses its
/// recipient headers name, and whether it reports a permanent failure, a delay, or neither.
///
/// A delivery status notification (RFC 3464: `multipart/report` with a `message/delivery-status`
/// part) is read field by field; any other message counts as a plain bounce when a line of it
/// quotes an SMTP reply (`550 5.1.1 ...`, `host ... said: 550 ...`). Nothing in the input can make
/// the reading fail except input that is not a mail at all.
public struct BounceReport: Sendable, Equatable {
    /// What the report says about the delivery.
    /// What the report says about the message, in the terms storage records.
    public typealias Verdict = BounceVerdict

    /// The input is not a mail: no header block.
    public struct NotAMail: Error, Sendable, Equatable {
        public var reason: String
    }

    public var verdict: Verdict
    /// The addresses in the recipient headers (`Delivered-To`, `X-Original-To`, `Envelope-To`,
    /// `X-Envelope-To`, `To`, `Cc`), in that order: where a tag is looked for when none is given.
    public var recipientAddresses: [String]

    /// The headers that name where a message was delivered to, most precise first.
    static let recipientHeaders = ["delivered-to", "x-original-to", "envelope-to", "x-envelope-to", "to", "cc"]
    /// The most of a message that is read: a bounce is small, and the quoted original is not needed whole.
    public static let maximumSize = 4 * 1024 * 1024

    /// Reads a message as a Postfix pipe hands it (with or without a leading `From ` line, CRLF or LF).
    public init(_ bytes: [UInt8]) throws(NotAMail) {
        let text = String(decoding: bytes.prefix(Self.maximumSize), as: UTF8.self)
        var lines = Self.lines(text)
        if let first = lines.first, first.hasPrefix("From ") { lines.removeFirst() }
        guard let message = MIMEEntity(lines: lines[...]), !message.fields.isEmpty else {
            throw NotAMail(reason: "the input does not start with a header block")
        }
        recipientAddresses = Self.recipientHeaders.flatMap { name in
            message.fields(named: name).flatMap(Self.addresses(in:))
        }
        verdict = Self.verdict(of: message, depth: 0, plainBounce: Self.looksLikeBounce(message))
    }

    // MARK: - Reading the report

    /// Words of the subjects bounces that are no DSN carry (Postfix, Exim, qmail, Exchange, Gmail).
    static let bounceSubjects = [
        "undeliver", "delivery status", "delivery failure", "failure notice", "returned mail", "delivery has failed",
        "not delivered", "mail delivery failed", "delivery notification",
    ]

    /// Whether a message that is no DSN is a bounce at all: from a mailer daemon or postmaster, or
    /// with a bounce's subject and no auto-reply (an out-of-office note may quote anything).
    static func looksLikeBounce(_ message: MIMEEntity) -> Bool {
        let from = message.fields(named: "from").joined(separator: " ").lowercased()
        if from.contains("mailer-daemon") || from.contains("postmaster") { return true }
        if let submitted = message.fields(named: "auto-submitted").first, submitted.lowercased().hasPrefix("auto-replied") { return false }
        let subject = message.fields(named: "subject").joined(separator: " ").lowercased()
        return bounceSubjects.contains { subject.contains($0) }
    }

    /// The verdict of an entity: a delivery-status part decides; else its parts in order; else, in
    /// a `plainBounce`, its text.
    private static func verdict(of entity: MIMEEntity, depth: Int, plainBounce: Bool) -> Verdict {
        let type = entity.contentType
        if type == "message/delivery-status" || type == "message/global-delivery-status" {
            return deliveryStatusVerdict(entity.body)
        }
        if type.hasPrefix("multipart/"), depth < 4, let boundary = entity.parameter("boundary") {
            let parts = entity.parts(boundary: boundary).compactMap { MIMEEntity(lines: $0) }
            // A report decides by its status part; the returned original (message/rfc822, text/rfc822-headers) is never read.
            if let status = parts.first(where: { ["message/delivery-status", "message/global-delivery-status"].contains($0.contentType) }) {
                return deliveryStatusVerdict(status.body)
            }
            for part in parts where !part.contentType.hasPrefix("message/") && part.contentType != "text/rfc822-headers" {
                let verdict = verdict(of: part, depth: depth + 1, plainBounce: plainBounce)
                if verdict != .other { return verdict }
            }
            return .other
        }
        if plainBounce && (type.hasPrefix("text/") || type.isEmpty) {
            return quotedReplyVerdict(entity.body)
        }
        return .other
    }

    /// RFC 3464's per-recipient groups: the first that failed for good, else the first delayed one.
    private static func deliveryStatusVerdict(_ body: ArraySlice<String>) -> Verdict {
        var groups: [[String: String]] = []
        var current: [(String, String)] = []
        func flush() {
            if !current.isEmpty { groups.append(Dictionary(current, uniquingKeysWith: { first, _ in first })) }
            current = []
        }
        for field in MIMEEntity.unfold(body, stopAtBlank: false) {
            guard let field else {
                flush()
                continue
            }
            current.append(field)
        }
        flush()
        var delay: Verdict?
        for group in groups.dropFirst(groups.count > 1 ? 1 : 0) {
            let action = (group["action"] ?? "").lowercased().trimmingCharacters(in: .whitespaces)
            let status = (group["status"] ?? "").trimmingCharacters(in: .whitespaces)
            let diagnostic = cleanDiagnostic(group["diagnostic-code"] ?? status)
            if action == "failed" && status.hasPrefix("5.") {
                return .permanent(diagnostic: diagnostic)
            }
            if delay == nil && (action == "delayed" || status.hasPrefix("4.") || (action == "failed" && !status.hasPrefix("5."))) {
                delay = .delayed(diagnostic: diagnostic)
            }
        }
        return delay ?? .other
    }

    /// A plain bounce: the first line quoting an SMTP reply `5xx` or `4xx`, at the start of the
    /// line or after a colon (`said: 550 ...`).
    private static func quotedReplyVerdict(_ body: ArraySlice<String>) -> Verdict {
        for line in body.prefix(2000) {
            guard let reply = quotedReply(in: line) else { continue }
            let diagnostic = cleanDiagnostic(reply)
            return reply.hasPrefix("5") ? .permanent(diagnostic: diagnostic) : .delayed(diagnostic: diagnostic)
        }
        return .other
    }

    /// `550 5.1.1 ...` or `550-...` found at the start of `line` or after a `:`; `nil` otherwise.
    /// A 4xx or 5xx code counts only when an enhanced status of the same class follows it, or the
    /// text after it is words: a date or a price on a line of its own is no reply.
    static func quotedReply(in line: String) -> String? {
        let scalars = Array(line.unicodeScalars.prefix(1000))
        var starts = [0]
        for (index, scalar) in scalars.enumerated() where scalar == ":" && starts.count < 20 { starts.append(index + 1) }
        for start in starts {
            var index = start
            while index < scalars.count, scalars[index] == " " || scalars[index] == "\t" || scalars[index] == "(" { index += 1 }
            guard index + 4 <= scalars.count else { continue }
            let code = scalars[index..<index + 3]
            guard let first = code.first, first == "4" || first == "5", code.allSatisfy({ ("0"..."9").contains($0) }),
                scalars[index + 3] == " " || scalars[index + 3] == "-"
            else { continue }
            let rest = String(String.UnicodeScalarView(scalars[(index + 4)...])).trimmingCharacters(in: .whitespaces)
            let enhanced = rest.hasPrefix("\(Character(first)).")
            let wordy = rest.split(separator: " ").filter { $0.count > 1 && $0.allSatisfy(\.isLetter) }.count >= 2
            guard enhanced || wordy else { continue }
            return String(String.UnicodeScalarView(scalars[index...]))
        }
        return nil
    }

    /// A diagnostic as stored: the type (`smtp;`) left out, printable, without addresses, at most 500 characters.
    static func cleanDiagnostic(_ text: String) -> String {
        var value = text.trimmingCharacters(in: .whitespaces)
        if let semicolon = value.firstIndex(of: ";"), value[..<semicolon].allSatisfy({ $0.isLetter || $0 == "-" }) {
            value = value[value.index(after: semicolon)...].trimmingCharacters(in: .whitespaces)
        }
        let printable = value.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : Character($0) }
        return RelayReply.withoutAddresses(String(String(printable).prefix(500)))
    }

    // MARK: - Lines and addresses

    /// The lines of a text, whether they end in CRLF or LF.
    static func lines(_ text: String) -> [String] {
        // By scalars: "\r\n" is one Character, which a split on "\n" would not see.
        text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            var scalars = String.UnicodeScalarView(line)
            if scalars.last == "\r" { scalars.removeLast() }
            return String(scalars)
        }
    }

    /// The addresses in a header value: every `<...>`, else every word with an `@`.
    static func addresses(in value: String) -> [String] {
        var found: [String] = []
        var rest = Substring(value)
        while let open = rest.firstIndex(of: "<"), let close = rest[open...].firstIndex(of: ">") {
            found.append(String(rest[rest.index(after: open)..<close]).trimmingCharacters(in: .whitespaces))
            rest = rest[rest.index(after: close)...]
        }
        if found.isEmpty {
            found = value.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\t" }).filter { $0.contains("@") }.map {
                $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"'();"))
            }
        }
        return found.filter { $0.contains("@") }
    }
}

/// One MIME entity: its header fields (unfolded, names in lower case) and its body lines.
struct MIMEEntity {
    var fields: [(name: String, value: String)]
    var body: ArraySlice<String>

    /// Reads the header block at the start of `lines`; `nil` when the first line is no header field.
    /// (A part with no headers at all starts with its blank line and is plain text.)
    init?(lines: ArraySlice<String>) {
        if let first = lines.first, first.isEmpty {
            fields = []
            body = lines.dropFirst()
            return
        }
        guard let first = lines.first, Self.field(first) != nil else { return nil }
        var headerEnd = lines.endIndex
        for index in lines.indices where lines[index].isEmpty {
            headerEnd = index
            break
        }
        fields = Self.unfold(lines[lines.startIndex..<headerEnd], stopAtBlank: true).compactMap { $0 }.map { (name: $0.0, value: $0.1) }
        body = headerEnd < lines.endIndex ? lines[(headerEnd + 1)...] : []
    }

    /// The values of every field with this (lower-case) name.
    func fields(named name: String) -> [String] {
        fields.filter { $0.name == name }.map(\.value)
    }

    /// The media type in lower case, without parameters; empty when there is no Content-Type.
    var contentType: String {
        guard let value = fields(named: "content-type").first else { return "" }
        return value.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
    }

    /// A parameter of the Content-Type (`boundary`), unquoted.
    func parameter(_ name: String) -> String? {
        guard let value = fields(named: "content-type").first else { return nil }
        for parameter in value.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces).lowercased() == name else { continue }
            var result = pair[1].trimmingCharacters(in: .whitespaces)
            if result.count >= 2, result.hasPrefix("\""), result.hasSuffix("\"") { result = String(result.dropFirst().dropLast()) }
            return result.isEmpty ? nil : result
        }
        return nil
    }

    /// The body's parts between `--boundary` lines, up to `--boundary--`.
    func parts(boundary: String) -> [ArraySlice<String>] {
        let delimiter = "--" + boundary
        var parts: [ArraySlice<String>] = []
        var start: Int?
        for index in body.indices {
            let line = body[index]
            guard line.hasPrefix(delimiter) else { continue }
            let after = line.dropFirst(delimiter.count)
            let closing = after.hasPrefix("--")
            guard closing || after.allSatisfy({ $0 == " " || $0 == "\t" }) else { continue }
            if let start { parts.append(body[start..<index]) }
            start = closing ? nil : index + 1
            if closing { break }
            if parts.count >= 100 { break }
        }
        return parts
    }

    /// `Name: value` split, the name lower-cased; `nil` for a line that is no field.
    static func field(_ line: String) -> (String, String)? {
        guard let colon = line.firstIndex(of: ":") else { return nil }
        let name = line[..<colon]
        guard !name.isEmpty, name.unicodeScalars.allSatisfy({ $0.value > 32 && $0.value < 127 }) else { return nil }
        return (name.lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
    }

    /// Fields with their continuation lines joined; a blank line gives `nil` (a group's end), or
    /// ends the reading when `stopAtBlank`. Lines that are neither fields nor continuations are skipped.
    static func unfold(_ lines: ArraySlice<String>, stopAtBlank: Bool) -> [(String, String)?] {
        var result: [(String, String)?] = []
        for line in lines {
            if line.trimmingCharacters(in: .whitespaces).isEmpty {
                if stopAtBlank { break }
                if let last = result.last, last != nil { result.append(nil) }
                continue
            }
            if let first = line.first, first == " " || first == "\t" {
                if let last = result.last, case (let name, let value)? = last {
                    result[result.count - 1] = (name, value + " " + line.trimmingCharacters(in: .whitespaces))
                }
                continue
            }
            if let field = field(line) { result.append(field) }
        }
        return result
    }
}
