import Foundation

/// A subscriber's address that passed every rule of the signup form.
///
/// The rules are deliberately those a person understands from one sentence: exactly one `@`, a
/// local part of at most 64 octets without spaces or control characters, a domain of dotted labels,
/// and at most 254 octets in all. The domain is lower-cased; the local part is kept as typed, but
/// two addresses that differ only in case are the same subscriber (see ``key``).
public struct EmailAddress: Sendable, Hashable, CustomStringConvertible {
    /// The address as it will be mailed: local part as typed, domain lower-cased.
    public let value: String

    /// The form used to recognise the same person twice: the whole address lower-cased.
    public var key: String { value.lowercased() }

    public var description: String { value }

    /// Why an address was refused; `message` is a sentence a visitor can act on.
    public enum Problem: Error, Sendable, Equatable {
        case empty
        case tooLong
        case missingAt
        case badLocalPart
        case localPartTooLong
        case badDomain

        /// The sentence shown to the visitor (in English; pages show their own translation by ``code``).
        public var message: String {
            switch self {
            case .empty: "Please enter your email address."
            case .tooLong: "That address is too long: an email address has at most 254 characters."
            case .missingAt: "An email address needs exactly one @, as in name@example.com."
            case .badLocalPart: "The part before the @ may not contain spaces, control characters or misplaced dots."
            case .localPartTooLong: "The part before the @ may have at most 64 characters."
            case .badDomain: "The part after the @ must be a domain such as example.com."
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
            }
        }
    }

    /// Validates what a visitor typed; surrounding spaces are forgiven, anything else is not.
    public init(_ input: String) throws(Problem) {
        let trimmed = input.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { throw .empty }
        guard trimmed.utf8.count <= 254 else { throw .tooLong }
        let parts = trimmed.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw .missingAt }
        let local = String(parts[0])
        let domain = String(parts[1]).lowercased()
        guard !local.isEmpty, Self.isValidLocalPart(local) else { throw .badLocalPart }
        guard local.utf8.count <= 64 else { throw .localPartTooLong }
        guard Self.isValidDomain(domain, requireDot: true) else { throw .badDomain }
        self.value = local + "@" + domain
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

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .unassigned, .privateUse, .surrogate: true
        default: false
        }
    }
}
