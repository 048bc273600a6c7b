import Foundation
import GRDB
import WaitlistCore

extension AppDatabase {
    /// The schema, one migration per shipped change. A migration that has shipped is never edited.
    ///
    /// Every rule that must hold lives here: one subscriber per address and course, one open
    /// opening per course, one announcement per subscriber and opening, the states a row may take.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()

        migrator.registerMigration("v1: courses, subscribers, tokens, outbox") { db in
            try db.execute(
                sql: """
                    CREATE TABLE course (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        slug TEXT NOT NULL UNIQUE CHECK (slug GLOB '[a-z0-9]*' AND slug NOT GLOB '*[^a-z0-9-]*' AND length(slug) <= 64),
                        title TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
                        enrolURL TEXT,
                        createdAt DATETIME NOT NULL
                    );

                    -- One row each time enrolment opens; the open one has closedAt NULL.
                    CREATE TABLE opening (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        courseId INTEGER NOT NULL REFERENCES course(id) ON DELETE CASCADE,
                        date TEXT NOT NULL CHECK (date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
                        enrolURL TEXT NOT NULL,
                        openedAt DATETIME NOT NULL,
                        closedAt DATETIME
                    );
                    CREATE UNIQUE INDEX opening_one_open_per_course ON opening(courseId) WHERE closedAt IS NULL;

                    CREATE TABLE subscriber (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        courseId INTEGER NOT NULL REFERENCES course(id) ON DELETE CASCADE,
                        email TEXT NOT NULL,
                        emailKey TEXT NOT NULL,
                        language TEXT NOT NULL CHECK (language IN ('ru', 'en')),
                        status TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'unsubscribed', 'bounced')),
                        createdAt DATETIME NOT NULL,
                        signupSource TEXT,
                        signupIP TEXT,
                        signupUserAgent TEXT,
                        confirmedAt DATETIME,
                        confirmIP TEXT,
                        confirmUserAgent TEXT,
                        unsubscribedAt DATETIME,
                        bouncedAt DATETIME,
                        UNIQUE (courseId, emailKey),
                        CHECK (status != 'confirmed' OR confirmedAt IS NOT NULL)
                    );
                    CREATE INDEX subscriber_by_status ON subscriber(courseId, status);
                    CREATE INDEX subscriber_by_email ON subscriber(emailKey);

                    -- Only the SHA-256 of a token is kept.
                    CREATE TABLE token (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        subscriberId INTEGER NOT NULL REFERENCES subscriber(id) ON DELETE CASCADE,
                        purpose TEXT NOT NULL CHECK (purpose IN ('confirm', 'unsubscribe')),
                        hash BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),
                        createdAt DATETIME NOT NULL,
                        expiresAt DATETIME
                    );
                    CREATE INDEX token_by_subscriber ON token(subscriberId);

                    -- One row per message to send; the worker leases rows, renders and delivers them.
                    CREATE TABLE outbox (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        kind TEXT NOT NULL CHECK (kind IN ('confirmation', 'announcement')),
                        subscriberId INTEGER NOT NULL REFERENCES subscriber(id) ON DELETE CASCADE,
                        openingId INTEGER REFERENCES opening(id) ON DELETE CASCADE,
                        state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'failed', 'cancelled')),
                        attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
                        nextAttemptAt DATETIME NOT NULL,
                        leaseOwner TEXT,
                        leaseExpiresAt DATETIME,
                        lastError TEXT,
                        createdAt DATETIME NOT NULL,
                        sentAt DATETIME,
                        UNIQUE (subscriberId, openingId),
                        CHECK ((kind = 'announcement') = (openingId IS NOT NULL)),
                        CHECK (state != 'sent' OR sentAt IS NOT NULL)
                    );
                    CREATE INDEX outbox_due ON outbox(nextAttemptAt) WHERE state = 'queued';
                    CREATE INDEX outbox_by_subscriber ON outbox(subscriberId, kind, createdAt);
                    CREATE INDEX outbox_by_opening ON outbox(openingId, state);
                    """
            )
            try db.execute(
                sql: "INSERT INTO course (slug, title, createdAt) VALUES (?, ?, ?)",
                arguments: [Course.defaultSlug, Course.defaultTitle, Date()]
            )
        }

