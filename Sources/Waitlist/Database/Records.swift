import Foundation
import GRDB

/// A course people can wait for.
public struct Course: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "course"
    /// The course every fresh database holds.
    public static let defaultSlug = "negotiation"
    public static let defaultTitle = "Переговоры и отношения с клиентами"
    /// The default course's title in English.
    public static let defaultEnglishTitle = "Negotiation and client relations"

    public var id: Int64?
    public var slug: String
    /// The title in Russian, the one every course has.
    public var title: String
    /// Where people enrol, used by `open` when no `--url` is given.
    public var enrolURL: String?
    public var createdAt: Date
    /// The title in English; `nil`: English pages and mails show the Russian one.
    public var titleEn: String? = nil
    /// A short description in Russian, shown on the course page; `nil`: none.
    public var about: String? = nil
    /// The description in English; `nil`: English pages show the Russian one, if any.
    public var aboutEn: String? = nil

    /// The title a page or mail in `language` shows: the English one where given, else the Russian.
    public func title(in language: Language) -> String {
        switch language {
        case .ru: title
        case .en: titleEn ?? title
        }
    }

    /// The description a page in `language` shows, falling back to the Russian one; `nil`: none at all.
    public func about(in language: Language) -> String? {
        switch language {
        case .ru: about
        case .en: aboutEn ?? about
        }
    }

    public enum Columns {
        static let id = Column(CodingKeys.id)
        static let slug = Column(CodingKeys.slug)
        static let title = Column(CodingKeys.title)
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }

    /// True for a slug the schema accepts: lower-case letters, digits and hyphens, at most 64.
    public static func isValidSlug(_ slug: String) -> Bool {
        guard let first = slug.unicodeScalars.first, slug.utf8.count <= 64 else { return false }
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789-".unicodeScalars)
        return first != "-" && slug.unicodeScalars.allSatisfy(allowed.contains)
    }
}

/// One time enrolment opened for a course; the current one has no `closedAt`.
public struct Opening: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "opening"

    public var id: Int64?
    public var courseId: Int64
    /// The course's start date, `YYYY-MM-DD`.
    public var date: String
    public var enrolURL: String
    public var openedAt: Date
    public var closedAt: Date?

    public enum Columns {
        static let courseId = Column(CodingKeys.courseId)
        static let closedAt = Column(CodingKeys.closedAt)
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}

/// The language a subscriber reads: mails and pages exist in Russian (the default) and English.
public enum Language: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    case ru
    case en

    /// Reads a language tag such as `en`, `en-GB` or `ru_RU`; anything else is `nil`.
    public init?(tag: String) {
        let primary = tag.lowercased().split(whereSeparator: { $0 == "-" || $0 == "_" }).first.map(String.init) ?? ""
        self.init(rawValue: primary)
    }
}

/// Where a subscriber stands.
public enum SubscriberStatus: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    /// Signed up, not yet confirmed: only the confirmation mail may be sent.
    case pending
    /// Confirmed by a deliberate click: gets the announcement.
    case confirmed
    /// Asked to get nothing more.
    case unsubscribed
    /// The relay refused the address for good.
    case bounced
}

/// One address waiting for one course, with its consent record.
public struct Subscriber: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "subscriber"

    public var id: Int64?
    public var courseId: Int64
    public var email: String
    public var emailKey: String
    public var language: Language
    public var status: SubscriberStatus
    public var createdAt: Date
    /// The page or origin the form was sent from.
    public var signupSource: String?
    public var signupIP: String?
    public var signupUserAgent: String?
    public var confirmedAt: Date?
    public var confirmIP: String?
    public var confirmUserAgent: String?
    public var unsubscribedAt: Date?
    public var bouncedAt: Date?

    public enum Columns {
        static let id = Column(CodingKeys.id)
        static let courseId = Column(CodingKeys.courseId)
        static let emailKey = Column(CodingKeys.emailKey)
        static let status = Column(CodingKeys.status)
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}

/// What a token is good for.
public enum TokenPurpose: String, Codable, Sendable, DatabaseValueConvertible {
    case confirm
    case unsubscribe
}

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

/// One event of a subscriber's consent record: every signup, confirmation, unsubscription and bounce.
public struct ConsentEvent: Codable, Sendable, Equatable, FetchableRecord {
    public enum Kind: String, Codable, Sendable, DatabaseValueConvertible {
        case signup
        case confirm
        case unsubscribe
        case bounce
    }

    public var kind: Kind
    public var at: Date
    /// The page or origin of a signup's form.
    public var source: String?
    public var ip: String?
    public var userAgent: String?
}

/// The kinds of mail the service sends.
public enum MailKind: String, Codable, Sendable, DatabaseValueConvertible {
    case confirmation
    case announcement
}

/// The state of one outbox row.
public enum OutboxState: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    case queued
    case sent
    case failed
    /// No longer to be sent: the subscriber left, or enrolment closed before it went out.
    case cancelled
}

/// One message to deliver, with its delivery bookkeeping.
public struct OutboxMessage: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "outbox"

    public var id: Int64?
    public var kind: MailKind
    public var subscriberId: Int64
    public var openingId: Int64?
    public var state: OutboxState
    public var attempts: Int
    public var nextAttemptAt: Date
    public var lastError: String?
    public var createdAt: Date
    public var sentAt: Date?

    public enum Columns {
        static let kind = Column(CodingKeys.kind)
        static let subscriberId = Column(CodingKeys.subscriberId)
        static let openingId = Column(CodingKeys.openingId)
        static let state = Column(CodingKeys.state)
        static let createdAt = Column(CodingKeys.createdAt)
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}
