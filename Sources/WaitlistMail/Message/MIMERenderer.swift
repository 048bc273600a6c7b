import Foundation
import NIOConcurrencyHelpers
import WaitlistCore

/// Turns a ``MailMessage`` into the bytes of an RFC 5322 / MIME message, ready for SMTP `DATA` or
/// an `.eml` file.
///
/// The output:
/// - has the header fields `Date`, `From`, `To`, `Subject`, `Message-ID`, `MIME-Version`, the
///   message's extra headers in their order, then `Content-Type` and (for a single part)
///   `Content-Transfer-Encoding`;
/// - is one `text/plain; charset=utf-8` part, or `multipart/alternative` with the text first and
///   the HTML second when the message has HTML;
/// - ends every line with CRLF, never holds a bare CR or LF, keeps every line within 998 octets
///   and folds header fields at 78 characters wherever a field can be folded;
/// - is 7-bit ASCII, except for addresses with a non-ASCII local part or domain, which are written
///   as UTF-8 as they are (RFC 6532; the transport sends such messages with SMTPUTF8);
/// - is the same bytes every time the same message is rendered, so a retried message is the same
///   message.
///
/// Two encodings are chosen here:
/// - **Bodies are quoted-printable**, not base64. These mails are short, so base64's smaller size
///   for Cyrillic hardly matters, while quoted-printable keeps links, English text and HTML markup
///   legible in a raw message or `.eml` file and keeps the text's own lines. It also makes the
///   multipart boundary safe by construction: quoted-printable output never contains `=_` (every
///   `=` is followed by two hex digits or ends a line), and the boundary starts with `=_`.
/// - **Header text that cannot go as it is becomes RFC 2047 "B" encoded-words** in UTF-8. "B" has
///   one rule wherever the word stands, while the characters "Q" may leave bare differ between a
///   display name and a subject (RFC 2047 §5); and for Russian, the default language, "B" is about
///   half as long as "Q", so a subject needs fewer words and folds.
///
/// Nothing a caller passes reaches a header raw. In a subject, display name or header value every
/// line break (CR, LF, CRLF, VT, FF, NEL, U+2028, U+2029) and tab becomes one space and every other
/// control character is dropped; addresses and the message ID lose control characters and
/// whitespace; header names keep only the characters RFC 5322 allows in a field name. Extra headers
/// whose name is empty, longer than 76 characters, or one the renderer writes itself (`Date`,
/// `From`, `To`, `Subject`, `Message-ID`, `MIME-Version`, `Content-*`) are left out.
public enum MIMERenderer {
    /// Renders a complete message: header section, blank line, body; every line ends with CRLF.
    public static func render(_ message: MailMessage) -> [UInt8] {
        var head = ""
        head += foldedField(name: "Date", tokens: [HeaderToken(text: rfc5322Date(message.date))])
        head += foldedField(name: "From", tokens: mailboxTokens(message.from, fieldName: "From"))
        head += foldedField(name: "To", tokens: mailboxTokens(message.to, fieldName: "To"))
        head += foldedField(
            name: "Subject",
            tokens: unstructuredTokens(message.subject, fieldName: "Subject", lineLimit: foldingWidth)
        )
        head += foldedField(name: "Message-ID", tokens: [HeaderToken(text: "<\(messageIDForHeader(message.messageID))>")])
        head += "MIME-Version: 1.0\r\n"
        if let listID = message.listID {
            head += foldedField(name: "List-Id", tokens: listIDTokens(listID))
        }
        for header in message.extraHeaders {
            guard let name = extraHeaderName(header.name) else { continue }
            head += foldedField(name: name, tokens: unstructuredTokens(header.value, fieldName: name, lineLimit: extraHeaderLineLimit))
        }
        var output: [UInt8] = []
        output.reserveCapacity(head.utf8.count + 3 * (message.text.utf8.count + (message.html?.utf8.count ?? 0)) + 512)
        if let html = message.html {
            head += "Content-Type: multipart/alternative; boundary=\"\(alternativeBoundary)\"\r\n"
            head += "\r\n"
            head += "--\(alternativeBoundary)\r\n"
            head += textPartHeaders(subtype: "plain")
            head += "\r\n"
            output += head.utf8
            appendQuotedPrintable(message.text, to: &output)
            output += "\r\n--\(alternativeBoundary)\r\n".utf8
            output += textPartHeaders(subtype: "html").utf8
            output += "\r\n".utf8
            appendQuotedPrintable(html, to: &output)
            output += "\r\n--\(alternativeBoundary)--\r\n".utf8
        } else {
            head += textPartHeaders(subtype: "plain")
            head += "\r\n"
            output += head.utf8
            // A text that does not end with a line break ends with a soft line break, so the
            // message still ends with CRLF and the text decodes without a line break it never had.
            if appendQuotedPrintable(message.text, to: &output) {
                output += "=\r\n".utf8
            }
        }
        return output
    }

