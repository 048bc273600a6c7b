import Crypto
import Foundation
import GRDB
import WaitlistCore

/// Who sent a request, kept as the consent record.
public struct ClientContext: Sendable, Equatable {
    /// The page or origin the form was sent from.
    public var source: String?
    /// The client's address (after trusted proxies).
    public var ip: String?
    public var userAgent: String?

    public init(source: String? = nil, ip: String? = nil, userAgent: String? = nil) {
        self.source = source.map { String($0.prefix(500)) }
        self.ip = ip.map { String($0.prefix(100)) }
        self.userAgent = userAgent.map { String($0.prefix(500)) }
    }
}

/// What a signup did. Visitors never see the difference: every outcome gets the same answer.
public enum SignupOutcome: Sendable, Equatable {
    /// A confirmation mail was queued.
    case confirmationQueued
    /// The address is confirmed already; nothing is sent.
    case alreadyConfirmed
    /// A confirmation went out in the last 24 hours, three already went unanswered, or three went
    /// to the address for any courses in the last 24 hours; nothing is sent.
    case throttled
    /// The address bounced; nothing is sent.
    case suppressed
    /// The form's stamp admitted a signup before (its page's form sent again): nothing is written.
    case replayed
}

/// What a token in a link stands for.
public enum TokenLookup: Sendable, Equatable {
    /// A token we issued, still good: whose it is and for which course.
    case valid(Subscriber, Course)
    /// A confirmation token whose subscriber is confirmed already: the link changes nothing.
    case alreadyDone(Subscriber, Course)
    /// A confirmation token past its 7 days, spent, or of an address that unsubscribed or bounced
    /// since (also when it signed up again: the new signup's own link confirms it, never an
    /// earlier one): only a new signup brings it back.
    case expired(Course)
    /// Not a token we know (never issued, or erased).
    case unknown
}

extension AppDatabase {
    /// How long a confirmation link works.
    public static let confirmationLifetime: TimeInterval = 7 * 24 * 3600
    /// At most one confirmation mail per address in this interval.
    public static let confirmationInterval: TimeInterval = 24 * 3600
    /// ``confirmationInterval`` back from a date, as an SQLite date modifier.
    static let confirmationIntervalModifier = "-\(Int(confirmationInterval)) seconds"
    /// At most this many confirmation mails to an address that never confirms, per course.
    public static let maximumConfirmations = 3
    /// At most this many confirmation mails to an address in ``confirmationInterval``, whatever the courses.
    public static let maximumConfirmationsAcrossCourses = 3

    // MARK: - Signup

    /// The prepared statements of a signup, looked up in the connection's cache once for a
    /// transaction's signups rather than once for each (a lookup hashes the whole SQL text), and
    /// bound through SQLite's interface (``SteppedStatement``).
    struct SignupStatements {
        let known: SteppedStatement
        let caps: SteppedStatement
        let upsert: SteppedStatement
        let consent: SteppedStatement
        let confirmation: SteppedStatement
        /// The keyed HMAC of the address digests (``AppDatabase/addressDigest(_:keyed:)``), made once a transaction.
        let addressHMAC: HMAC<SHA256>

