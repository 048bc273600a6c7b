import ArgumentParser
import Waitlist
import WaitlistCore
import WaitlistDelivery
import WaitlistMail
import WaitlistStore
import WaitlistWeb

/// `waitlist course`: manages courses.
struct CourseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "course", abstract: "Manage courses.", subcommands: [List.self, Add.self, Edit.self])

    /// `waitlist course list`.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the courses.",
            discussion: "One line per course, tab-separated: slug, Russian title, English title, state, enrolment link (`-`: none).")

        func run() async throws {
            try await withRuntime { runtime in
                for course in try runtime.database.courses() {
                    let opening = try runtime.database.currentOpening(courseId: course.id!)
                    let state = opening.map { "open for \($0.date)" } ?? "waiting"
                    print("\(course.slug)\t\(course.title)\t\(course.titleEn ?? "-")\t\(state)\t\(course.enrolURL ?? "-")")
                }
            }
        }
    }

    /// The titles and descriptions `course add` and `course edit` take.
    struct CourseWordOptions: ParsableArguments {
        @Option(name: .customLong("title-en"), help: "The title in English (English pages and mails show the Russian one without it).")
        var titleEn: String?

        @Option(name: .long, help: "A short description in Russian, shown on the course page.")
        var about: String?

        @Option(name: .customLong("about-en"), help: "The description in English (English pages show the Russian one without it).")
        var aboutEn: String?

        var isEmpty: Bool { titleEn == nil && about == nil && aboutEn == nil }
    }

    /// `waitlist course add SLUG --title T [--title-en T] [--about TEXT] [--about-en TEXT]`.
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a course.")

        @Argument(help: "The course's slug, as in /courses/SLUG: lower-case letters, digits and hyphens.")
        var slug: String

        @Option(name: .long, help: "The course's title in Russian, as the page and the mails show it.")
        var title: String

        @OptionGroup var words: CourseWordOptions

        @Option(name: .long, help: "Where people enrol, used by `open` when no --url is given.")
        var url: String?

        func run() async throws {
            try await withRuntime { runtime in
                let course = try runtime.database.addCourse(
                    slug: slug, title: title, titleEn: words.titleEn, about: words.about, aboutEn: words.aboutEn, enrolURL: url)
                print("Added \(course.slug) «\(course.title)»: \(runtime.settings.baseURL)/courses/\(course.slug)")
            }
        }
    }

    /// `waitlist course edit SLUG [--title T] [--title-en T] [--about TEXT] [--about-en TEXT] [--url U] [--slug NEW]`.
    struct Edit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a course's titles, descriptions, enrolment link or slug.",
            discussion: "An empty --title-en, --about, --about-en or --url removes it.")

        @Argument(help: "The slug of the course to change.")
        var slug: String

        @Option(name: .long, help: "A new title in Russian.")
        var title: String?

        @OptionGroup var words: CourseWordOptions

        @Option(name: .long, help: "A new enrolment link (an empty string removes it).")
        var url: String?

        @Option(name: .customLong("slug"), help: "A new slug (old links to /courses/OLD stop working).")
        var newSlug: String?

        func validate() throws {
            if title == nil && words.isEmpty && url == nil && newSlug == nil {
                throw ValidationError("Give at least one of --title, --title-en, --about, --about-en, --url, --slug.")
            }
        }

        func run() async throws {
            try await withRuntime { runtime in
                let course = try runtime.database.editCourse(
                    slug: slug, newSlug: newSlug, title: title, titleEn: words.titleEn, about: words.about, aboutEn: words.aboutEn,
                    enrolURL: url)
                print("\(course.slug) «\(course.title)» / “\(course.title(in: .en))” \(course.enrolURL ?? "")")
            }
        }
    }
}