        migrator.registerMigration("v2: secrets") { db in
            try db.execute(
                sql: """
                    -- Keys the service makes for itself on first start, such as the one that signs the form's timestamp.
                    CREATE TABLE secret (
                        name TEXT PRIMARY KEY,
                        value BLOB NOT NULL CHECK (length(value) >= 32),
                        createdAt DATETIME NOT NULL
                    );
                    """
            )
        }

        migrator.registerMigration("v3: unsubscribe tokens kept with their mail") { db in
            // The SHA-256 of the unsubscribe token of the mail's latest attempt, found by the row's
            // number that the token carries (Token.generate(keyedBy:)). Tokens of earlier attempts
            // move to the token table, so every copy that may have arrived keeps a working link.
            try db.execute(
                sql: """
                    ALTER TABLE outbox ADD COLUMN unsubscribeHash BLOB
                        CHECK (unsubscribeHash IS NULL OR length(unsubscribeHash) = 32)
                    """)
        }

        migrator.registerMigration("v4: sent records") { db in
            // What the sender's lanes record right after a relay's 250: one row a message, appended,
            // which dirties a page or two a transaction where updating the outbox row (and its two
            // indexes) dirtied several. Folded into the outbox by every write that claims or cancels
            // mail (AppDatabase.applySentRecords), so outbox.state stays the one place to look.
            try db.execute(
                sql: """
                    CREATE TABLE outbox_sent (
                        outboxId INTEGER PRIMARY KEY,
                        sentAt TEXT NOT NULL
                    )
                    """)
        }

        migrator.registerMigration("v5: one sending role per database") { db in
            // One process at a time sends: it holds this row, renewed while it works, and its lanes
            // share the work in memory. The outbox rows lose their own leases, which only said the
            // same thing row by row.
            try db.execute(
                sql: """
                    CREATE TABLE sending_role (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        owner TEXT NOT NULL,
                        expiresAt DATETIME NOT NULL
                    );
                    ALTER TABLE outbox DROP COLUMN leaseOwner;
                    ALTER TABLE outbox DROP COLUMN leaseExpiresAt;
                    """)
        }

        migrator.registerMigration("v6: spent confirmation tokens, the consent record as events") { db in
            // A confirmation token confirms once. Every signup, confirmation, unsubscription and
            // bounce is kept as a row of its own; the subscriber's columns say only the latest.
            try db.execute(
                sql: """
                    ALTER TABLE token ADD COLUMN usedAt DATETIME;
                    CREATE TABLE consent_event (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        subscriberId INTEGER NOT NULL REFERENCES subscriber(id) ON DELETE CASCADE,
                        kind TEXT NOT NULL CHECK (kind IN ('signup', 'confirm', 'unsubscribe', 'bounce')),
                        at DATETIME NOT NULL,
                        source TEXT,
                        ip TEXT,
                        userAgent TEXT
                    );
                    CREATE INDEX consent_event_by_subscriber ON consent_event(subscriberId, at);
                    INSERT INTO consent_event (subscriberId, kind, at, source, ip, userAgent)
                        SELECT id, 'signup', createdAt, signupSource, signupIP, signupUserAgent FROM subscriber;
                    INSERT INTO consent_event (subscriberId, kind, at, ip, userAgent)
                        SELECT id, 'confirm', confirmedAt, confirmIP, confirmUserAgent FROM subscriber WHERE confirmedAt IS NOT NULL;
                    INSERT INTO consent_event (subscriberId, kind, at)
                        SELECT id, 'unsubscribe', unsubscribedAt FROM subscriber WHERE unsubscribedAt IS NOT NULL;
                    INSERT INTO consent_event (subscriberId, kind, at)
                        SELECT id, 'bounce', bouncedAt FROM subscriber WHERE bouncedAt IS NOT NULL;
                    """)
        }

        migrator.registerMigration("v7: spent form stamps") { db in
            // One stamp, one signup: a stamp that signed a form up is kept until it would expire anyway.
            try db.execute(
                sql: """
                    CREATE TABLE spent_stamp (
                        stamp TEXT PRIMARY KEY,
                        expiresAt DATETIME NOT NULL
                    ) WITHOUT ROWID
                    """)
        }