        init(_ db: Database) throws {
            // The address's row, its confirmations since it last confirmed, whether one of them is
            // younger than the interval ?4 (an SQLite modifier such as `-86400 seconds`) before ?3,
            // the signup's time, and whether it never confirmed (nothing for an address never
            // seen), in one statement.
            known = try SteppedStatement(
                db,
                sql: """
                    SELECT s.status, count(o.id), max(o.createdAt) > strftime('%Y-%m-%d %H:%M:%f', ?3, ?4), s.confirmedAt IS NULL
                    FROM subscriber s
                    LEFT JOIN outbox o ON o.subscriberId = s.id AND o.kind = 'confirmation' AND o.state != 'cancelled'
                        AND (s.confirmedAt IS NULL OR o.createdAt > s.confirmedAt)
                    WHERE s.courseId = ?1 AND s.emailKey = ?2
                    GROUP BY s.id
                    """)
            // The confirmations to address key ?2 for any courses in the interval ?4 before ?3, and
            // those of its signups for course ?1 purged unconfirmed, by its digest ?5 (both through
            // an index: the address's few rows, and one primary key).
            caps = try SteppedStatement(
                db,
                sql: """
                    SELECT
                        (SELECT count(*) FROM subscriber s JOIN outbox o ON o.subscriberId = s.id
                            WHERE s.emailKey = ?2 AND o.kind = 'confirmation' AND o.state != 'cancelled'
                            AND o.createdAt > strftime('%Y-%m-%d %H:%M:%f', ?3, ?4)),
                        (SELECT mails FROM purged_confirmations WHERE addressDigest = ?5 AND courseId = ?1 AND keptUntil > ?3)
                    """)
            // ?1 course, ?2 email, ?3 key, ?4 language, ?5 now, ?6 source, ?7 ip, ?8 user agent,
            // ?9 whether a confirmation is queued.
            upsert = try SteppedStatement(
                db,
                sql: """
                    INSERT INTO subscriber (courseId, email, emailKey, language, status, createdAt, signupSource, signupIP, signupUserAgent)
                    VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7, ?8)
                    ON CONFLICT (courseId, emailKey) DO UPDATE SET
                        status = CASE WHEN ?9 THEN 'pending' ELSE status END,
                        language = CASE WHEN ?9 THEN excluded.language ELSE language END,
                        signupSource = CASE WHEN ?9 THEN excluded.signupSource ELSE signupSource END,
                        signupIP = CASE WHEN ?9 THEN excluded.signupIP ELSE signupIP END,
                        signupUserAgent = CASE WHEN ?9 THEN excluded.signupUserAgent ELSE signupUserAgent END
                    RETURNING id
                    """)
            // ?1 subscriber, ?2 now, ?3 source, ?4 ip, ?5 user agent, ?6 whether a confirmation is queued.
            consent = try SteppedStatement(
                db,
                sql: """
                    INSERT INTO consent_event (subscriberId, kind, at, source, ip, userAgent)
                    SELECT ?1, 'signup', ?2, ?3, ?4, ?5 WHERE ?6
                    """)
            // ?1 subscriber, ?2 now, ?3 whether a confirmation is queued.
            confirmation = try SteppedStatement(
                db,
                sql: """
                    INSERT INTO outbox (kind, subscriberId, openingId, state, attempts, nextAttemptAt, createdAt)
                    SELECT 'confirmation', ?1, NULL, 'queued', 0, ?2, ?2 WHERE ?3
                    """)
            addressHMAC = try AppDatabase.addressHMAC(db)
        }
    }

