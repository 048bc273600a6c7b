import Foundation

/// The address bounces come back to (`WAITLIST_BOUNCE_ADDRESS`, e.g. `bounces@school.example`):
/// each message goes out with the envelope sender `bounces+TAG@school.example`, so that a
/// delivery status notification names the message it is about.
public struct BounceAddress: Sendable, Equatable, CustomStringConvertible {
    /// The part before the `@`, without a `+`.
    public var localPart: String
    /// The part after the `@`.
    public var domain: String

    /// Parses `local@domain`; `nil` when it is no address we could send from or its local part
    /// holds a `+` (the tag's delimiter).
    public init?(_ text: String) {
        guard EmailAddress.isValidSender(text), let at = text.lastIndex(of: "@") else { return nil }
        let local = String(text[..<at])
        guard !local.contains("+") else { return nil }
        self.localPart = local
        self.domain = String(text[text.index(after: at)...])
    }

    public var description: String { "\(localPart)@\(domain)" }

    /// `LOCAL+TAG@DOMAIN`: the envelope sender of the message `tag` names.
    public func envelopeSender(tag: String) -> String {
        "\(localPart)+\(tag)@\(domain)"
    }

    /// The tag of an address of ours (`LOCAL+TAG@DOMAIN`, in any case), or `nil` for any other address.
    public func tag(in address: String) -> String? {
        let lowered = address.lowercased()
        let prefix = localPart.lowercased() + "+"
        let suffix = "@" + domain.lowercased()
        guard lowered.hasPrefix(prefix), lowered.hasSuffix(suffix), lowered.count > prefix.count + suffix.count else { return nil }
        return String(lowered.dropFirst(prefix.count).dropLast(suffix.count))
    }
}
