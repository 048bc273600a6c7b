import Foundation
import GRDB
import WaitlistCore

// The tables of the core's values: which table each is stored in, its columns for queries, and
// the row id an insert gives it.

extension Course: FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "course"

    public enum Columns {
        static let id = Column("id")
        static let slug = Column("slug")
        static let title = Column("title")
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}

extension Opening: FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "opening"

    public enum Columns {
        static let courseId = Column("courseId")
        static let closedAt = Column("closedAt")
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}

extension Subscriber: FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "subscriber"

    public enum Columns {
        static let id = Column("id")
        static let courseId = Column("courseId")
        static let emailKey = Column("emailKey")
        static let status = Column("status")
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}

extension OutboxMessage: FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "outbox"

    public enum Columns {
        static let kind = Column("kind")
        static let subscriberId = Column("subscriberId")
        static let openingId = Column("openingId")
        static let state = Column("state")
        static let createdAt = Column("createdAt")
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}

extension ConsentEvent: FetchableRecord {}
extension ConsentEvent.Kind: DatabaseValueConvertible {}
extension Language: DatabaseValueConvertible {}
extension SubscriberStatus: DatabaseValueConvertible {}
extension TokenPurpose: DatabaseValueConvertible {}
extension MailKind: DatabaseValueConvertible {}
extension OutboxState: DatabaseValueConvertible {}

/// The stored form of a ``Token``: its hash, never the token.
struct TokenRecord: Codable, Sendable, FetchableRecord, MutablePersistableRecord {
    static let databaseTableName = "token"

    var id: Int64?
    var subscriberId: Int64
    var purpose: TokenPurpose
    var hash: Data
    var createdAt: Date
    var expiresAt: Date?
    /// When a confirmation token confirmed: it never confirms again.
    var usedAt: Date?

    enum Columns {
        static let hash = Column(CodingKeys.hash)
        static let purpose = Column(CodingKeys.purpose)
    }
}