    /// The statements of a signup (``subscribe(email:courseId:language:client:now:)``), inside a
    /// transaction of the caller's.
    static func subscribe(
        _ db: Database, statements: SignupStatements, email: EmailAddress, courseId: Int64, language: Language, client: ClientContext,
        now: Date
    ) throws -> SignupOutcome {
        let now = StoredDate.text(now)
        let caps = statements.caps
        defer { caps.reset() }
        caps.bind(courseId, at: 1)
        caps.bind(email.key, at: 2)
        caps.bind(now, at: 3)
        caps.bind(Self.confirmationIntervalModifier, at: 4)
        caps.bind(Self.addressDigest(email.key, keyed: statements.addressHMAC), at: 5)
        guard try caps.step(db) else { throw DatabaseError(resultCode: .SQLITE_INTERNAL, message: "the signup's caps returned no row") }
        let recentAcrossCourses = caps.int64(at: 0)
        let purgedInCourse = caps.int64(at: 1)

        let known = statements.known
        defer { known.reset() }
        known.bind(courseId, at: 1)
        known.bind(email.key, at: 2)
        known.bind(now, at: 3)
        known.bind(Self.confirmationIntervalModifier, at: 4)
        let outcome: SignupOutcome
        if try known.step(db) {
            switch known.text(at: 0).flatMap(SubscriberStatus.init(rawValue:)) {
            case .confirmed: outcome = .alreadyConfirmed
            case .bounced: outcome = .suppressed
            case .pending, .unsubscribed, nil:
                // Signups purged unconfirmed count until the address confirms.
                let sinceConfirmed = known.int64(at: 1) + (known.int64(at: 3) != 0 ? purgedInCourse : 0)
                let throttled =
                    sinceConfirmed >= Self.maximumConfirmations || known.int64(at: 2) != 0
                    || recentAcrossCourses >= Self.maximumConfirmationsAcrossCourses
                outcome = throttled ? .throttled : .confirmationQueued
            }
        } else {
            let throttled = purgedInCourse >= Self.maximumConfirmations || recentAcrossCourses >= Self.maximumConfirmationsAcrossCourses
            outcome = throttled ? .throttled : .confirmationQueued
        }
        let queues = outcome == .confirmationQueued

        let upsert = statements.upsert
        defer { upsert.reset() }
        upsert.bind(courseId, at: 1)
        upsert.bind(email.value, at: 2)
        upsert.bind(email.key, at: 3)
        upsert.bind(language.rawValue, at: 4)
        upsert.bind(now, at: 5)
        upsert.bind(client.source, at: 6)
        upsert.bind(client.ip, at: 7)
        upsert.bind(client.userAgent, at: 8)
        upsert.bind(queues, at: 9)
        guard try upsert.step(db) else { throw DatabaseError(resultCode: .SQLITE_INTERNAL, message: "the signup's upsert returned no id") }
        let id = upsert.int64(at: 0)
        try upsert.run(db)

        let consent = statements.consent
        defer { consent.reset() }
        consent.bind(id, at: 1)
        consent.bind(now, at: 2)
        consent.bind(client.source, at: 3)
        consent.bind(client.ip, at: 4)
        consent.bind(client.userAgent, at: 5)
        consent.bind(queues, at: 6)
        try consent.run(db)

        let confirmation = statements.confirmation
        defer { confirmation.reset() }
        confirmation.bind(id, at: 1)
        confirmation.bind(now, at: 2)
        confirmation.bind(queues, at: 3)
        try confirmation.run(db)
        return outcome
    }

    // MARK: - Tokens

    /// Stores the hash of a confirmation mail's token, valid for ``confirmationLifetime`` from `now`.
    static func storeConfirmToken(_ db: Database, _ token: Token, subscriberId: Int64, now: Date, nowValue: DatabaseValue) throws {
        try db.cachedStatement(sql: "INSERT INTO token (subscriberId, purpose, hash, createdAt, expiresAt) VALUES (?, 'confirm', ?, ?, ?)")
            .execute(arguments: [subscriberId, token.hash, nowValue, now.addingTimeInterval(confirmationLifetime)])
    }

    /// What a link's token stands for, without changing anything (for the GET pages).
    public func lookUp(_ token: Token, purpose: TokenPurpose, now: Date = Date()) throws -> TokenLookup {
        try writer.read { db in try Self.lookUp(db, token: token, purpose: purpose, now: now) }
    }

    static func lookUp(_ db: Database, token: Token, purpose: TokenPurpose, now: Date) throws -> TokenLookup {
        let owner: (subscriberId: Int64, issuedAt: Date?, expiresAt: Date?, spent: Bool)
        if purpose == .unsubscribe, let subscriberId = try keyedUnsubscribeOwner(db, token: token) {
            owner = (subscriberId, nil, nil, false)
        } else if let record = try TokenRecord.filter(TokenRecord.Columns.hash == token.hash && TokenRecord.Columns.purpose == purpose)
            .fetchOne(db)
        {
            owner = (record.subscriberId, record.createdAt, record.expiresAt, record.usedAt != nil)
        } else {
            return .unknown
        }
        guard
            let subscriber = try Subscriber.fetchOne(db, key: owner.subscriberId),
            let course = try Course.fetchOne(db, key: subscriber.courseId)
        else { return .unknown }
        if let expiry = owner.expiresAt, expiry <= now { return .expired(course) }
        guard purpose == .confirm else { return .valid(subscriber, course) }
        switch subscriber.status {
        case .confirmed: return .alreadyDone(subscriber, course)
        case .unsubscribed, .bounced: return .expired(course)
        case .pending:
            // A link mailed before the address last unsubscribed or bounced belongs to a signup that
            // ended then; the address is pending again because someone signed it up anew, and only
            // that signup's own mail may confirm it.
            let endedCycle = [subscriber.unsubscribedAt, subscriber.bouncedAt].contains { ended in
                guard let ended, let issued = owner.issuedAt else { return false }
                return issued < ended
            }
            return owner.spent || endedCycle ? .expired(course) : .valid(subscriber, course)
        }
    }

