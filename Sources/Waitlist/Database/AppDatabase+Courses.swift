import Foundation
import GRDB

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

    /// Adds a course.
    @discardableResult
    public func addCourse(slug: String, title: String, enrolURL: String? = nil, now: Date = Date()) throws -> Course {
        try Self.validate(slug: slug, title: title, enrolURL: enrolURL)
        return try writer.write { db in
            guard try Course.filter(Course.Columns.slug == slug).fetchCount(db) == 0 else {
                throw WaitlistError(.data, "A course \"\(slug)\" exists already.")
            }
            var course = Course(id: nil, slug: slug, title: title, enrolURL: enrolURL, createdAt: now)
            try course.insert(db)
            return course
        }
    }

    /// Changes a course's slug, title or enrolment address; `nil` leaves a field as it is.
    @discardableResult
    public func editCourse(slug: String, newSlug: String?, title: String?, enrolURL: String?) throws -> Course {
        try Self.validate(slug: newSlug, title: title, enrolURL: enrolURL)
        return try writer.write { db in
            var course = try Self.resolveCourse(db, slug: slug)
            if let newSlug, newSlug != course.slug {
                guard try Course.filter(Course.Columns.slug == newSlug).fetchCount(db) == 0 else {
                    throw WaitlistError(.data, "A course \"\(newSlug)\" exists already.")
                }
                course.slug = newSlug
            }
            if let title { course.title = title }
            if let enrolURL { course.enrolURL = enrolURL.isEmpty ? nil : enrolURL }
            try course.update(db)
            return course
        }
    }

    private static func validate(slug: String?, title: String?, enrolURL: String?) throws {
        if let slug, !Course.isValidSlug(slug) {
            throw WaitlistError(.data, "A course slug is lower-case letters, digits and hyphens, at most 64 (got \"\(slug)\").")
        }
        if let title, title.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty || title.count > 200 {
            throw WaitlistError(.data, "A course title has 1 to 200 characters.")
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