    /// Makes a fresh message ID, `<32 hex digits>@domain`, from 128 bits of the system's secure
    /// random generator; characters that cannot stand in a message ID are dropped from the domain,
    /// and an empty domain becomes `localhost`.
    public static func makeMessageID(domain: String) -> String {
        "\(makeMessageIDDigits())@\(messageIDDomain(domain))"
    }

    /// 128 bits of the system's secure random generator as 32 hex digits, the part of a message
    /// ID before `@`.
    static func makeMessageIDDigits() -> String {
        SecureRandom.hexDigits(16)
    }

    /// A domain as it can stand after the `@` of a message ID: without the characters that cannot,
    /// and `localhost` when nothing is left.
    static func messageIDDomain(_ domain: String) -> String {
        let forbidden: Set<Unicode.Scalar> = ["<", ">", "@", "\"", "\\", "(", ")", ",", ";"]
        let cleanDomain = String(
            String.UnicodeScalarView(domain.unicodeScalars.filter { !isControlOrWhitespace($0) && !forbidden.contains($0) })
        )
        return cleanDomain.isEmpty ? "localhost" : cleanDomain
    }

    // MARK: - Limits

    /// Where header fields are folded (RFC 5322 §2.1.1: lines SHOULD be at most 78 characters).
    static let foldingWidth = 78
    /// The longest line RFC 5322 allows, CRLF not counted.
    static let maxLineLength = 998
    /// How long an extra header's line may grow before its value is encoded instead of written as
    /// it is. Extra values may be structured (`List-Unsubscribe: <https://...>`), and an
    /// encoded-word there would break them, so a long unbreakable value stays whole on a long line;
    /// the margin keeps the line within 998 octets.
    static let extraHeaderLineLimit = 900
    /// The longest encoded-word RFC 2047 allows.
    static let maxEncodedWordLength = 75
    /// The boundary of the `multipart/alternative` body. It starts with `=_`, which quoted-printable
    /// output never contains, so it cannot occur in either part.
    static let alternativeBoundary = "=_Waitlist_Alternative_Part"
    /// Header names the renderer writes itself, lowercased; extra headers with these names are left out.
    static let reservedHeaderNames: Set<String> = ["date", "from", "to", "subject", "message-id", "mime-version", "list-id"]

    // MARK: - Header fields

    /// One piece of a header field's value and the whitespace before it, where the field may be folded.
    struct HeaderToken {
        /// The whitespace before the token, where a fold may go; not empty, except for the first
        /// token, which always follows the single space after the colon instead.
        var separator = " "
        /// The token itself; it holds no whitespace that could be taken for a fold.
        var text: String
    }

