import Foundation

/// A failure an operator or visitor can act on: one sentence, and what kind of failure it is.
public struct WaitlistError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, which decides the exit code and the HTTP status.
    public enum Kind: Sendable, Equatable {
        /// The command was used wrongly (exit 64).
        case usage
        /// The data given cannot be used (exit 65).
        case data
        /// A named thing (a course) does not exist (exit 65, HTTP 404).
        case notFound
        /// A service the command needs (SMTP, the database) cannot be reached (exit 69).
        case unavailable
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
