import Foundation
import WaitlistCore
import WaitlistDelivery
import WaitlistMail
import WaitlistStore
import WaitlistWeb

/// What `waitlist bounce` does with one message that came back: finds the message it is about
/// by its tag (given, or in its recipient headers), checks the tag's signature, and records what
/// the report says. It never sends mail.
public struct BounceIntake: Sendable {
    /// How one bounce was handled; every case is final (Postfix is told it was delivered).
    public enum Result: Sendable, Equatable {
        /// The tag named a message of ours; this is what was recorded.
        case recorded(outboxId: Int64, LateBounceOutcome)
        /// No tag of ours was given or found in the recipient headers: discarded.
        case noTag
        /// A tag of the right shape whose signature is not ours (or malformed): discarded.
        case forgedTag(String)
    }

    let database: AppDatabase
    let tags: BounceTags

    public init(database: AppDatabase, tags: BounceTags) {
        self.database = database
        self.tags = tags
    }

    /// Handles one report; `tag` is Postfix's `${extension}` (empty or `nil`: look in the headers).
    ///
    /// - Throws: the database's errors (busy, unreadable), which the caller turns into "try later".
    public func handle(_ report: BounceReport, tag: String?, now: Date = Date()) throws -> Result {
        let candidates: [String]
        if let tag, !tag.isEmpty {
            candidates = [tag]
        } else {
            candidates = report.recipientAddresses.compactMap(tags.address.tag(in:))
        }
        guard !candidates.isEmpty else { return .noTag }
        guard let outboxId = candidates.lazy.compactMap(tags.outboxId(fromTag:)).first else {
            return .forgedTag(candidates[0])
        }
        return .recorded(outboxId: outboxId, try database.recordLateBounce(outboxId: outboxId, verdict: report.verdict, now: now))
    }
}
