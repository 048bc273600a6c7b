import ArgumentParser
import Foundation
import Waitlist
import WaitlistCore
import WaitlistDelivery
import WaitlistMail
import WaitlistStore
import WaitlistWeb

/// `waitlist export`: subscribers (confirmed ones unless `--status` says otherwise) with their consent record, to stdout.
struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the subscribers (confirmed ones by default) with their consent record to stdout.")

    /// The output formats.
    enum Format: String, ExpressibleByArgument, CaseIterable {
        case csv
        case json
    }

    @Option(name: .long, help: ArgumentHelp("Only this course (all courses when left out).", valueName: "slug"))
    var course: String?

    @Option(name: .long, help: "csv or json.")
    var format: Format = .csv

    /// Which subscribers `--status` selects.
    enum StatusFilter: String, ExpressibleByArgument, CaseIterable {
        case confirmed
        case bounced
        case unsubscribed
        case all

        /// The state selected, `nil` for every one.
        var status: SubscriberStatus? { self == .all ? nil : SubscriberStatus(rawValue: rawValue) }
    }

    @Option(name: .long, help: "confirmed, bounced (with the refusing server's reply), unsubscribed or all.")
    var status: StatusFilter = .confirmed

    func run() async throws {
        try await withRuntime { runtime in
            let courseId = try course.map { try runtime.database.resolveCourse(slug: $0).id! }
            let output = FileHandle.standardOutput
            let dates = ISO8601DateFormatter()
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            var first = true
            if format == .csv {
                output.write(Data(ConsentCSV.header.utf8))
            } else {
                output.write(Data("[".utf8))
            }
            try runtime.database.forEachSubscriber(courseId: courseId, status: status.status) { record in
                switch format {
                case .csv:
                    output.write(Data(ConsentCSV.row(record, dates: dates).utf8))
                case .json:
                    output.write(Data(((first ? "\n" : ",\n") + String(decoding: try encoder.encode(record), as: UTF8.self)).utf8))
                }
                first = false
            }
            if format == .json { output.write(Data((first ? "]\n" : "\n]\n").utf8)) }
        }
    }
}

/// CSV (RFC 4180) lines for the consent export.
enum ConsentCSV {
    static let header =
        "email,course,language,signed_up_at,signup_source,signup_ip,signup_user_agent,confirmed_at,confirm_ip,confirm_user_agent,"
        + "status,unsubscribed_at,bounced_at,bounce_reply\r\n"

    static func row(_ record: ConsentRecord, dates: ISO8601DateFormatter) -> String {
        [
            record.email, record.course, record.language, dates.string(from: record.signedUpAt), record.signupSource ?? "",
            record.signupIP ?? "",
            record.signupUserAgent ?? "", record.confirmedAt.map(dates.string(from:)) ?? "", record.confirmIP ?? "",
            record.confirmUserAgent ?? "", record.status.rawValue, record.unsubscribedAt.map(dates.string(from:)) ?? "",
            record.bouncedAt.map(dates.string(from:)) ?? "", record.bounceReply ?? "",
        ].map(field).joined(separator: ",") + "\r\n"
    }

    /// Quotes a field when needed; a leading =, +, - or @ is prefixed with ' so spreadsheets do not run it.
    static func field(_ value: String) -> String {
        var value = value
        if let first = value.first, "=+-@".contains(first) { value = "'" + value }
        guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
