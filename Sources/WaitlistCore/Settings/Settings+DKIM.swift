import Foundation

extension Settings {
    /// One entry of `WAITLIST_DKIM_KEYS`: a selector and the PEM file of its private key.
    public struct DKIMKeyEntry: Sendable, Equatable {
        public var selector: String
        public var path: String
    }

    /// Parses `SELECTOR:PATH[,SELECTOR:PATH]`; a selector is letters, digits, `-`, `_` and dots
    /// between them (RFC 6376 §3.1), and each selector appears once.
    static func parseDKIMKeys(_ text: String) throws(SettingsError) -> [DKIMKeyEntry] {
        var entries: [DKIMKeyEntry] = []
        for item in text.split(separator: ",") {
            let trimmed = item.trimmingCharacters(in: .whitespaces)
            guard let colon = trimmed.firstIndex(of: ":") else {
                throw SettingsError(variable: "WAITLIST_DKIM_KEYS", message: "must be SELECTOR:PATH[,SELECTOR:PATH] (got \"\(trimmed)\")")
            }
            let selector = String(trimmed[..<colon])
            let path = String(trimmed[trimmed.index(after: colon)...])
            let labels = selector.split(separator: ".", omittingEmptySubsequences: false)
            guard !selector.isEmpty, !path.isEmpty, labels.allSatisfy(isSelectorLabel) else {
                throw SettingsError(
                    variable: "WAITLIST_DKIM_KEYS",
                    message: "must be SELECTOR:PATH[,SELECTOR:PATH] with selectors of letters, digits, - and _ (got \"\(trimmed)\")")
            }
            guard !entries.contains(where: { $0.selector.lowercased() == selector.lowercased() }) else {
                throw SettingsError(variable: "WAITLIST_DKIM_KEYS", message: "names the selector \(selector) twice")
            }
            entries.append(DKIMKeyEntry(selector: selector, path: path))
        }
        return entries
    }

    /// Whether a part of a selector between dots is letters, digits, `-` and `_` of ASCII.
    private static func isSelectorLabel(_ label: Substring) -> Bool {
        !label.isEmpty
            && label.utf8.allSatisfy { byte in
                (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
            }
    }

    /// The domain of the From address, the default `d=` of the signatures.
    var mailFromDomain: String {
        mailFrom.address.split(separator: "@").last.map(String.init) ?? "localhost"
    }
}
