import Foundation
import WaitlistCore
import WaitlistDelivery
import WaitlistStore

/// The SQLite store behind the sender's port: the outbox and the sending role are its tables.
extension AppDatabase: OutboxStore {
    public func describe(_ error: any Error) -> String {
        Self.describe(error)
    }
}
