import Foundation
import Logging
import WaitlistCore
import WaitlistDelivery
import WaitlistMail
import WaitlistStore
import WaitlistWeb

/// What every command and the server start from: the settings, the database, the templates and
/// the mail transport they describe.
public struct Runtime: Sendable {
    public let settings: Settings
    public let database: AppDatabase
    public let templates: Templates
    public let composer: MailComposer
    public let transport: any MailTransport
    public let logger: Logger
    /// The tags of envelope senders, when `WAITLIST_BOUNCE_ADDRESS` is set.
    public let bounceTags: BounceTags?

    /// Opens the database (creating and migrating it on first use) and prepares the mail transport.
    ///
    /// - Parameter signsMail: whether the command sends mail and so needs its DKIM keys; then a key
    ///   that cannot be used stops it here, before anything is sent.
    public static func start(settings: Settings, logger: Logger, signsMail: Bool = false) async throws -> Runtime {
        // The keys first: a bad one stops the command before the database is touched.
        let signer = signsMail && !settings.dkimKeys.isEmpty ? try DKIMSigner(settings: settings) : nil
        let database = try AppDatabase.open(path: settings.databasePath)
        let templates = try await Templates.load()
        return Runtime(
            settings: settings, database: database, templates: templates,
            composer: MailComposer(templates: templates, baseURL: settings.baseURL, from: settings.mailFrom, signer: signer),
            transport: makeTransport(settings: settings, logger: logger), logger: logger,
            bounceTags: try settings.bounceAddress.map { BounceTags(address: $0, key: try database.secret(named: BounceTags.secretName)) })
    }

    /// SMTP through libcurl when `WAITLIST_SMTP_URL` is set, else `.eml` files in the mail directory.
    public static func makeTransport(settings: Settings, logger: Logger) -> any MailTransport {
        if let smtp = settings.smtp {
            return SMTPTransport(configuration: smtp, ehloName: settings.publicHost)
        }
        return FileTransport(directory: URL(fileURLWithPath: settings.mailDirectory), logger: logger)
    }

    /// A sender with the configured number of connections.
    public func makeSender(logger: Logger? = nil) -> OutboxSender {
        OutboxSender(
            store: database, transport: transport, composer: composer, concurrency: settings.sendConcurrency,
            logger: logger ?? self.logger, lease: settings.sendLease, rate: settings.sendRate, bounceTags: bounceTags)
    }

    /// Where mail goes, for messages to the operator: never shows a password.
    public var transportDescription: String {
        if let smtp = settings.smtp { return "SMTP relay \(smtp)" }
        return "files in \(settings.mailDirectory)/ (WAITLIST_SMTP_URL is not set)"
    }
}
