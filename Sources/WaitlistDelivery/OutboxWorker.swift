import Logging
import ServiceLifecycle
import WaitlistCore
import WaitlistMail

/// The server's mail worker: runs an ``OutboxSender`` for as long as the service runs, and on
/// shutdown lets the messages in flight finish before returning.
public struct OutboxWorker: Service {
    let sender: OutboxSender
    let logger: Logger

    public init(sender: OutboxSender, logger: Logger) {
        self.sender = sender
        self.logger = logger
    }

    public func run() async throws {
        logger.info("Mail worker started", metadata: ["connections": "\(sender.concurrency)"])
        _ = try await withGracefulShutdownHandler {
            try await sender.run(mode: .continuous)
        } onGracefulShutdown: {
            sender.stop()
        }
        logger.info("Mail worker stopped")
    }
}
