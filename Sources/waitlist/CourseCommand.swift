import ArgumentParser
import Waitlist

/// `waitlist course`: manages courses.
struct CourseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "course", abstract: "Manage courses.", subcommands: [List.self, Add.self, Edit.self])

    /// `waitlist course list`.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the courses.")

        func run() async throws {
            try await withRuntime { runtime in
                for course in try runtime.database.courses() {
                    let opening = try runtime.database.currentOpening(courseId: course.id!)
                    let state = opening.map { "open for \($0.date)" } ?? "waiting"
                    print("\(course.slug)\t\(course.title)\t\(state)\t\(course.enrolURL ?? "-")")
                }
            }
        }
    }

    /// `waitlist course add SLUG --title T`.
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a course.")

        @Argument(help: "The course's slug, as in /courses/SLUG: lower-case letters, digits and hyphens.")
        var slug: String

        @Option(name: .long, help: "The course's title, as the page and the mails show it.")
        var title: String

        @Option(name: .long, help: "Where people enrol, used by `open` when no --url is given.")
        var url: String?

        func run() async throws {
            try await withRuntime { runtime in
                let course = try runtime.database.addCourse(slug: slug, title: title, enrolURL: url)
                print("Added \(course.slug) «\(course.title)»: \(runtime.settings.baseURL)/courses/\(course.slug)")
            }
        }
    }

    /// `waitlist course edit SLUG [--title T] [--url U] [--slug NEW]`.
    struct Edit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a course's title, enrolment link or slug.")

        @Argument(help: "The slug of the course to change.")
        var slug: String

        @Option(name: .long, help: "A new title.")
        var title: String?

        @Option(name: .long, help: "A new enrolment link (an empty string removes it).")
        var url: String?

        @Option(name: .customLong("slug"), help: "A new slug (old links to /courses/OLD stop working).")
        var newSlug: String?

        func validate() throws {
            if title == nil && url == nil && newSlug == nil { throw ValidationError("Give at least one of --title, --url, --slug.") }
        }

        func run() async throws {
            try await withRuntime { runtime in
                let course = try runtime.database.editCourse(slug: slug, newSlug: newSlug, title: title, enrolURL: url)
                print("\(course.slug) «\(course.title)» \(course.enrolURL ?? "")")
            }
        }
    }
}
