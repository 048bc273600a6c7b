import Foundation
import WaitlistCore

/// One mail for many recipients, rendered once: the bytes ``MIMERenderer`` makes for it, and the
/// places where each recipient's own parts go.
///
/// An announcement differs from one subscriber to the next only in its `To` address, its `Date`,
/// its message ID and the tokens in its links. Rendering and quoted-printable encoding all of it
/// for every recipient took most of a sender's time, so the composer renders a template once per
/// mail, language and content, and a message is a copy of the template's bytes with the
/// recipient's parts written in.
///
/// The places are not worked out from how ``MIMERenderer`` lays a message out; they are measured
/// on its output. The message is rendered with stand-in parts, then again with one part changed at
/// a time to a value of the same length that differs in every character: the bytes that change are
/// where that part goes, even where quoted-printable breaks a link across lines. That holds
/// because every character a part can hold comes out as itself (tokens are base64url, message IDs
/// hex digits, dates ASCII), wherever it stands. The `To` address, whose length varies, is the one
/// part inserted rather than overwritten: ``MIMERenderer`` writes a bare address as `To: address`
/// on one line, whatever its length.
///
/// A template that cannot be measured this way, or whose test message differs by one byte from
/// what ``MIMERenderer`` renders for the same parts, is not made, and the composer renders every
/// message in full instead.
struct MessageTemplate: Sendable {
    /// What one recipient's message has of its own.
    struct Parts {
        var recipient: String
        var date: Date
        /// The message ID's 32 hex digits, before `@domain`.
        var messageIDDigits: String
        var unsubscribeToken: Token
        var confirmToken: Token?
    }

    /// The rendered message with the stand-ins, without the `To` address.
    private let bytes: [UInt8]
    /// Where the address goes, just after `To: `.
    private let addressOffset: Int
    /// Where the 31 characters of the `Date` value start.
    private let dateOffset: Int
    /// Where each character of each part goes, in order (so the `i`th place takes the part's
    /// character `i % length`), as offsets into ``bytes``.
    private let messageIDPlaces: [Int]
    private let unsubscribePlaces: [Int]
    private let confirmPlaces: [Int]

    /// Every message ID the composer makes has this many hex digits.
    static let messageIDDigitCount = 32
    /// Every token is 32 bytes in base64url.
    static let tokenLength = 43
    /// `Sun, 29 Nov 2026 00:56:39 +0000`: the length of every `Date` value from 1000 to 9999.
    static let dateLength = 31

