import Foundation

/// A moment broken into its UTC calendar fields, for the `Date` header, stored dates and mail file
/// names; the proleptic Gregorian calendar, whatever the process's locale. Worked out with integer
/// arithmetic (days since 1970 to a civil date through 400-year cycles): `Calendar` took several
/// microseconds for each, and a signup needs two dates.
package struct UTCTime {
    package let year: Int
    package let month: Int
    package let day: Int
    /// 1 for Sunday through 7 for Saturday.
    package let weekday: Int
    package let hour: Int
    package let minute: Int
    /// Whole seconds; fractions are dropped.
    package let second: Int

    package init(_ date: Date) {
        let seconds = Int(date.timeIntervalSince1970.rounded(.down))
        let days = Self.floorDivision(seconds, 86_400)
        let secondOfDay = seconds - days * 86_400
        hour = secondOfDay / 3600
        minute = secondOfDay % 3600 / 60
        second = secondOfDay % 60
        // 1970-01-01 was a Thursday.
        weekday = (days + 4 - Self.floorDivision(days + 4, 7) * 7) + 1
        // Days counted from 0000-03-01, so that a leap day ends its year; 146,097 days a 400-year era.
        let shifted = days + 719_468
        let era = Self.floorDivision(shifted, 146_097)
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthFromMarch = (5 * dayOfYear + 2) / 153
        day = dayOfYear - (153 * monthFromMarch + 2) / 5 + 1
        month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9
        year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    }

    private static func floorDivision(_ value: Int, _ divisor: Int) -> Int {
        value >= 0 ? value / divisor : -((-value + divisor - 1) / divisor)
    }

    /// A field in decimal, padded with zeros to `width` digits.
    package func padded(_ field: KeyPath<UTCTime, Int>, _ width: Int) -> String {
        let digits = String(self[keyPath: field])
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
