import CICU
import Foundation

/// A subscriber's address that passed every rule of the signup form, in one canonical form.
///
/// The rules are deliberately those a person understands from one sentence: exactly one `@`, a
/// local part of at most 64 octets without spaces, control or invisible characters, a domain of
/// dotted labels, and at most 254 octets in all.
///
/// One mailbox has many spellings, and every rule (limits, `forget`, export) must see them as one:
/// the local part is NFC-normalised (a precomposed and a decomposed `é` are one) and compared
/// without case (Unicode's full case folding, so `ß` and `SS` are one); the domain goes through IDNA UTS #46 (ICU's, non-transitional, with the STD3,
/// Bidi and ContextJ rules), so that its Unicode and punycode forms are one, compatibility forms
/// fold (`ｖｉｃｔｉｍ.test`, `ⅴictim.test` are `victim.test`) and invalid labels are refused.
public struct EmailAddress: Sendable, Hashable, CustomStringConvertible {
    /// The address as it will be mailed: the local part as typed, NFC-normalised; the domain as
    /// UTS #46 maps it, in the form it was typed (Unicode, or the ASCII `xn--` form).
    public let value: String

    /// What recognises the same mailbox however it is spelled: the local part case-folded and
    /// NFC-normalised, `@`, the domain's ASCII form.
    public let key: String

    public var description: String { value }

    /// Why an address was refused; `message` is a sentence a visitor can act on.
    public enum Problem: Error, Sendable, Equatable {
        case empty
        case tooLong
        case missingAt
        case badLocalPart
        case localPartTooLong
        case badDomain
        case invisibleCharacter

        /// The sentence shown to the visitor (in English; pages show their own translation by ``code``).
        public var message: String {
            switch self {
            case .empty: "Please enter your email address."
            case .tooLong: "That address is too long: an email address has at most 254 characters."
            case .missingAt: "An email address needs exactly one @, as in name@example.com."
            case .badLocalPart: "The part before the @ may not contain spaces, control characters or misplaced dots."
            case .localPartTooLong: "The part before the @ may have at most 64 characters."
            case .badDomain: "The part after the @ must be a domain such as example.com."
            case .invisibleCharacter: "The address contains an invisible character; please type it again."
            }
        }

        /// A stable key for translations and the JSON API.
        public var code: String {
            switch self {
            case .empty: "empty"
            case .tooLong: "too_long"
            case .missingAt: "missing_at"
            case .badLocalPart: "bad_local_part"
            case .localPartTooLong: "local_part_too_long"
            case .badDomain: "bad_domain"
            case .invisibleCharacter: "invisible_character"
            }
        }
    }

