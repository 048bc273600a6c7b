import Foundation

/// Course dates as people read them, on pages and in mails.
public enum HumanDate {
    /// `2027-03-15` as a person reads it: «15 марта 2027» or “15 March 2027”.
    /// Anything but `YYYY-MM-DD` stays as it is (Foundation's parser can crash on some text).
    public static func text(_ date: String, language: Language) -> String {
        let shape = Array(date.utf8)
        guard shape.count == 10,
            shape.enumerated().allSatisfy({ index, byte in
                index == 4 || index == 7 ? byte == UInt8(ascii: "-") : (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
            })
        else { return date }
        let parser = DateFormatter()
        parser.locale = Locale(identifier: "en_US_POSIX")
        parser.timeZone = TimeZone(identifier: "UTC")
        parser.dateFormat = "yyyy-MM-dd"
        guard let day = parser.date(from: date) else { return date }
        let formatter = DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.locale = Locale(identifier: language == .ru ? "ru_RU" : "en_GB")
        formatter.dateFormat = "d MMMM y"
        return formatter.string(from: day)
    }
}
