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
            let erased = try runtime.database.forget(email: email)
            let files = FileTransport.removeMessages(to: email, in: runtime.settings.mailDirectory)
            if erased == 0 && files == 0 {
                print("No trace of \(email) was found.")
            } else {
                print("Erased \(erased) subscriptions of \(email)" + (files > 0 ? " and \(files) mail files" : "") + ".")
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