        migrator.registerMigration("v8: canonical address keys") { db in
            // Keys were the lower-cased address; now the local part NFC-normalised and lower-cased
            // and the domain in its UTS #46 ASCII form (EmailAddress.key). Two rows that turn out to
            // be one mailbox keep their old keys (OR IGNORE): neither is lost.
            let rows = try Row.fetchAll(db, sql: "SELECT id, email, emailKey FROM subscriber")
            for row in rows {
                guard let address = try? EmailAddress(row["email"] as String), address.key != row["emailKey"] as String else { continue }
                try db.execute(
                    sql: "UPDATE OR IGNORE subscriber SET emailKey = ? WHERE id = ?", arguments: [address.key, row["id"] as Int64])
            }
        }

        migrator.registerMigration("v9: queuing progress of an opening") { db in
            // While `open` queues an opening's announcements chunk by chunk, how far it got: every
            // confirmed subscriber with an id up to `queuedThrough` has an announcement queued.
            // The row goes when queuing is complete; one left behind is resumed by `open` or `send`.
            try db.execute(
                sql: """
                    CREATE TABLE opening_queue (
                        openingId INTEGER PRIMARY KEY REFERENCES opening(id) ON DELETE CASCADE,
                        queuedThrough INTEGER NOT NULL
                    )
                    """)
        }

        migrator.registerMigration("v10: course titles and descriptions in English") { db in
            try db.execute(
                sql: """
                    ALTER TABLE course ADD COLUMN titleEn TEXT CHECK (titleEn IS NULL OR length(titleEn) BETWEEN 1 AND 200);
                    ALTER TABLE course ADD COLUMN about TEXT CHECK (about IS NULL OR length(about) BETWEEN 1 AND 1000);
                    ALTER TABLE course ADD COLUMN aboutEn TEXT CHECK (aboutEn IS NULL OR length(aboutEn) BETWEEN 1 AND 1000);
                    """)
            // The course every database started with gets its English title, unless it was renamed.
            try db.execute(
                sql: "UPDATE course SET titleEn = ? WHERE id = (SELECT min(id) FROM course) AND title = ?",
                arguments: [Course.defaultEnglishTitle, Course.defaultTitle])
        }

        migrator.registerMigration("v11: bounces that arrive later") { db in
            // The reply of the server that refused a subscriber's address (at RCPT time or in a
            // later bounce), without addresses; and, per message, how many delay notices came back.
            try db.execute(
                sql: """
                    ALTER TABLE subscriber ADD COLUMN bounceReply TEXT CHECK (bounceReply IS NULL OR length(bounceReply) <= 1000);
                    ALTER TABLE outbox ADD COLUMN delayNotices INTEGER NOT NULL DEFAULT 0 CHECK (delayNotices >= 0);
                    """)
        }

        migrator.registerMigration("v12: confirmation counts kept after a purge") { db in
            // What the per-course cap of three confirmation mails needs of a signup deleted
            // unconfirmed (AppDatabase.purgeUnconfirmed): the HMAC of the address's canonical key,
            // the course, how many confirmation mails went out, and until when the count is kept.
            // The key is made here, so that every signup finds it (the same statements each time).
            try db.execute(
                sql: """
                    CREATE TABLE purged_confirmations (
                        addressDigest BLOB NOT NULL CHECK (length(addressDigest) = 32),
                        courseId INTEGER NOT NULL REFERENCES course(id) ON DELETE CASCADE,
                        mails INTEGER NOT NULL CHECK (mails > 0),
                        keptUntil DATETIME NOT NULL,
                        PRIMARY KEY (addressDigest, courseId)
                    ) WITHOUT ROWID;
                    CREATE INDEX purged_confirmations_by_expiry ON purged_confirmations(keptUntil);
                    CREATE INDEX purged_confirmations_by_course ON purged_confirmations(courseId);
                    """)
            _ = try AppDatabase.secret(db, named: AppDatabase.addressDigestSecretName)
        }

        return migrator
    }
}
