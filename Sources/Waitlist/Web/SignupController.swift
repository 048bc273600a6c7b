import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics

/// Signups from the HTML form and the JSON API. Every accepted signup gets the same answer,
/// whether the address is new, pending, confirmed, unsubscribed or bounced.
struct SignupController: Sendable {
    let database: AppDatabase
    let coursePages: CoursePageController
    let clientAddresses: ClientAddressResolver
    /// Called after a signup queued mail, so the worker sends it at once.
    let mailQueued: @Sendable () -> Void
    let now: @Sendable () -> Date

    func addRoutes(to router: Router<AppRequestContext>) {
        router.post("/subscribe", use: subscribeForm)
        router.post("/api/subscribe", use: subscribeJSON)
    }

    /// The JSON body of `POST /api/subscribe`.
    struct SignupRequest: Decodable {
        var email: String
        var course: String?
        var locale: String?
    }

    // MARK: - Form

    @Sendable func subscribeForm(request: Request, context: AppRequestContext) async throws -> Response {
        guard request.headers[.contentType]?.lowercased().hasPrefix("application/x-www-form-urlencoded") == true else {
            throw HTTPError(.unsupportedMediaType, message: "Send the form as application/x-www-form-urlencoded.")
        }
        let body = try await request.body.collect(upTo: context.maxUploadSize)
        guard let text = String(bytes: body.readableBytesView, encoding: .utf8), let fields = FormFields(body: text),
            let email = fields["email"]
        else {
            throw HTTPError(.badRequest)
        }
        let language = fields["locale"].flatMap(Language.init(tag:)) ?? request.preferredLanguage
        let course = try database.resolveCourse(slug: fields["course"].flatMap { $0.isEmpty ? nil : $0 })
        let address: EmailAddress
        do {
            address = try EmailAddress(email)
        } catch {
            let message = Strings.table(language)["invalid_email.\(error.code)"]!
            return try coursePages.render(
                course: course, language: language, switchPath: "/courses/\(course.slug)", status: .unprocessableContent,
                email: String(email.prefix(254)), error: message)
        }
        try record(address, course: course, language: language, request: request, context: context)
        return Response(status: .seeOther, headers: [.location: "/courses/\(course.slug)/subscribed?lang=\(language.rawValue)"])
    }

    // MARK: - JSON API

    @Sendable func subscribeJSON(request: Request, context: AppRequestContext) async throws -> Response {
        guard request.headers[.contentType]?.lowercased().hasPrefix("application/json") == true else {
            throw HTTPError(.unsupportedMediaType, message: "Send the body as application/json.")
        }
        let body = try await request.body.collect(upTo: context.maxUploadSize)
        let signup: SignupRequest
        do {
            signup = try JSONDecoder().decode(SignupRequest.self, from: body)
        } catch {
            throw HTTPError(
                .badRequest, message: "The body must be a JSON object with a string \"email\" and optional \"course\" and \"locale\".")
        }
        let language = signup.locale.flatMap(Language.init(tag:)) ?? .ru
        let course = try database.resolveCourse(slug: signup.course)
        let address: EmailAddress
        do {
            address = try EmailAddress(signup.email)
        } catch {
            return JSONReply.error(status: .unprocessableContent, code: "invalid_email", message: error.message)
        }
        try record(address, course: course, language: language, request: request, context: context)
        return JSONReply.body(["status": "pending"], status: .accepted)
    }

    // MARK: - Shared

    private func record(_ address: EmailAddress, course: Course, language: Language, request: Request, context: AppRequestContext) throws {
        let client = ClientContext(
            source: request.signupSource, ip: clientAddresses.clientAddress(of: request, peer: context.remoteAddress),
            userAgent: request.headers[.userAgent])
        let outcome = try database.subscribe(email: address, courseId: course.id!, language: language, client: client, now: now())
        Counter(label: "waitlist_signups_total", dimensions: [("course", course.slug)]).increment()
        context.logger.debug("Signup", metadata: ["course": "\(course.slug)", "outcome": "\(outcome)"])
        if outcome == .confirmationQueued { mailQueued() }
    }
}

/// The fields of an `application/x-www-form-urlencoded` body; the first value of a repeated field wins.
struct FormFields {
    private var values: [String: String] = [:]

    /// Parses a body; `nil` when it is not a well-formed form (bad percent-encoding, say).
    init?(body: String) {
        for pair in body.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = Self.decode(parts[0]), let value = Self.decode(parts.count > 1 ? parts[1] : "") else { return nil }
            if values[name] == nil { values[name] = value }
        }
    }

    subscript(name: String) -> String? { values[name] }

    private static func decode(_ text: Substring) -> String? {
        text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }
}
