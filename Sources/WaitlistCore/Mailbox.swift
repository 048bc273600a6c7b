import Foundation

/// A mailbox: an address with an optional display name, as in `Waitlist <waitlist@example.org>`.
public struct Mailbox: Sendable, Hashable {
    /// The display name, in any script; encoded per RFC 2047 when the message is rendered.
    public var displayName: String?
    /// The address itself (`local@domain`), already validated.
    public var address: String

    public init(displayName: String? = nil, address: String) {
        self.displayName = displayName
        self.address = address
    }
}
