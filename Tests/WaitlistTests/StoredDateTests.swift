import Foundation
import GRDB
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

/// The sender's fast date text must be GRDB's, or stored dates would no longer compare.
@Suite struct StoredDateTests {
    @Test func isTheTextGRDBStores() {
        var generator = SplitMix64(seed: 0xDA7E)
        var dates = (0..<5000).map { _ in Date(timeIntervalSince1970: Double.random(in: 0..<4_102_444_800, using: &generator)) }
        // Whole seconds, the last millisecond of a second, a leap day, the ends of years.
        dates += [0, 0.999, 0.9995, 1_700_000_000, 1_700_000_000.999, 951_782_400.5, 1_798_761_599.999, 1_798_761_600]
            .map { Date(timeIntervalSince1970: $0) }
        for date in dates {
            #expect(StoredDate.value(date) == date.databaseValue, "\(date.timeIntervalSince1970)")
        }
    }

    @Test func consecutiveMomentsOfOneSecondKeepTheirMilliseconds() {
        let second = Date(timeIntervalSince1970: 1_796_000_000)
        #expect(StoredDate.value(second) == "2026-11-30 00:53:20.000".databaseValue)
        #expect(StoredDate.value(second.addingTimeInterval(0.25)) == "2026-11-30 00:53:20.250".databaseValue)
        #expect(StoredDate.value(second.addingTimeInterval(1.007)) == "2026-11-30 00:53:21.007".databaseValue)
    }

    @Test("The calendar fields worked out by arithmetic are the Gregorian calendar's in UTC")
    func utcTimeIsTheCalendars() {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .gmt
        var generator = SplitMix64(seed: 0xCA1E)
        // From 1600 to 2400, and the days around 1970, the leap days of 1600, 1900 (none), 2000, 2100 (none).
        var dates = (0..<20_000).map { _ in
            Date(timeIntervalSince1970: Double.random(in: -11_676_096_000..<13_569_465_600, using: &generator))
        }
        dates += [-86_400.5, -1, -0.25, 0, 86_399.999, -11_670_912_000, -2_203_891_200, 951_782_400, 4_107_456_000]
            .map { Date(timeIntervalSince1970: $0) }
        for date in dates {
            let expected = calendar.dateComponents([.year, .month, .day, .weekday, .hour, .minute, .second], from: date)
            let time = UTCTime(date)
            let fields = [time.year, time.month, time.day, time.weekday, time.hour, time.minute, time.second]
            let want = [expected.year, expected.month, expected.day, expected.weekday, expected.hour, expected.minute, expected.second]
            #expect(fields == want.map { $0 ?? -1 }, "\(date.timeIntervalSince1970)")
        }
    }
}
