import ArgumentParser
import Waitlist
import WaitlistCore
import WaitlistDelivery
import WaitlistMail
import WaitlistStore
import WaitlistWeb

/// `waitlist send`: delivers what is queued and due, then exits.
struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Deliver everything queued that is due, then exit; resumes an interrupted `open`.",
        discussion: "Exits 0 when the outbox is empty, 75 when messages are left for a later retry, 69 when the relay is unreachable.")

    func run() async throws {
        try await withRuntime(signsMail: true) { runtime in
            // An `open` that was interrupted while queuing is completed first.
            let resumed = try await runtime.database.completeInterruptedQueuing()
            if resumed > 0 { printNow("Completed an interrupted opening: \(resumed) announcements queued.") }
            try await deliverQueued(runtime)
        }
    }
}
