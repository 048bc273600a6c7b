import Foundation
import GRDB
import WaitlistCore

extension AppDatabase {
    // MARK: - Courses

    /// Every course, by slug.
    public func courses() throws -> [Course] {
        try writer.read { db in try Course.order(Course.Columns.slug).fetchAll(db) }
    }

    /// The course with this slug, or `nil`.
    public func course(slug: String) throws -> Course? {
        try writer.read { db in try Course.filter(Course.Columns.slug == slug).fetchOne(db) }
    }

    /// The course a request or command means: the named one, or the only one when none is named.
    ///
    /// - Throws: `.notFound` for an unknown slug; `.usage` when none is named and there are several.
    public func resolveCourse(slug: String?) throws -> Course {
        try writer.read { db in try Self.resolveCourse(db, slug: slug) }
    }

    static func resolveCourse(_ db: Database, slug: String?) throws -> Course {
        if let slug {
            guard let course = try Course.filter(Course.Columns.slug == slug).fetchOne(db) else {
                throw WaitlistError(.notFound, "There is no course \"\(slug)\"; `waitlist course list` shows the courses.")
            }
            return course
        }
        let all = try Course.order(Course.Columns.slug).fetchAll(db)
        guard all.count == 1, let only = all.first else {
            let names = all.map(\.slug).joined(separator: ", ")
            throw WaitlistError(.usage, "There are several courses (\(names)); name one with --course.")
        }
        return only
    }

    /// Adds a course; `titleEn`, `about` and `aboutEn` are optional (`nil` or empty: none).
    @discardableResult
    public func addCourse(
        slug: String, title: String, titleEn: String? = nil, about: String? = nil, aboutEn: String? = nil, enrolURL: String? = nil,
        now: Date = Date()
    ) throws -> Course {
        let words = CourseWords(title: title, titleEn: titleEn, about: about, aboutEn: aboutEn)
        try Self.validate(slug: slug, words: words, enrolURL: enrolURL)
        return try writer.write { db in
            guard try Course.filter(Course.Columns.slug == slug).fetchCount(db) == 0 else {
                throw WaitlistError(.data, "A course \"\(slug)\" exists already.")
            }
            var course = Course(id: nil, slug: slug, title: title, enrolURL: enrolURL, createdAt: now)
            words.apply(to: &course)
            try course.insert(db)
            return course
        }
    }

    /// Changes a course's slug, titles, descriptions or enrolment address; `nil` leaves a field as
    /// it is, an empty string removes an optional one (the English title, a description, the link).
    @discardableResult
    public func editCourse(
        slug: String, newSlug: String?, title: String?, titleEn: String? = nil, about: String? = nil, aboutEn: String? = nil,
        enrolURL: String?
    ) throws -> Course {
        let words = CourseWords(title: title, titleEn: titleEn, about: about, aboutEn: aboutEn)
        try Self.validate(slug: newSlug, words: words, enrolURL: enrolURL)
        return try writer.write { db in
            var course = try Self.resolveCourse(db, slug: slug)
            if let newSlug, newSlug != course.slug {
                guard try Course.filter(Course.Columns.slug == newSlug).fetchCount(db) == 0 else {
                    throw WaitlistError(.data, "A course \"\(newSlug)\" exists already.")
                }
                course.slug = newSlug
            }
            words.apply(to: &course)
            if let enrolURL { course.enrolURL = enrolURL.isEmpty ? nil : enrolURL }
            try course.update(db)
            return course
        }
    }

    /// The words of a course as a command gives them: `nil` leaves a field as it is, an empty
    /// optional one removes it.
    private struct CourseWords {
        var title: String?
        var titleEn: String?
        var about: String?
        var aboutEn: String?

        func apply(to course: inout Course) {
            if let title { course.title = title }
            if let titleEn { course.titleEn = Self.blankIsNone(titleEn) }
            if let about { course.about = Self.blankIsNone(about) }
            if let aboutEn { course.aboutEn = Self.blankIsNone(aboutEn) }
        }

        static func blankIsNone(_ text: String) -> String? {
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            return trimmed.isEmpty ? nil : trimmed
        }
    }

    private static func validate(slug: String?, words: CourseWords, enrolURL: String?) throws {
        if let slug, !Course.isValidSlug(slug) {
            throw WaitlistError(.data, "A course slug is lower-case letters, digits and hyphens, at most 64 (got \"\(slug)\").")
        }
        if let title = words.title, title.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty || title.count > 200 {
            throw WaitlistError(.data, "A course title has 1 to 200 characters.")
        }
        if let titleEn = words.titleEn.flatMap(CourseWords.blankIsNone), titleEn.count > 200 {
            throw WaitlistError(.data, "A course's English title has at most 200 characters.")
        }
        for about in [words.about, words.aboutEn].compactMap({ $0.flatMap(CourseWords.blankIsNone) }) where about.count > 1000 {
            throw WaitlistError(.data, "A course description has at most 1000 characters.")
        }
        if let enrolURL, !enrolURL.isEmpty, !isWebAddress(enrolURL) {
            throw WaitlistError(.data, "The enrolment link must be an http:// or https:// address (got \"\(enrolURL)\").")
        }
    }

    /// True for an absolute http or https URL with a host.
    public static func isWebAddress(_ text: String) -> Bool {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme) else { return false }
        return url.host?.isEmpty == false && !text.contains(where: { $0.isWhitespace })
    }

    /// The opening in progress for a course, if enrolment is open.
    public func currentOpening(courseId: Int64) throws -> Opening? {
        try writer.read { db in try Self.currentOpening(db, courseId: courseId) }
    }

    static func currentOpening(_ db: Database, courseId: Int64) throws -> Opening? {
        try Opening.filter(Opening.Columns.courseId == courseId && Opening.Columns.closedAt == nil).fetchOne(db)
    }
}