    /// Writes `name:` and the tokens, each after its separator, starting a new line (before the
    /// separator) whenever a token would carry the line past 78 characters; ends with CRLF.
    /// A token too long for any line stays whole on a longer one.
    static func foldedField(name: String, tokens: [HeaderToken]) -> String {
        var lines = ["\(name):"]
        for (index, token) in tokens.enumerated() {
            let piece = (index == 0 ? " " : token.separator) + token.text
            if index == 0 || lines[lines.count - 1].utf8.count + piece.utf8.count <= foldingWidth {
                lines[lines.count - 1] += piece
            } else {
                lines.append(piece)
            }
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    /// The tokens of unstructured text (a subject, an extra header's value): the words as they are
    /// when the text is printable ASCII without surrounding spaces and every word fits within
    /// `lineLimit`, otherwise encoded-words.
    static func unstructuredTokens(_ rawText: String, fieldName: String, lineLimit: Int) -> [HeaderToken] {
        let text = headerText(rawText)
        guard !text.isEmpty else { return [] }
        if isPrintableASCII(text), text.first != " ", text.last != " " {
            let words = plainWords(text)
            if fits(words, fieldName: fieldName, lineLimit: lineLimit) {
                return words
            }
        }
        return encodedWords(text, fieldName: fieldName)
    }

    /// The tokens of a `From` or `To` field: the display name, if any, then `<address>`; or the bare
    /// address when there is no display name.
    static func mailboxTokens(_ mailbox: Mailbox, fieldName: String) -> [HeaderToken] {
        let address = headerAddress(mailbox.address)
        let phrase = displayNameTokens(mailbox.displayName ?? "", fieldName: fieldName)
        if phrase.isEmpty {
            return [HeaderToken(text: address)]
        }
        return phrase + [HeaderToken(text: "<\(address)>")]
    }

    /// The tokens of a `List-Id` field: the title as a quoted string when it is printable ASCII
    /// that fits, encoded-words otherwise, then `<id>` (without anything that cannot stand in a
    /// dot-atom between angle brackets).
    static func listIDTokens(_ listID: ListID) -> [HeaderToken] {
        let id = String(decoding: listID.id.utf8.filter { isAtext($0) || $0 == UInt8(ascii: ".") }, as: UTF8.self)
        let title = headerText(listID.title)
        var phrase: [HeaderToken]
        if isPrintableASCII(title), !title.contains("\""), !title.contains("\\"), "List-Id: \"\(title)\"".utf8.count <= foldingWidth {
            phrase = [HeaderToken(text: "\"\(title)\"")]
        } else {
            phrase = title.isEmpty ? [] : encodedWords(title, fieldName: "List-Id")
        }
        return phrase + [HeaderToken(text: "<\(id)>")]
    }

    /// An address as it stands in a header: without control characters and whitespace.
    static func headerAddress(_ address: String) -> String {
        if address.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) { return address }
        return String(String.UnicodeScalarView(address.unicodeScalars.filter { !isControlOrWhitespace($0) }))
    }

    /// The tokens of a display name: atoms when it is plain words of RFC 5322 `atext`, a quoted
    /// string when it is other printable ASCII that fits on the field's first line, encoded-words
    /// otherwise.
    static func displayNameTokens(_ rawName: String, fieldName: String) -> [HeaderToken] {
        let name = headerText(rawName)
        guard !name.isEmpty else { return [] }
        if isPrintableASCII(name) {
            let words = plainWords(name)
            let isAtomPhrase =
                name.first != " " && name.last != " "
                && words.allSatisfy { $0.separator.utf8.count <= 1 && $0.text.utf8.allSatisfy(isAtext) }
            if isAtomPhrase && fits(words, fieldName: fieldName, lineLimit: foldingWidth) {
                return words
            }
            var quoted = "\""
            for character in name {
                if character == "\"" || character == "\\" {
                    quoted.append("\\")
                }
                quoted.append(character)
            }
            quoted.append("\"")
            if fieldName.utf8.count + 2 + quoted.utf8.count <= foldingWidth {
                return [HeaderToken(text: quoted)]
            }
        }
        return encodedWords(name, fieldName: fieldName)
    }

    /// Splits printable ASCII text at its spaces; each word keeps the run of spaces before it as its
    /// separator (empty for the first word when the text does not start with a space).
    static func plainWords(_ text: String) -> [HeaderToken] {
        var words: [HeaderToken] = []
        var separator = ""
        var word = ""
        for character in text {
            if character == " " {
                if !word.isEmpty {
                    words.append(HeaderToken(separator: separator, text: word))
                    separator = ""
                    word = ""
                }
                separator.append(" ")
            } else {
                word.append(character)
            }
        }
        if !word.isEmpty {
            words.append(HeaderToken(separator: separator, text: word))
        }
        return words
    }

    /// Whether every word fits on a line of `lineLimit`: the first after `name: `, the others on a
    /// continuation line after their separator.
    static func fits(_ words: [HeaderToken], fieldName: String, lineLimit: Int) -> Bool {
        words.enumerated().allSatisfy { index, word in
            let prefixLength = index == 0 ? fieldName.utf8.count + 2 : word.separator.utf8.count
            return prefixLength + word.text.utf8.count <= lineLimit
        }
    }

    /// Encodes text as RFC 2047 "B" encoded-words in UTF-8: each at most 75 characters, the first
    /// one short enough to share the first line with `name: `. Words split only between grapheme
    /// clusters; a cluster too long for one word (a very long combining sequence) is split between
    /// its Unicode scalars, never inside a scalar's UTF-8 bytes.
    static func encodedWords(_ text: String, fieldName: String) -> [HeaderToken] {
        let wordOverhead = "=?utf-8?B??=".utf8.count
        // Enough room for one 4-byte scalar, whatever the field name's length.
        let smallestWord = wordOverhead + 8
        let firstWordLength = min(maxEncodedWordLength, max(smallestWord, foldingWidth - fieldName.utf8.count - 2))
        func payloadCapacity(wordLength: Int) -> Int { (wordLength - wordOverhead) / 4 * 3 }

        var words: [HeaderToken] = []
        var chunk: [UInt8] = []
        var capacity = payloadCapacity(wordLength: firstWordLength)
        func flush() {
            words.append(HeaderToken(text: "=?utf-8?B?\(Data(chunk).base64EncodedString())?="))
            chunk = []
            capacity = payloadCapacity(wordLength: maxEncodedWordLength)
        }
        for character in text {
            let bytes = Array(character.utf8)
            if chunk.count + bytes.count <= capacity {
                chunk += bytes
                continue
            }
            if !chunk.isEmpty {
                flush()
            }
            if bytes.count <= capacity {
                chunk = bytes
                continue
            }
            for scalar in character.unicodeScalars {
                let scalarBytes = Array(String(scalar).utf8)
                if chunk.count + scalarBytes.count > capacity {
                    flush()
                }
                chunk += scalarBytes
            }
        }
        if !chunk.isEmpty {
            flush()
        }
        return words
    }

    /// Makes caller text safe to stand in a header: line breaks and tabs become one space each (CRLF
    /// counts as one line break), other control characters are dropped.
    static func headerText(_ text: String) -> String {
        var scalars = String.UnicodeScalarView()
        var previousWasCarriageReturn = false
        for scalar in text.unicodeScalars {
            defer { previousWasCarriageReturn = scalar == "\r" }
            switch scalar.value {
            case 0x0A where previousWasCarriageReturn:
                continue
            case 0x09...0x0D, 0x85, 0x2028, 0x2029:
                scalars.append(" ")
            case 0x00...0x1F, 0x7F...0x9F:
                continue
            default:
                scalars.append(scalar)
            }
        }
        return String(scalars)
    }

    /// Whether text can stand in a header as it is: only printable ASCII and spaces, and nothing a
    /// lenient decoder could take for the start of an encoded-word (`=?`).
    static func isPrintableASCII(_ text: String) -> Bool {
        text.utf8.allSatisfy { (0x20...0x7E).contains($0) } && !text.contains("=?")
    }

    /// Whether a byte is RFC 5322 `atext`: a letter, a digit or one of ``!#$%&'*+-/=?^_`{|}~``.
    static func isAtext(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default:
            "!#$%&'*+-/=?^_`{|}~".utf8.contains(byte)
        }
    }

