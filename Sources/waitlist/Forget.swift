import ArgumentParser
import Foundation
import Waitlist
import WaitlistCore
import WaitlistDelivery
import WaitlistMail
import WaitlistStore
import WaitlistWeb

/// `waitlist forget EMAIL`: erases every trace of an address.
struct Forget: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Erase every trace of an address (GDPR art. 17): subscriptions, tokens, queued and sent mail records, mail files.")

    @Argument(help: "The address to erase, in any case.")
    var email: String

    func run() async throws {
        try await withRuntime { runtime in
            let erasure = try runtime.database.forget(email: email)
            let files = FileTransport.removeMessages(to: email, in: runtime.settings.mailDirectory)
            if erasure.subscriptions == 0 && files.removed == 0 {
                print("No trace of \(email) was found in the database or the mail files.")
            } else {
                let subscriptions = erasure.subscriptions == 1 ? "1 subscription" : "\(erasure.subscriptions) subscriptions"
                let mailFiles = files.removed == 1 ? "1 mail file" : "\(files.removed) mail files"
                print("Erased \(subscriptions) of \(email)" + (files.removed > 0 ? " and \(mailFiles)" : "") + ".")
            }
            // What could not be erased now: said in one sentence each, and exit 75 so that a
            // script (or the operator) runs `forget` again.
            var left: [String] = []
            if !erasure.logCleared {
                left.append(
                    "The database's write-ahead log still holds the old copy of the erased rows: another process kept reading; "
                        + "run `waitlist forget \(email)` again in a minute.")
            }
            for problem in files.left { left.append("A mail file to \(email) may be left: \(problem).") }
            if !left.isEmpty {
                for sentence in left { printError(sentence) }
                throw ExitStatus.tryLater
            }
        }
    }
}

/// `waitlist backup PATH`: a consistent online copy of the database.
struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a consistent copy of the database to a new file, while the service runs.")

    @Argument(help: "The file to write; it must not exist yet.")
    var path: String

    func run() async throws {
        try await withRuntime { runtime in
            try runtime.database.backup(to: path)
            print("Backed up \(runtime.settings.databasePath) to \(path).")
        }
    }
}

/// `waitlist test-mail ADDRESS`: one message through the configured transport.
struct TestMail: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test-mail", abstract: "Send one test message through the configured transport.")

    @Argument(help: "Where to send it.")
    var address: String

    func run() async throws {
        try await withRuntime(signsMail: true) { runtime in
            let recipient: EmailAddress
            do throws(EmailAddress.Problem) {
                recipient = try EmailAddress(address)
            } catch {
                throw WaitlistError(.data, "\"\(address)\" is not an address we can mail: \(error.message)")
            }
            do throws(DeliveryError) {
                let session = try runtime.transport.makeSession()
                defer { session.close() }
                try session.send(runtime.composer.renderedTestMail(to: recipient))
            } catch {
                throw WaitlistError(.unavailable, "The test message was not sent (\(runtime.transportDescription)): \(error.reason)")
            }
            print("Sent a test message to \(recipient) through \(runtime.transportDescription).")
        }
    }
}
