import Foundation
import Logging
import ServiceLifecycle
import WaitlistCore
import WaitlistDelivery
import WaitlistMail
import WaitlistStore
import WaitlistWeb

/// Runs inside `serve`: at start and every hour, deletes unconfirmed signups older than 7 days and
/// expired confirmation tokens, keeping only the counts the confirmation caps need
/// (``AppDatabase/purgeUnconfirmed(now:)``).
public struct RetentionJob: Service {
    let database: AppDatabase
    let interval: Duration
    let logger: Logger

    public init(database: AppDatabase, interval: Duration = .seconds(3600), logger: Logger) {
        self.database = database
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                let result = try await database.perform { try $0.purgeUnconfirmed() }
                if result.signups > 0 || result.tokens > 0 {
                    logger.info("Deleted unconfirmed signups", metadata: ["signups": "\(result.signups)", "tokens": "\(result.tokens)"])
                }
            } catch {
                logger.error("Cannot delete unconfirmed signups", metadata: ["error": "\(AppDatabase.describe(error))"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
