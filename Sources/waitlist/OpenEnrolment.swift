import ArgumentParser
import Foundation
import Waitlist
import WaitlistCore
import WaitlistDelivery
import WaitlistMail
import WaitlistStore
import WaitlistWeb

/// `waitlist open`: opens enrolment and mails every confirmed subscriber once.
struct OpenEnrolment: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "open",
        abstract: "Open enrolment for a date, then mail every confirmed subscriber of the course once.",
        discussion: """
            Running it again for the same date mails nobody twice (it resumes an interrupted run). \
            After `waitlist close`, an `open` for a new date mails everyone still subscribed once more.
            """)

    @Option(name: .long, help: ArgumentHelp("The day the course starts.", valueName: "YYYY-MM-DD"))
    var date: String

    @OptionGroup var courseOption: CourseOption

    @Option(name: .long, help: ArgumentHelp("Where people enrol; defaults to the course's stored enrolment link.", valueName: "url"))
    var url: String?

    @Flag(name: .long, help: "Do not ask for confirmation.")
    var yes = false

    @Flag(name: .long, help: "Change nothing: print how many people would be mailed and the message they would get.")
    var dryRun = false

    func validate() throws {
        do {
            _ = try AppDatabase.validateDate(date)
        } catch {
            throw ValidationError(error.message)
        }
    }

    func run() async throws {
        try await withRuntime(signsMail: true) { runtime in
            let database = runtime.database
            let course = try database.resolveCourse(slug: courseOption.course)
            let current = try database.currentOpening(courseId: course.id!)
            guard let enrolURL = url ?? current?.enrolURL ?? course.enrolURL else {
                throw WaitlistError(
                    .usage, "Give the enrolment link with --url (or store one with `waitlist course edit \(course.slug) --url ...`).")
            }
            guard AppDatabase.isWebAddress(enrolURL) else {
                throw WaitlistError(.usage, "--url must be an http:// or https:// address (got \"\(enrolURL)\").")
            }
            if let current, current.date != date {
                throw WaitlistError(
                    .data, "Enrolment is open already for \(current.date); run `waitlist close` first to announce another date.")
            }
            let count = try database.recipientCount(courseId: course.id!)
            if dryRun {
                print("Would open enrolment for «\(course.title)» on \(date) and mail \(people(count)).\n")
                print(preview(runtime, course: course, enrolURL: enrolURL))
                return
            }
            if !yes {
                guard isTerminal(STDIN_FILENO) else {
                    throw WaitlistError(
                        .usage, "Refusing to mail \(people(count)) without a confirmation: run on a terminal, or add --yes.")
                }
                print("Open enrolment for «\(course.title)» on \(date) and mail \(people(count))? [y/N] ", terminator: "")
                let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
                guard ["y", "yes", "д", "да"].contains(answer) else {
                    print("Nothing was changed.")
                    return
                }
            }
            let result = try await database.open(courseId: course.id!, date: date, enrolURL: enrolURL)
            printNow(
                (result.isNew
                    ? "Enrolment for «\(course.title)» is open for \(date)"
                    : "Enrolment for «\(course.title)» was open already for \(date)")
                    + "; \(result.newlyQueued) announcements queued.")
            try await deliverQueued(runtime)
        }
    }

    /// "1 confirmed subscriber", "2 confirmed subscribers".
    private func people(_ count: Int) -> String {
        count == 1 ? "1 confirmed subscriber" : "\(count) confirmed subscribers"
    }

    /// The announcement as the first subscriber would get it, in Russian, with a sample link.
    private func preview(_ runtime: Runtime, course: Course, enrolURL: String) -> String {
        let message = runtime.composer.preview(course: course, date: date, enrolURL: enrolURL)
        return "Subject: \(message.subject)\n\n\(message.text)"
    }
}

/// `waitlist close`: the course page collects signups again.
struct CloseEnrolment: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "close", abstract: "Close enrolment: the course page collects signups again; unsent announcements are cancelled.")

    @OptionGroup var courseOption: CourseOption

    func run() async throws {
        try await withRuntime { runtime in
            let course = try runtime.database.resolveCourse(slug: courseOption.course)
            if let closed = try runtime.database.close(courseId: course.id!) {
                print("Enrolment for «\(course.title)» (\(closed.date)) is closed; the page collects signups again.")
            } else {
                print("Enrolment for «\(course.title)» was not open; nothing changed.")
            }
        }
    }
}