    /// The subscriber of the mail an unsubscribe token is keyed by, when the token is that mail's
    /// latest (``Token/generate(keyedBy:)``); other tokens are in the token table.
    private static func keyedUnsubscribeOwner(_ db: Database, token: Token) throws -> Int64? {
        guard
            let row = try Row.fetchOne(
                db, sql: "SELECT subscriberId, unsubscribeHash FROM outbox WHERE id = ?", arguments: [token.keyedMessageId]),
            let stored = row["unsubscribeHash"] as Data?,
            token.matches(hash: stored)
        else { return nil }
        return row["subscriberId"]
    }

    // MARK: - Confirm and unsubscribe

    /// Confirms the subscriber a confirmation token belongs to, recording the click in the consent
    /// record. If enrolment is open already, the announcement is queued at once.
    public func confirm(_ token: Token, client: ClientContext, now: Date = Date()) throws -> TokenLookup {
        try writer.write { db in
            let lookup = try Self.lookUp(db, token: token, purpose: .confirm, now: now)
            guard case .valid(var subscriber, let course) = lookup else { return lookup }
            subscriber.status = .confirmed
            subscriber.confirmedAt = now
            subscriber.confirmIP = client.ip
            subscriber.confirmUserAgent = client.userAgent
            subscriber.unsubscribedAt = nil
            subscriber.bouncedAt = nil
            try subscriber.update(db)
            try db.execute(sql: "UPDATE token SET usedAt = ? WHERE hash = ? AND purpose = 'confirm'", arguments: [now, token.hash])
            try Self.recordEvent(db, .confirm, subscriberId: subscriber.id!, client: client, now: now)
            if let opening = try Self.currentOpening(db, courseId: course.id!) {
                try db.execute(
                    sql: """
                        INSERT OR IGNORE INTO outbox (kind, subscriberId, openingId, state, nextAttemptAt, createdAt)
                        VALUES ('announcement', ?, ?, 'queued', ?, ?)
                        """, arguments: [subscriber.id, opening.id, now, now])
            }
            return .valid(subscriber, course)
        }
    }

    /// Appends one event to a subscriber's consent record.
    static func recordEvent(
        _ db: Database, _ kind: ConsentEvent.Kind, subscriberId: Int64, client: ClientContext = ClientContext(), now: Date
    )
        throws
    {
        try db.execute(
            sql: "INSERT INTO consent_event (subscriberId, kind, at, source, ip, userAgent) VALUES (?, ?, ?, ?, ?, ?)",
            arguments: [subscriberId, kind.rawValue, now, client.source, client.ip, client.userAgent])
    }

    /// Unsubscribes the owner of an unsubscribe token at once and cancels any mail still queued for them.
    public func unsubscribe(_ token: Token, now: Date = Date()) throws -> TokenLookup {
        try writer.write { db in
            let lookup = try Self.lookUp(db, token: token, purpose: .unsubscribe, now: now)
            guard case .valid(var subscriber, let course) = lookup else { return lookup }
            if subscriber.status != .unsubscribed {
                subscriber.status = .unsubscribed
                subscriber.unsubscribedAt = now
                try subscriber.update(db)
                try Self.recordEvent(db, .unsubscribe, subscriberId: subscriber.id!, now: now)
            }
            try Self.cancelQueuedMail(db, subscriberId: subscriber.id!)
            return .valid(subscriber, course)
        }
    }

    static func cancelQueuedMail(_ db: Database, subscriberId: Int64) throws {
        try applySentRecords(db)
        try db.execute(
            sql:
                "UPDATE outbox SET state = 'cancelled' WHERE subscriberId = ? AND state = 'queued'",
            arguments: [subscriberId])
    }
}
