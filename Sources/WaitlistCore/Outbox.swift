import Foundation

// What the outbox and its sending role say to whoever sends: the store answers in these terms.

/// Thrown by the writes only the sender holding the sending role may make, when the given owner
/// does not hold it (any more): its lease ran out and another sender may have taken over.
public struct SendingRoleLost: Error, Sendable, Equatable {
    public init() {}
}

/// The process that holds a database's sending role, as another sees it.
public struct SendingRoleHolder: Sendable, Equatable {
    public var owner: String
    public var expiresAt: Date

    public init(owner: String, expiresAt: Date) {
        self.owner = owner
        self.expiresAt = expiresAt
    }
}

/// What is left in the outbox, for `waitlist send` and progress reports.
public struct OutboxBacklog: Sendable, Equatable {
    /// Queued and due now: the sender holding the role sends these next.
    public var ready: Int
    /// Queued for a later retry.
    public var later: Int
    /// When the earliest of ``later`` is due.
    public var nextAttemptAt: Date?

    public init(ready: Int, later: Int, nextAttemptAt: Date?) {
        self.ready = ready
        self.later = later
        self.nextAttemptAt = nextAttemptAt
    }

    /// Nothing at all is queued.
    public var isEmpty: Bool { ready + later == 0 }
}
