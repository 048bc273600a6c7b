import Foundation
import GRDB
import NIOConcurrencyHelpers
import WaitlistCore

/// Dates as the database stores them, `yyyy-MM-dd HH:mm:ss.SSS` in UTC (GRDB's format), without a
/// `DateFormatter` call for each one.
///
/// GRDB formats every `Date` argument with a `DateFormatter`, which costs more than the statement
/// it goes into; a sender stores the current time in each of its transactions, thousands a
/// second. Here the part up to the seconds is formatted once per second and the milliseconds are
/// appended, which gives the same text as GRDB (a test holds the two together), so stored dates
/// compare as before.
enum StoredDate {
    /// The text of the last whole second asked for, by its seconds since 1970.
    private static let lastSecond = NIOLockedValueBox<(second: Double, text: String)?>(nil)

    static func value(_ date: Date) -> DatabaseValue { text(date).databaseValue }

    /// The text stored for `date`.
    static func text(_ date: Date) -> String {
        // As GRDB's formatter does: the date in whole milliseconds, rounded to the nearest.
        let milliseconds = (date.timeIntervalSince1970 * 1000).rounded()
        let second = (milliseconds / 1000).rounded(.down)
        let millisecond = Int(milliseconds - second * 1000)
        let prefix: String
        if let last = lastSecond.withLockedValue({ $0 }), last.second == second {
            prefix = last.text
        } else {
            let time = UTCTime(Date(timeIntervalSince1970: second))
            prefix =
                "\(time.padded(\.year, 4))-\(time.padded(\.month, 2))-\(time.padded(\.day, 2)) "
                + "\(time.padded(\.hour, 2)):\(time.padded(\.minute, 2)):\(time.padded(\.second, 2))"
            lastSecond.withLockedValue { $0 = (second, prefix) }
        }
        let digits = String(millisecond)
        return prefix + "." + String(repeating: "0", count: 3 - digits.count) + digits
    }
}
