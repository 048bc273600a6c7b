import ArgumentParser
import Foundation
import Waitlist
import WaitlistCore
import WaitlistDelivery
import WaitlistMail
import WaitlistStore
import WaitlistWeb

/// `waitlist bounce [TAG]`: one bounce on stdin, as Postfix's pipe transport hands it.
///
/// Postfix passes no environment, so the settings come from the config file. The exit code tells
/// Postfix what to do: 0 the bounce is handled or discarded, 75 keep it and try again (the
/// database is busy or unreadable, a setting is missing or wrong), 65 it is not a mail at all.
struct Bounce: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read one bounce on stdin (a Postfix pipe: bounce ${extension}); a permanent failure marks that subscriber bounced.",
        discussion: """
            Exit 0 when the bounce was handled or discarded (no tag, a forged tag, a delay), 75 when it should be \
            tried again later (database busy or unreadable, WAITLIST_BOUNCE_ADDRESS not set), 65 when the input is not a mail.
            """)

    @Argument(help: "The tag of the envelope sender the bounce came back to (Postfix's ${extension}); found in the headers when left out.")
    var tag: String?

    func run() throws {
        let input = [UInt8](FileHandle.standardInput.readDataToEndOfFile())
        let report: BounceReport
        do throws(BounceReport.NotAMail) {
            report = try BounceReport(input)
        } catch {
            printError("The input is not a mail: \(error.reason).")
            throw ExitStatus.data
        }
        let settings: Settings
        do {
            settings = try Settings(environment: ConfigFile.environment(merging: ProcessInfo.processInfo.environment))
        } catch {
            printError("\(error) The bounce is kept for a later try.")
            throw ExitStatus.tryLater
        }
        guard let address = settings.bounceAddress else {
            printError(
                "WAITLIST_BOUNCE_ADDRESS is not set (in the environment or \(ConfigFile.defaultPath)); the bounce is kept for a later try.")
            throw ExitStatus.tryLater
        }
        guard FileManager.default.fileExists(atPath: settings.databasePath) else {
            printError("The database \(settings.databasePath) does not exist; check WAITLIST_DATABASE. The bounce is kept for a later try.")
            throw ExitStatus.tryLater
        }
        do {
            let database = try AppDatabase.open(path: settings.databasePath)
            let tags = BounceTags(address: address, key: try database.secret(named: BounceTags.secretName))
            print(Self.describe(try BounceIntake(database: database, tags: tags).handle(report, tag: tag)))
        } catch let error as WaitlistError {
            printError("\(error.message) The bounce is kept for a later try.")
            throw ExitStatus.tryLater
        } catch let error where AppDatabase.isStorageFailure(error) {
            // Busy past the timeout, read-only, damaged: Postfix keeps the bounce and tries again.
            printError(
                "The database did not take the bounce (\(AppDatabase.describe(error))); it is kept for a later try."
            )
            throw ExitStatus.tryLater
        } catch {
            printError("The bounce could not be recorded (\(error)); it is kept for a later try.")
            throw ExitStatus.tryLater
        }
    }

    /// One line saying what was done, for the operator trying the pipe by hand.
    static func describe(_ result: BounceIntake.Result) -> String {
        switch result {
        case .noTag: "Discarded: no tag of ours was given or found in the recipient headers."
        case .forgedTag(let tag): "Discarded: the tag \"\(tag.prefix(60))\" is not one we signed."
        case .recorded(let id, .bounced(let email)): "Message \(id): \(email) bounced for good and gets no more mail."
        case .recorded(let id, .alreadyStopped): "Message \(id): its subscriber was already bounced or unsubscribed."
        case .recorded(let id, .delayCounted(let count)): "Message \(id): delivery is delayed (notice \(count)); nothing changed."
        case .recorded(let id, .ignored): "Message \(id): the report names no failure; nothing changed."
        case .recorded(let id, .unknownMessage): "Message \(id) is no longer in the database; nothing changed."
        }
    }
}
