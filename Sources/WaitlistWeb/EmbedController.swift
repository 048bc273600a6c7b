import Foundation
import HTTPTypes
import Hummingbird
import WaitlistCore
import WaitlistStore

/// The course's form alone, for an `<iframe>` on the school's own pages (`GET /embed/{slug}`),
/// and its post (`POST /embed/{slug}`), which keeps every rule of `POST /subscribe` and answers
/// inside the frame. `/embed.js` (in `Public/`) puts the frame on a page and sizes it.
struct EmbedController: Sendable {
    let coursePages: CoursePageController
    let signups: SignupController

    func addRoutes(to router: Router<AppRequestContext>) {
        router.get("/embed/:slug", use: form)
        router.post("/embed/:slug", use: subscribe)
    }

    @Sendable func form(request: Request, context: AppRequestContext) async throws -> Response {
        let slug = try context.parameters.require("slug")
        let course = try await coursePages.database.perform { try $0.resolveCourse(slug: slug) }
        return try await coursePages.render(
            course: course, language: request.preferredLanguage, switchPath: "/embed/\(course.slug)", framed: true)
    }

    @Sendable func subscribe(request: Request, context: AppRequestContext) async throws -> Response {
        try await signups.subscribeForm(request: request, context: context, framed: true)
    }
}

/// Who may put the embed in a frame: the origins of `WAITLIST_ALLOWED_ORIGINS`, as the embed's
/// `Content-Security-Policy: frame-ancestors`; with none, nobody (`'none'`), as for every other page.
struct EmbedFraming: Sendable {
    /// The value of `frame-ancestors` for the embed's answers.
    let embedAncestors: String

    init(allowedOrigins: [String]) {
        // Settings accept only `scheme://host[:port]`; the filter keeps anything else out of the header all the same.
        let origins = allowedOrigins.filter { Settings.isOrigin($0) }.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        embedAncestors = origins.isEmpty ? "'none'" : origins.joined(separator: " ")
    }

    /// Whether a path is one of the embed's (its page, its post, and their error answers).
    static func isEmbed(_ path: String) -> Bool {
        path.hasPrefix("/embed/")
    }
}

/// The path of a course's embed in a language (Russian needs no parameter).
func embedPath(_ course: Course, _ language: Language) -> String {
    "/embed/\(course.slug)" + (language == .ru ? "" : "?lang=\(language.rawValue)")
}