    /// Measures a template on `render`, which renders the full message for given parts; `nil` when
    /// the measurements do not add up or the template's test message differs from `render`'s.
    ///
    /// - Parameter hasConfirmLink: whether the mail carries a confirm token.
    init?(hasConfirmLink: Bool, render: (Parts) -> [UInt8]) {
        let standIn = Parts(
            recipient: "stand-in.recipient@template.invalid",
            date: Date(timeIntervalSince1970: 0),
            messageIDDigits: String(repeating: "0", count: Self.messageIDDigitCount),
            unsubscribeToken: Self.token(repeating: "A"),
            confirmToken: hasConfirmLink ? Self.token(repeating: "A") : nil)
        let rendered = render(standIn)

        // Where the parts are: `Date` comes first; the address where the one `To:` line says.
        let dateLine = Array("Date: \(MIMERenderer.rfc5322Date(standIn.date))\r\n".utf8)
        guard dateLine.count == 6 + Self.dateLength + 2, rendered.starts(with: dateLine) else { return nil }
        let headerEnd = Self.firstRange(of: Array("\r\n\r\n".utf8), in: rendered[...])?.lowerBound ?? rendered.count
        let address = Array(standIn.recipient.utf8)
        let toLine = Array("\r\nTo: ".utf8) + address + Array("\r\n".utf8)
        guard let toRange = Self.firstRange(of: toLine, in: rendered[..<headerEnd]),
            Self.firstRange(of: toLine, in: rendered[toRange.upperBound..<headerEnd]) == nil
        else { return nil }
        let addressRange = (toRange.lowerBound + 6)..<(toRange.lowerBound + 6 + address.count)

        func places(of changed: Parts, length: Int, occurrences: ClosedRange<Int>) -> [Int]? {
            let other = render(changed)
            guard other.count == rendered.count else { return nil }
            let places = rendered.indices.filter { rendered[$0] != other[$0] }
            guard places.count % length == 0, occurrences.contains(places.count / length),
                places.allSatisfy({ !addressRange.contains($0) })
            else { return nil }
            // Offsets into the bytes without the address.
            return places.map { $0 >= addressRange.upperBound ? $0 - address.count : $0 }
        }
        var otherID = standIn
        otherID.messageIDDigits = String(repeating: "f", count: Self.messageIDDigitCount)
        var otherUnsubscribe = standIn
        otherUnsubscribe.unsubscribeToken = Self.token(repeating: "B")
        guard let messageIDPlaces = places(of: otherID, length: Self.messageIDDigitCount, occurrences: 1...1),
            let unsubscribePlaces = places(of: otherUnsubscribe, length: Self.tokenLength, occurrences: 1...64)
        else { return nil }
        var confirmPlaces: [Int] = []
        if hasConfirmLink {
            var otherConfirm = standIn
            otherConfirm.confirmToken = Self.token(repeating: "B")
            guard let places = places(of: otherConfirm, length: Self.tokenLength, occurrences: 1...64) else { return nil }
            confirmPlaces = places
        }

        var bytes = rendered
        bytes.removeSubrange(addressRange)
        self.bytes = bytes
        self.addressOffset = addressRange.lowerBound
        self.dateOffset = 6
        self.messageIDPlaces = messageIDPlaces
        self.unsubscribePlaces = unsubscribePlaces
        self.confirmPlaces = confirmPlaces

        // The proof: a message with other parts in every place, byte for byte what `render` makes.
        let check = Parts(
            recipient: "Check.Recipient+template@example.org",
            date: Date(timeIntervalSince1970: 1_796_000_123),
            messageIDDigits: "0123456789abcdef0123456789abcdef",
            unsubscribeToken: Token(link: "-_09AZaz" + String(repeating: "Qw3_", count: 8) + "x-9")!,
            confirmToken: hasConfirmLink ? Token(link: String(repeating: "_z-A9", count: 8) + "Mq0") : nil)
        guard let made = message(for: check), made == render(check) else { return nil }
    }

    /// The message for one recipient's parts; `nil` when a part cannot go in a template's place
    /// (a date past the year 9999, an ID of the wrong length, a missing confirm token), for the
    /// caller to render it in full.
    func message(for parts: Parts) -> [UInt8]? {
        let date = MIMERenderer.rfc5322Date(parts.date).utf8
        let messageID = parts.messageIDDigits.utf8
        guard date.count == Self.dateLength, messageID.count == Self.messageIDDigitCount,
            (parts.confirmToken == nil) == confirmPlaces.isEmpty
        else { return nil }
        let address = MIMERenderer.headerAddress(parts.recipient).utf8
        var output = [UInt8]()
        output.reserveCapacity(bytes.count + address.count)
        output += bytes[..<addressOffset]
        output += address
        output += bytes[addressOffset...]
        let shift = address.count
        output.withUnsafeMutableBufferPointer { output in
            func place(_ part: String.UTF8View, at places: [Int]) {
                let characters = Array(part)
                var index = 0
                for place in places {
                    output[place >= addressOffset ? place + shift : place] = characters[index]
                    index = index + 1 == characters.count ? 0 : index + 1
                }
            }
            var offset = dateOffset
            for byte in date {
                output[offset] = byte
                offset += 1
            }
            place(messageID, at: messageIDPlaces)
            place(parts.unsubscribeToken.value.utf8, at: unsubscribePlaces)
            if let confirm = parts.confirmToken { place(confirm.value.utf8, at: confirmPlaces) }
        }
        return output
    }

    private static func token(repeating character: Character) -> Token {
        Token(link: String(repeating: character, count: tokenLength))!
    }

    /// Where `needle` first occurs in `haystack`.
    private static func firstRange(of needle: [UInt8], in haystack: ArraySlice<UInt8>) -> Range<Int>? {
        guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
        var start = haystack.startIndex
        while start + needle.count <= haystack.endIndex {
            if haystack[start] == needle[0] && haystack[start..<(start + needle.count)].elementsEqual(needle) {
                return start..<(start + needle.count)
            }
            start += 1
        }
        return nil
    }
}