    /// Validates what a visitor typed; surrounding spaces are forgiven, anything else is not.
    public init(_ input: String) throws(Problem) {
        // Nearly every address is ASCII, where NFC changes nothing, no character is invisible and
        // case folding is lower-casing: the same result without Foundation's Unicode machinery.
        let isASCII = input.utf8.allSatisfy { $0 < 0x80 }
        let trimmed =
            isASCII ? Self.trimmingASCIIBlanks(input) : input.trimmingCharacters(in: .whitespaces).precomposedStringWithCanonicalMapping
        guard !trimmed.isEmpty else { throw .empty }
        guard isASCII || !trimmed.unicodeScalars.contains(where: \.properties.isDefaultIgnorableCodePoint) else {
            throw .invisibleCharacter
        }
        guard trimmed.utf8.count <= 254 else { throw .tooLong }
        let parts = trimmed.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw .missingAt }
        let local = String(parts[0])
        guard !local.isEmpty, Self.isValidLocalPart(local) else { throw .badLocalPart }
        guard local.utf8.count <= 64 else { throw .localPartTooLong }
        guard let domain = DomainName(String(parts[1])), Self.isHostName(domain.ascii) else { throw .badDomain }
        let typedASCII = parts[1].unicodeScalars.allSatisfy(\.isASCII)
        self.value = local + "@" + (typedASCII ? domain.ascii : domain.unicode)
        // Full case folding, not lower-casing: `ß` and `SS`, `ﬁ` and `FI`, final and other sigma are one.
        let folded =
            isASCII ? local.lowercased() : local.folding(options: .caseInsensitive, locale: nil).precomposedStringWithCanonicalMapping
        self.key = folded + "@" + domain.ascii
        guard value.utf8.count <= 254 else { throw .tooLong }
    }

    /// `text` without the spaces and tabs around it (`.whitespaces` of an ASCII string).
    private static func trimmingASCIIBlanks(_ text: String) -> String {
        let bytes = text.utf8
        guard let first = bytes.firstIndex(where: { $0 != 0x20 && $0 != 0x09 }) else { return "" }
        let last = bytes.lastIndex(where: { $0 != 0x20 && $0 != 0x09 })!
        return String(text[first...last])
    }

    /// The canonical key of a typed address, for looking one up (`forget`); what cannot be an
    /// address is only trimmed and lower-cased.
    public static func key(of input: String) -> String {
        (try? EmailAddress(input))?.key ?? input.trimmingCharacters(in: .whitespaces).lowercased()
    }

    /// True for an address the service may send from: the same rules, but a dotless domain such
    /// as `localhost` is allowed.
    static func isValidSender(_ address: String) -> Bool {
        let parts = address.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].utf8.count <= 64, address.utf8.count <= 254 else { return false }
        return isValidLocalPart(String(parts[0])) && isValidDomain(String(parts[1]).lowercased(), requireDot: false)
    }

    /// Characters RFC 5322 forbids in an unquoted local part besides control characters and spaces.
    private static let localPartSpecials: Set<Unicode.Scalar> = ["(", ")", "<", ">", "[", "]", ":", ";", "@", "\\", ",", "\""]

    private static func isValidLocalPart(_ local: String) -> Bool {
        if local.hasPrefix(".") || local.hasSuffix(".") || local.contains("..") { return false }
        return local.unicodeScalars.allSatisfy { scalar in
            !scalar.properties.isWhitespace && !isControl(scalar) && !localPartSpecials.contains(scalar)
        }
    }

    private static func isValidDomain(_ domain: String, requireDot: Bool) -> Bool {
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard !domain.isEmpty, domain.utf8.count <= 253, !requireDot || labels.count >= 2 else { return false }
        for label in labels {
            guard !label.isEmpty, label.utf8.count <= 63, !label.hasPrefix("-"), !label.hasSuffix("-") else { return false }
            let allowed = label.unicodeScalars.allSatisfy { scalar in
                scalar == "-"
                    || (scalar.isASCII
                        ? (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar))
                        : scalar.properties.isAlphabetic || scalar.properties.numericType != nil)
            }
            guard allowed else { return false }
        }
        // A top-level domain is never all digits (that would be an IP address written without brackets).
        return !(labels.last!.allSatisfy(\.isNumber))
    }

    /// A domain in ASCII form that UTS #46 accepted is a host name for mail when it has two labels
    /// or more, fits DNS, and its last label is not all digits (an IP address without brackets).
    private static func isHostName(_ ascii: String) -> Bool {
        let labels = ascii.split(separator: ".", omittingEmptySubsequences: false)
        guard ascii.utf8.count <= 253, labels.count >= 2, labels.allSatisfy({ (1...63).contains($0.utf8.count) }) else { return false }
        return !labels.last!.allSatisfy(\.isNumber)
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .unassigned, .privateUse, .surrogate: true
        default: false
        }
    }
}

/// A domain through IDNA UTS #46 (ICU, see `Sources/CICU`): its ASCII form (`xn--…` labels) and its
/// Unicode form.
struct DomainName {
    let ascii: String
    let unicode: String

    /// `nil` when UTS #46 finds an error in the name (a disallowed character, a bad `xn--` label,
    /// an empty or too long label, …).
    init?(_ name: String) {
        guard let ascii = Self.convert(name, toUnicode: false), let unicode = Self.convert(ascii, toUnicode: true) else { return nil }
        self.ascii = ascii
        self.unicode = unicode
    }

    private static func convert(_ name: String, toUnicode: Bool) -> String? {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= 1024 else { return nil }
        var output = [CChar](repeating: 0, count: 1024)
        let length = bytes.withUnsafeBufferPointer { input in
            input.withMemoryRebound(to: CChar.self) { input in
                waitlist_idna_convert(toUnicode ? 1 : 0, input.baseAddress, Int32(input.count), &output, Int32(output.count))
            }
        }
        guard length > 0, Int(length) < output.count else { return nil }
        return String(decoding: output[..<Int(length)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
