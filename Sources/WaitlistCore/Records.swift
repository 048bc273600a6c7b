import Foundation

// The values the service keeps about courses, subscribers and mail. Storage gives them their
// tables (WaitlistStore's Records+GRDB.swift); mail and pages read them without knowing SQL.

/// A course people can wait for.
public struct Course: Codable, Sendable, Equatable {
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

    public init(
        id: Int64? = nil, slug: String, title: String, enrolURL: String? = nil, createdAt: Date, titleEn: String? = nil,
        about: String? = nil, aboutEn: String? = nil
    ) {
        self.id = id
        self.slug = slug
        self.title = title
        self.enrolURL = enrolURL
        self.createdAt = createdAt
        self.titleEn = titleEn
        self.about = about
        self.aboutEn = aboutEn
    }

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

    /// True for a slug the schema accepts: lower-case letters, digits and hyphens, at most 64.
    public static func isValidSlug(_ slug: String) -> Bool {
        guard let first = slug.unicodeScalars.first, slug.utf8.count <= 64 else { return false }
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789-".unicodeScalars)
        return first != "-" && slug.unicodeScalars.allSatisfy(allowed.contains)
    }
}

/// One time enrolment opened for a course; the current one has no `closedAt`.
public struct Opening: Codable, Sendable, Equatable {
    public var id: Int64?
    public var courseId: Int64
    /// The course's start date, `YYYY-MM-DD`.
    public var date: String
    public var enrolURL: String
    public var openedAt: Date

    public init(
        id: Int64? = nil, courseId: Int64, date: String, enrolURL: String, openedAt: Date, closedAt: Date? = nil
    ) {
        self.id = id
        self.courseId = courseId
        self.date = date
        self.enrolURL = enrolURL
        self.openedAt = openedAt
        self.closedAt = closedAt
    }
    public var closedAt: Date?
}

/// The language a subscriber reads: mails and pages exist in Russian (the default) and English.
public enum Language: String, Codable, Sendable, CaseIterable {
    case ru
    case en

    /// Reads a language tag such as `en`, `en-GB` or `ru_RU`; anything else is `nil`.
    public init?(tag: String) {
        let primary = tag.lowercased().split(whereSeparator: { $0 == "-" || $0 == "_" }).first.map(String.init) ?? ""
        self.init(rawValue: primary)
    }
}

/// Where a subscriber stands.
public enum SubscriberStatus: String, Codable, Sendable, CaseIterable {
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
public struct Subscriber: Codable, Sendable, Equatable {
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

    public init(
        id: Int64? = nil, courseId: Int64, email: String, emailKey: String, language: Language, status: SubscriberStatus, createdAt: Date,
        signupSource: String? = nil, signupIP: String? = nil, signupUserAgent: String? = nil, confirmedAt: Date? = nil,
        confirmIP: String? = nil, confirmUserAgent: String? = nil, unsubscribedAt: Date? = nil, bouncedAt: Date? = nil
    ) {
        self.id = id
        self.courseId = courseId
        self.email = email
        self.emailKey = emailKey
        self.language = language
        self.status = status
        self.createdAt = createdAt
        self.signupSource = signupSource
        self.signupIP = signupIP
        self.signupUserAgent = signupUserAgent
        self.confirmedAt = confirmedAt
        self.confirmIP = confirmIP
        self.confirmUserAgent = confirmUserAgent
        self.unsubscribedAt = unsubscribedAt
        self.bouncedAt = bouncedAt
    }

}

/// What a token is good for.
public enum TokenPurpose: String, Codable, Sendable {
    case confirm
    case unsubscribe
}

/// One event of a subscriber's consent record: every signup, confirmation, unsubscription and bounce.
public struct ConsentEvent: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
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

    public init(
        kind: Kind, at: Date, source: String? = nil, ip: String? = nil, userAgent: String? = nil
    ) {
        self.kind = kind
        self.at = at
        self.source = source
        self.ip = ip
        self.userAgent = userAgent
    }
    public var userAgent: String?
}

/// The kinds of mail the service sends.
public enum MailKind: String, Codable, Sendable {
    case confirmation
    case announcement
}

/// The state of one outbox row.
public enum OutboxState: String, Codable, Sendable, CaseIterable {
    case queued
    case sent
    case failed
    /// No longer to be sent: the subscriber left, or enrolment closed before it went out.
    case cancelled
}

/// One message to deliver, with its delivery bookkeeping.
public struct OutboxMessage: Codable, Sendable, Equatable {
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

    public init(
        id: Int64? = nil, kind: MailKind, subscriberId: Int64, openingId: Int64? = nil, state: OutboxState, attempts: Int,
        nextAttemptAt: Date, lastError: String? = nil, createdAt: Date, sentAt: Date? = nil
    ) {
        self.id = id
        self.kind = kind
        self.subscriberId = subscriberId
        self.openingId = openingId
        self.state = state
        self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt
        self.lastError = lastError
        self.createdAt = createdAt
        self.sentAt = sentAt
    }

}

/// A claimed outbox row with everything needed to render its mail, including fresh tokens.
///
/// The tokens exist in clear only here, in memory, between the claim and the delivery.
public struct Delivery: Sendable {
    public var outboxId: Int64
    public var kind: MailKind
    public var recipient: String
    public var language: Language
    public var course: Course
    /// The opening an announcement is about; `nil` for a confirmation.
    public var opening: Opening?
    /// The link token of a confirmation mail.
    public var confirmToken: Token?
    /// Every mail carries an unsubscribe (for a confirmation: "cancel this signup") link.
    public var unsubscribeToken: Token
    /// How many times this row has been claimed, this time included.
    public var attempt: Int

    public init(
        outboxId: Int64, kind: MailKind, recipient: String, language: Language, course: Course, opening: Opening?, confirmToken: Token?,
        unsubscribeToken: Token, attempt: Int
    ) {
        self.outboxId = outboxId
        self.kind = kind
        self.recipient = recipient
        self.language = language
        self.course = course
        self.opening = opening
        self.confirmToken = confirmToken
        self.unsubscribeToken = unsubscribeToken
        self.attempt = attempt
    }
}
