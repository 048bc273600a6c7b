import Foundation

// What happened to a message, in the terms storage records: the outcome of an attempt at the
// relay, and what a bounce that came back later says. The transport and the bounce parser make
// these; the store keeps them; neither knows the other.

/// How a delivery attempt went wrong, as far as the outbox needs to know.
///
/// Only what the relay says about the connection or about us (``transient``, ``senderRefused``)
/// bears on the other messages; what it says about one recipient (``deferred``, ``permanent``)
/// is that recipient's alone.
public enum DeliveryError: Error, Sendable, Equatable {
    /// Worth trying again later, and a reason to slow down: the relay was unreachable, timed out,
    /// said `421`, or answered `4xx` to `MAIL FROM` or the message.
    case transient(String)
    /// The relay deferred this recipient (`4xx` to `RCPT TO`): tried again later; the others go on.
    case deferred(String)
    /// The relay refused this recipient or this message for good (`5xx`); never retried. `policy`
    /// when the refusal gives a policy reason (an enhanced status `5.7.x`): such refusals of every
    /// recipient, across several domains, are what a relay refusing us looks like.
    case permanent(String, policy: Bool = false)
    /// The relay refuses us, not the recipient: it refused the login or the sender (`5xx` to
    /// `MAIL FROM`). Nobody is bounced; sending stops (or, in the server, pauses).
    case senderRefused(String)

    /// The relay's explanation, for the outbox's `last_error` column and the logs.
    public var reason: String {
        switch self {
        case .transient(let reason), .deferred(let reason), .permanent(let reason, _), .senderRefused(let reason): reason
        }
    }
}

/// What a bounce report says about the message it came back for.
public enum BounceVerdict: Sendable, Equatable {
    /// The recipient's server refused the message for good (`Action: failed`, a `5.x.x`
    /// status, or a quoted `5xx` reply); the diagnostic has no addresses in it.
    case permanent(diagnostic: String)
    /// Delivery is delayed or failed temporarily (`Action: delayed`, a `4.x.x` status, a `4xx` reply).
    case delayed(diagnostic: String)
    /// Nothing about a failure (a success notice, an auto-reply, anything else).
    case other
}

/// The words of a relay's replies, as they are stored, logged and exported.
public enum RelayReply {
    /// A reply with every word that holds an `@` replaced by `<address>`: relays quote the address
    /// they refuse (or others'), and replies are stored, logged and exported.
    public static func withoutAddresses(_ text: String) -> String {
        text.split(separator: " ", omittingEmptySubsequences: false).map { $0.contains("@") ? "<address>" : String($0) }
            .joined(separator: " ")
    }
}
