import Foundation

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

// MARK: - An independent parser

/// Why a rendered message could not be read back.
struct MailParseError: Error, CustomStringConvertible {
    var description: String
}

/// A message read back from rendered bytes.
struct ParsedMail {
    /// Header fields in order; values unfolded, without the whitespace after the colon, not yet decoded.
    var fields: [(name: String, value: String)]
    /// The `text/plain` part, decoded, with LF line breaks.
    var text: String
    /// The `text/html` part, decoded, with LF line breaks, if there is one.
    var html: String?
    /// The `multipart/alternative` boundary, if the message has one.
    var boundary: String?

    /// The value of the first field with this name, compared without regard to case.
    func field(_ name: String) -> String? {
        fields.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

extension IndependentMailParser {
    /// A rendered message read back into the fields the tests look at: addresses, subject, both
    /// bodies, the extra headers, the message ID and the date.
    static func message(_ mail: OutgoingMail) throws -> MailMessage {
        let parsed = try parse(mail.bytes)
        func mailbox(_ field: String) throws -> Mailbox {
            let (name, address) = try parseMailbox(parsed.field(field) ?? "")
            return Mailbox(displayName: name, address: address)
        }
        let standard: Set<String> = [
            "date", "from", "to", "subject", "message-id", "mime-version", "content-type", "content-transfer-encoding",
        ]
        let extras = try parsed.fields.filter { !standard.contains($0.name.lowercased()) }.map {
            (name: $0.name, value: try decodeHeaderText($0.value))
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        let to = try mailbox("To")
        guard to.address == mail.recipient else {
            throw MailParseError(description: "To \(to.address) is not the envelope's recipient \(mail.recipient)")
        }
        return MailMessage(
            from: try mailbox("From"), to: to, subject: try decodeHeaderText(parsed.field("Subject") ?? ""),
            text: parsed.text, html: parsed.html, extraHeaders: extras,
            messageID: (parsed.field("Message-ID") ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "<>")),
            date: formatter.date(from: parsed.field("Date") ?? "") ?? Date(timeIntervalSince1970: 0))
    }
}

/// A small RFC 5322 / MIME / RFC 2047 reader written for these tests, sharing no code with
/// ``MIMERenderer``; strict, so that anything the renderer gets wrong makes it throw.
enum IndependentMailParser {
    /// Splits a message at CRLF; throws on a bare CR or LF or on bytes that are not UTF-8. The last
    /// element is what follows the last CRLF (empty when the message ends with CRLF).
    static func lines(of bytes: [UInt8]) throws -> [String] {
        var lines: [String] = []
        var current: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 13 {
                guard index + 1 < bytes.count, bytes[index + 1] == 10 else {
                    throw MailParseError(description: "bare CR at offset \(index)")
                }
                lines.append(try utf8String(current))
                current = []
                index += 2
                continue
            }
            if byte == 10 {
                throw MailParseError(description: "bare LF at offset \(index)")
            }
            current.append(byte)
            index += 1
        }
        lines.append(try utf8String(current))
        return lines
    }

    /// Parses a whole message: header fields, then one text part or a `multipart/alternative` of
    /// text and HTML.
    static func parse(_ bytes: [UInt8]) throws -> ParsedMail {
        let allLines = try lines(of: bytes)
        guard let blank = allLines.firstIndex(of: "") else {
            throw MailParseError(description: "no blank line after the header")
        }
        let fields = try headerFields(allLines[..<blank])
        let body = Array(allLines[(blank + 1)...])
        let contentType = fields.first { $0.name.lowercased() == "content-type" }?.value ?? ""
        if contentType.lowercased().hasPrefix("multipart/alternative") {
            guard let boundary = parameter("boundary", of: contentType) else {
                throw MailParseError(description: "multipart without a boundary")
            }
            let parts = try multipartParts(body, boundary: boundary)
            guard parts.count == 2 else {
                throw MailParseError(description: "expected 2 parts, found \(parts.count)")
            }
            var text: String?
            var html: String?
            for part in parts {
                guard let partBlank = part.firstIndex(of: "") else {
                    throw MailParseError(description: "part without a blank line")
                }
                let partFields = try headerFields(part[..<partBlank])
                let decoded = try decodeBody(Array(part[(partBlank + 1)...]), fields: partFields)
                switch partFields.first(where: { $0.name.lowercased() == "content-type" })?.value {
                case "text/plain; charset=utf-8": text = decoded
                case "text/html; charset=utf-8": html = decoded
                case let other: throw MailParseError(description: "unexpected part type \(other ?? "none")")
                }
            }
            guard let text, let html else {
                throw MailParseError(description: "parts should be text/plain and text/html")
            }
            return ParsedMail(fields: fields, text: text, html: html, boundary: boundary)
        }
        guard contentType == "text/plain; charset=utf-8" else {
            throw MailParseError(description: "unexpected Content-Type \(contentType)")
        }
        return ParsedMail(fields: fields, text: try decodeBody(body, fields: fields), html: nil, boundary: nil)
    }

    /// Unfolds header lines into fields; throws on a line that is neither a field nor a continuation.
    static func headerFields(_ lines: ArraySlice<String>) throws -> [(name: String, value: String)] {
        var fields: [(name: String, value: String)] = []
        for line in lines {
            if line.hasPrefix(" ") || line.hasPrefix("\t") {
                guard !fields.isEmpty else {
                    throw MailParseError(description: "continuation before any field")
                }
                fields[fields.count - 1].value += line
                continue
            }
            guard let colon = line.firstIndex(of: ":") else {
                throw MailParseError(description: "not a header field: \(line)")
            }
            let name = String(line[..<colon])
            guard !name.isEmpty, name.utf8.allSatisfy({ (33...126).contains($0) }) else {
                throw MailParseError(description: "bad field name: \(name.debugDescription)")
            }
            fields.append((name: name, value: String(line[line.index(after: colon)...])))
        }
        return fields.map { (name: $0.name, value: String($0.value.drop { $0 == " " || $0 == "\t" })) }
    }

    /// A parameter of a `Content-Type` value, quoted or not.
    static func parameter(_ name: String, of value: String) -> String? {
        guard let range = value.range(of: "\(name)=") else { return nil }
        let rest = value[range.upperBound...]
        if rest.hasPrefix("\"") {
            return String(rest.dropFirst().prefix { $0 != "\"" })
        }
        return String(rest.prefix { $0 != ";" && $0 != " " })
    }

    /// The parts of a multipart body, each as its lines; the preamble and epilogue are dropped.
    static func multipartParts(_ lines: [String], boundary: String) throws -> [[String]] {
        var parts: [[String]] = []
        var current: [String]?
        for line in lines {
            if line == "--\(boundary)" {
                if let current { parts.append(current) }
                current = []
            } else if line == "--\(boundary)--" {
                if let current { parts.append(current) }
                return parts
            } else {
                current?.append(line)
            }
        }
        throw MailParseError(description: "no closing delimiter")
    }

    /// Decodes a body by its `Content-Transfer-Encoding`, into text with LF line breaks.
    static func decodeBody(_ lines: [String], fields: [(name: String, value: String)]) throws -> String {
        let encoding = fields.first { $0.name.lowercased() == "content-transfer-encoding" }?.value.lowercased()
        let bytes: [UInt8]
        switch encoding {
        case "quoted-printable":
            bytes = try decodeQuotedPrintable(lines)
        case "base64":
            guard let data = Data(base64Encoded: lines.joined()) else {
                throw MailParseError(description: "bad base64 body")
            }
            bytes = Array(data)
        default:
            bytes = Array(lines.joined(separator: "\r\n").utf8)
        }
        return normalizedLineBreaks(try utf8String(bytes))
    }

    /// Decodes quoted-printable lines (RFC 2045 §6.7): `=XX` escapes, soft line breaks, trailing
    /// whitespace dropped; throws on a malformed escape or an unescaped byte that must be escaped.
    static func decodeQuotedPrintable(_ lines: [String]) throws -> [UInt8] {
        var output: [UInt8] = []
        for (lineIndex, line) in lines.enumerated() {
            var bytes = Array(line.utf8)
            while let last = bytes.last, last == 32 || last == 9 {
                bytes.removeLast()
            }
            let isSoftBreak = bytes.last == UInt8(ascii: "=")
            if isSoftBreak {
                bytes.removeLast()
            }
            var index = 0
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "=") {
                    guard index + 2 < bytes.count,
                        let value = UInt8(String(decoding: bytes[(index + 1)...(index + 2)], as: UTF8.self), radix: 16)
                    else {
                        throw MailParseError(description: "bad escape in \(line)")
                    }
                    output.append(value)
                    index += 3
                    continue
                }
                guard (33...126).contains(byte) || byte == 32 || byte == 9 else {
                    throw MailParseError(description: "unescaped byte \(byte) in \(line)")
                }
                output.append(byte)
                index += 1
            }
            if !isSoftBreak && lineIndex < lines.count - 1 {
                output += [13, 10]
            }
        }
        return output
    }

    /// Decodes unstructured header text: encoded-words become their text, and whitespace between
    /// two adjacent encoded-words is dropped (RFC 2047 §6.2).
    static func decodeHeaderText(_ value: String) throws -> String {
        var result = ""
        var pendingWhitespace = ""
        var previousWasEncodedWord = false
        var index = value.startIndex
        while index < value.endIndex {
            if value[index] == " " || value[index] == "\t" {
                let end = value[index...].firstIndex { $0 != " " && $0 != "\t" } ?? value.endIndex
                pendingWhitespace = String(value[index..<end])
                index = end
                continue
            }
            let end = value[index...].firstIndex { $0 == " " || $0 == "\t" } ?? value.endIndex
            let token = value[index..<end]
            if let decoded = try decodeEncodedWord(token) {
                result += (previousWasEncodedWord ? "" : pendingWhitespace) + decoded
                previousWasEncodedWord = true
            } else {
                result += pendingWhitespace + token
                previousWasEncodedWord = false
            }
            pendingWhitespace = ""
            index = end
        }
        return result + pendingWhitespace
    }

    /// Decodes one RFC 2047 encoded-word in UTF-8, "B" or "Q"; nil when the token is not an
    /// encoded-word; throws when it is one but broken or not whole UTF-8 by itself.
    static func decodeEncodedWord(_ token: Substring) throws -> String? {
        guard token.hasPrefix("=?"), token.hasSuffix("?="), token.count >= 7 else { return nil }
        let inner = token.dropFirst(2).dropLast(2)
        let pieces = inner.split(separator: "?", omittingEmptySubsequences: false)
        guard pieces.count == 3 else { return nil }
        guard pieces[0].lowercased() == "utf-8" else {
            throw MailParseError(description: "unexpected charset in \(token)")
        }
        let bytes: [UInt8]
        switch pieces[1].uppercased() {
        case "B":
            guard let data = Data(base64Encoded: String(pieces[2])) else {
                throw MailParseError(description: "bad base64 in \(token)")
            }
            bytes = Array(data)
        case "Q":
            var decoded: [UInt8] = []
            var characters = Array(pieces[2].utf8)[...]
            while let byte = characters.popFirst() {
                if byte == UInt8(ascii: "_") {
                    decoded.append(32)
                } else if byte == UInt8(ascii: "=") {
                    guard characters.count >= 2, let value = UInt8(String(decoding: characters.prefix(2), as: UTF8.self), radix: 16) else {
                        throw MailParseError(description: "bad Q escape in \(token)")
                    }
                    decoded.append(value)
                    characters = characters.dropFirst(2)
                } else {
                    decoded.append(byte)
                }
            }
            bytes = decoded
        default:
            throw MailParseError(description: "unknown encoding in \(token)")
        }
        return try utf8String(bytes)
    }

    /// Splits a `From` or `To` value into the decoded display name (nil when there is none) and the address.
    static func parseMailbox(_ value: String) throws -> (displayName: String?, address: String) {
        guard value.hasSuffix(">"), let open = value.lastIndex(of: "<") else {
            return (nil, value)
        }
        let address = String(value[value.index(after: open)..<value.index(before: value.endIndex)])
        var phrase = value[..<open]
        guard phrase.last == " " else {
            throw MailParseError(description: "no space before the address in \(value)")
        }
        phrase.removeLast()
        guard phrase.hasPrefix("\"") else {
            return (try decodeHeaderText(String(phrase)), address)
        }
        var name = ""
        var characters = phrase.dropFirst()
        while let character = characters.popFirst() {
            if character == "\\" {
                guard let escaped = characters.popFirst() else {
                    throw MailParseError(description: "dangling backslash in \(value)")
                }
                name.append(escaped)
            } else if character == "\"" {
                guard characters.isEmpty else {
                    throw MailParseError(description: "text after the closing quote in \(value)")
                }
                return (name, address)
            } else {
                name.append(character)
            }
        }
        throw MailParseError(description: "unclosed quote in \(value)")
    }

    /// Bytes as a string, or an error when they are not valid UTF-8.
    static func utf8String(_ bytes: [UInt8]) throws -> String {
        guard let string = String(validating: bytes, as: UTF8.self) else {
            throw MailParseError(description: "invalid UTF-8")
        }
        return string
    }
}