    /// Whether a scalar is a control character (C0, DEL, C1) or whitespace of any kind.
    static func isControlOrWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.properties.isWhitespace
    }

    /// The name an extra header is written with: only RFC 5322 field-name characters (printable
    /// ASCII but `:`), or nil when it is empty, too long for a line, or one the renderer writes itself.
    static func extraHeaderName(_ rawName: String) -> String? {
        let name = String(decoding: rawName.utf8.filter { (0x21...0x7E).contains($0) && $0 != UInt8(ascii: ":") }, as: UTF8.self)
        let lowercased = name.lowercased()
        guard !name.isEmpty, name.utf8.count <= foldingWidth - 2,
            !reservedHeaderNames.contains(lowercased), !lowercased.hasPrefix("content-")
        else { return nil }
        return name
    }

    /// The message ID as it goes between the angle brackets: without control characters,
    /// whitespace and angle brackets; a fresh random one when nothing is left.
    static func messageIDForHeader(_ rawID: String) -> String {
        let id = String(
            String.UnicodeScalarView(rawID.unicodeScalars.filter { !isControlOrWhitespace($0) && $0 != "<" && $0 != ">" })
        )
        return id.isEmpty ? makeMessageID(domain: "localhost") : id
    }

    // MARK: - Date

    /// The RFC 5322 date of a moment in UTC, e.g. `Sun, 29 Nov 2026 00:56:39 +0000`; English names
    /// whatever the locale, fractions of a second dropped.
    static func rfc5322Date(_ date: Date) -> String {
        // A sender dates thousands of messages a second with the same second: work it out once.
        let second = date.timeIntervalSince1970.rounded(.down)
        if let last = lastDate.withLockedValue({ $0 }), last.second == second { return last.text }
        let text = formatRFC5322Date(date)
        lastDate.withLockedValue { $0 = (second, text) }
        return text
    }

    /// The last date ``rfc5322Date(_:)`` wrote, by its whole second since 1970.
    private static let lastDate = NIOLockedValueBox<(second: Double, text: String)?>(nil)

    private static func formatRFC5322Date(_ date: Date) -> String {
        let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let time = UTCTime(date)
        return "\(weekdays[time.weekday - 1]), \(time.padded(\.day, 2)) \(months[time.month - 1]) \(time.padded(\.year, 4)) "
            + "\(time.padded(\.hour, 2)):\(time.padded(\.minute, 2)):\(time.padded(\.second, 2)) +0000"
    }

    // MARK: - Bodies

    /// The headers of a quoted-printable UTF-8 text part, each line ending with CRLF.
    static func textPartHeaders(subtype: String) -> String {
        "Content-Type: text/\(subtype); charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
    }

    /// Encodes text as quoted-printable lines (RFC 2045 §6.7).
    ///
    /// Every line break of the text (CRLF, a lone CR or a lone LF) becomes a CRLF line break; a
    /// text that ends with a line break gives a last, empty line. Lines are at most 76 characters,
    /// longer ones continue after a soft line break (`=`). Escaped as `=XX`: `=`, every byte that
    /// is not printable ASCII, a space or tab at the end of a line, and a `.` at the start of a
    /// line (harmless, and it spares transports that forget SMTP dot-stuffing).
    ///
    /// The lines are appended to `output` joined by CRLF, without a CRLF after the last one.
    ///
    /// - Returns: whether the last line has any content (a text not ending with a line break).
    @discardableResult
    static func appendQuotedPrintable(_ text: String, to output: inout [UInt8]) -> Bool {
        // 75 leaves room for the `=` of a soft line break, or of the one ending a single-part body.
        let maxContentLength = 75
        let bytes = Array(text.utf8)
        var lineLength = 0
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") {
                // Every line break (CRLF, a lone CR, a lone LF) becomes one CRLF.
                output += [UInt8(ascii: "\r"), UInt8(ascii: "\n")]
                lineLength = 0
                index += byte == UInt8(ascii: "\r") && index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "\n") ? 2 : 1
                continue
            }
            let isLineEnd = index + 1 == bytes.count || bytes[index + 1] == UInt8(ascii: "\r") || bytes[index + 1] == UInt8(ascii: "\n")
            var isLiteral: Bool
            switch byte {
            case UInt8(ascii: "="): isLiteral = false
            case 0x21...0x7E: isLiteral = true
            case UInt8(ascii: " "), UInt8(ascii: "\t"): isLiteral = !isLineEnd
            default: isLiteral = false
            }
            if lineLength + (isLiteral ? 1 : 3) > maxContentLength {
                output += [UInt8(ascii: "="), UInt8(ascii: "\r"), UInt8(ascii: "\n")]
                lineLength = 0
            }
            if lineLength == 0 && byte == UInt8(ascii: ".") {
                isLiteral = false
            }
            if isLiteral {
                output.append(byte)
                lineLength += 1
            } else {
                output += [UInt8(ascii: "="), hexDigit(byte >> 4), hexDigit(byte & 0x0F)]
                lineLength += 3
            }
            index += 1
        }
        return lineLength > 0
    }

    /// One uppercase hex digit for a value from 0 to 15.
    static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "A") + value - 10
    }

    /// A byte as two uppercase hex digits.
    static func hexByte(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16, uppercase: true)
        return byte < 0x10 ? "0" + digits : digits
    }
}
