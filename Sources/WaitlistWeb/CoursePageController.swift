import Foundation
import HTTPTypes
import Hummingbird
import WaitlistCore
import WaitlistStore

/// The course pages: the "notify me" form while waiting, the date and enrolment link once open.
struct CoursePageController: Sendable {
    let database: AppDatabase
    let pages: Pages
    /// Signs the time each form is rendered, for the anti-bot check of the signup.
    let formStamp: FormStamp
    /// The school's privacy notice (`WAITLIST_PRIVACY_URL`), linked under the form.
    var privacyURL: String?
    let now: @Sendable () -> Date

    func addRoutes(to router: Router<AppRequestContext>) {
        router.get("/", use: home)
        router.get("/courses/:slug", use: coursePage)
        router.get("/courses/:slug/subscribed", use: checkInbox)
        router.get("/courses/:slug/stamp", use: freshStamp)
    }

    /// The only course's page, or a list when there are several.
    @Sendable func home(request: Request, context: AppRequestContext) async throws -> Response {
        let language = request.preferredLanguage
        let courses = try await database.perform { try $0.courses() }
        if courses.count == 1, let course = courses.first {
            return try await render(course: course, language: language, switchPath: "/")
        }
        let query = language == .ru ? "" : "?lang=\(language.rawValue)"
        return pages.page(
            "courses", language: language, title: PageWords.of(language).coursesTitle,
            context: ["courses": courses.map { Self.words(of: $0, in: language).merging(["query": query]) { $1 } }],
            languageSwitch: "/?lang=\(PageWords.of(language).otherLang)")
    }

    @Sendable func coursePage(request: Request, context: AppRequestContext) async throws -> Response {
        let slug = try context.parameters.require("slug")
        let course = try await database.perform { try $0.resolveCourse(slug: slug) }
        return try await render(course: course, language: request.preferredLanguage, switchPath: "/courses/\(course.slug)")
    }

    /// The "check your inbox" page a form signup is sent to.
    @Sendable func checkInbox(request: Request, context: AppRequestContext) async throws -> Response {
        let slug = try context.parameters.require("slug")
        let course = try await database.perform { try $0.resolveCourse(slug: slug) }
        return checkInboxPage(course: course, language: request.preferredLanguage)
    }

    /// A new stamp for a form the browser shows again from its back-forward cache (`Public/form.js`),
    /// counting from the page its stamp (`?after=`) was issued for; without one of ours, as for a
    /// page rendered now. Never cached: each answer is its own.
    @Sendable func freshStamp(request: Request, context: AppRequestContext) async throws -> Response {
        let slug = try context.parameters.require("slug")
        let course = try await database.perform { try $0.resolveCourse(slug: slug) }
        let stamp = formStamp.reissue(after: request.uri.queryParameters.get("after"), course: course.slug, now: now())
        return Response(
            status: .ok, headers: [.contentType: "text/plain; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: stamp)))
    }

    /// "Check your inbox", with a way back to the form; `framed`, inside the embed.
    func checkInboxPage(course: Course, language: Language, framed: Bool = false) -> Response {
        let words = PageWords.of(language)
        let back = framed ? embedPath(course, language) : coursePath(course, language)
        return pages.message(
            language: language, heading: words.checkInboxTitle, text: words.checkInboxText, courseTitle: course.title(in: language),
            hint: words.checkInboxHint, link: (href: back, label: words.wrongAddress), framed: framed)
    }

    /// The course page, optionally re-shown with the address typed and an error about it; `framed`,
    /// the embed's version: the form alone, posting to `/embed/{slug}`, links opening a new tab.
    func render(
        course: Course, language: Language, switchPath: String, status: HTTPResponse.Status = .ok, email: String? = nil,
        error: String? = nil, notice: String? = nil, stamp: String? = nil, framed: Bool = false
    ) async throws -> Response {
        var context: [String: Any] = ["course": Self.words(of: course, in: language)]
        // The embed's post names its language in the address too, for the answers given before its body is read (429).
        context["formAction"] = framed ? embedPath(course, language) : "/subscribe"
        if framed { context["framed"] = true }
        let courseId = course.id!
        if let opening = try await database.perform({ try $0.currentOpening(courseId: courseId) }) {
            context["opening"] = ["date": HumanDate.text(opening.date, language: language), "enrolURL": opening.enrolURL]
        }
        // Each page load its own stamp (a form shown again brings the one it was given).
        context["antiBot"] = ["name": "stamp", "value": stamp ?? formStamp.issue(course: course.slug, now: now())]
        if let email { context["email"] = email }
        if let error { context["error"] = error }
        if let notice { context["notice"] = notice }
        if let privacyURL { context["privacyURL"] = privacyURL }
        let other = PageWords.of(language).otherLang
        var response = pages.page(
            framed ? "embed" : "course", language: language, title: course.title(in: language), status: status, context: context,
            languageSwitch: framed ? nil : "\(switchPath)?lang=\(other)")
        // The form's post then carries this page's origin (under `no-referrer` browsers send `Origin: null`).
        response.headers[.referrerPolicy] = "same-origin"
        return response
    }

    /// What the templates show of a course in a language: its slug, title and description, if any.
    static func words(of course: Course, in language: Language) -> [String: String] {
        var words = ["slug": course.slug, "title": course.title(in: language)]
        if let about = course.about(in: language) { words["about"] = about }
        return words
    }
}

/// The path of a course's page in a language (Russian needs no parameter).
func coursePath(_ course: Course, _ language: Language) -> String {
    "/courses/\(course.slug)" + (language == .ru ? "" : "?lang=\(language.rawValue)")
}
