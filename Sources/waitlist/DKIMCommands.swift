import ArgumentParser
import Foundation
import Waitlist
import WaitlistCore
import WaitlistDelivery
import WaitlistMail
import WaitlistStore
import WaitlistWeb

/// `waitlist dkim-record`: the DNS record to publish for each configured DKIM key.
struct DKIMRecord: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dkim-record",
        abstract: "Print, for each key in WAITLIST_DKIM_KEYS, the zone-file line of the TXT record to publish.")

    func run() async throws {
        try await withRuntime(signsMail: true) { runtime in
            guard let signer = runtime.composer.signer else {
                throw WaitlistError(.usage, "No DKIM key is configured: set WAITLIST_DKIM_KEYS=SELECTOR:PATH (see waitlist dkim-keygen).")
            }
            for key in signer.keys {
                print(DKIMZoneRecord(key: key, domain: signer.domain).line)
            }
        }
    }
}

/// `waitlist dkim-keygen --type rsa|ed25519 PATH`: a new private key, written by its owner and read by
/// the group `waitlist` (the service).
struct DKIMKeygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dkim-keygen",
        abstract: "Write a new DKIM private key (PEM, mode 0640: owner and the waitlist group); never overwrites a file.")

    @Option(name: .long, help: ArgumentHelp("The key's type: rsa (2048 bits) or ed25519.", valueName: "rsa|ed25519"))
    var type: DKIMKey.KeyType

    @Argument(help: "Where to write the key; the file must not exist yet.")
    var path: String

    func run() throws {
        do {
            try DKIMKeyFile.create(type: type, path: path)
        } catch {
            printError(error.message)
            throw error.kind == .usage ? ExitStatus.usage : ExitStatus.data
        }
        print("Wrote a new \(type.rawValue) DKIM key to \(path); add it to WAITLIST_DKIM_KEYS and publish `waitlist dkim-record`.")
    }
}

extension DKIMKey.KeyType: ExpressibleByArgument {}
