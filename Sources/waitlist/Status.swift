import ArgumentParser
import Foundation
import Waitlist
import WaitlistCore
import WaitlistDelivery
import WaitlistMail
import WaitlistStore
import WaitlistWeb

/// `waitlist status`: counts per course.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Counts per course: pending, confirmed, unsubscribed, bounced; mail queued, sent, failed.")

    @Option(name: .long, help: ArgumentHelp("Only this course (all courses when left out).", valueName: "slug"))
    var course: String?

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    func run() async throws {
        try await withRuntime { runtime in
            let courses = try course.map { [try runtime.database.resolveCourse(slug: $0)] } ?? runtime.database.courses()
            let statuses = try courses.map { try runtime.database.status(courseId: $0.id!) }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(statuses), as: UTF8.self))
                return
            }
            for status in statuses {
                print("\(status.course)  «\(status.title)»  " + (status.openFor.map { "enrolment open for \($0)" } ?? "waiting"))
                print(
                    "  subscribers: \(status.pending) pending, \(status.confirmed) confirmed, \(status.unsubscribed) unsubscribed, \(status.bounced) bounced"
                )
                print("  mail:        \(status.mailQueued) queued, \(status.mailSent) sent, \(status.mailFailed) failed")
            }
        }
    }
}
