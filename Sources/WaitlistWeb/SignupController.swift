import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import WaitlistCore
import WaitlistStore

/// Signups from the HTML form and the JSON API. Every accepted signup gets the same answer,
/// whether the address is new, pending, confirmed, unsubscribed or bounced, and whether the form
/// was filled by a person or a bot.
struct SignupController: Sendable {
    let database: AppDatabase
    let coursePages: CoursePageController
    let clientAddresses: ClientAddressResolver
    /// `nil` when `WAITLIST_SIGNUP_RATE_LIMIT` is `off`.
    let rateLimiter: SignupRateLimiter?
    let formStamp: FormStamp
    let origins: OriginPolicy
    /// Called after a signup queued mail, so the worker sends it at once.
    let mailQueued: @Sendable () -> Void
    let now: @Sendable () -> Date
    /// `waitlist_signups_total` by course.
    let signupCounters = CountersByCourse(label: "waitlist_signups_total")
    /// The deadlines of the bodies being read (``bodyTimeout``).
    let bodyDeadlines = BodyDeadlines()

    /// How long a client may take to send its body.
    static let bodyTimeout: Duration = .seconds(10)
    /// The longest value accepted for each field other than the address (checked before any work).
    static let fieldLimits = ["course": 64, "locale": 35, "stamp": 100, "website": 200]

    func addRoutes(to router: Router<AppRequestContext>) {
        router.post("/subscribe", use: subscribeForm)
        router.post("/api/subscribe", use: subscribeJSON)
        router.on("/api/subscribe", method: .options, use: preflight)
    }

    /// The JSON body of `POST /api/subscribe`.
    struct SignupRequest: Decodable {
        var email: String
        var course: String?
        var locale: String?
    }

    // MARK: - Form

    @Sendable func subscribeForm(request: Request, context: AppRequestContext) async throws -> Response {
        try await subscribeForm(request: request, context: context, framed: false)
    }

    /// A signup from the course page's form or, `framed`, from the embed's (`POST /embed/{slug}`,
    /// whose course is the one in its path): the same rules; the embed's answers stay in its frame.
    func subscribeForm(request: Request, context: AppRequestContext, framed: Bool) async throws -> Response {
        if let refusal = limit(request, context: context, json: false, framed: framed) { return refusal }
        guard request.headers[.contentType]?.lowercased().hasPrefix("application/x-www-form-urlencoded") == true else {
            throw HTTPError(.unsupportedMediaType, message: "Send the form as application/x-www-form-urlencoded.")
        }
        let body = try await collectBody(of: request, context: context)
        guard let text = String(bytes: body.readableBytesView, encoding: .utf8), let fields = FormFields(body: text),
            let email = fields["email"], Self.fieldLimits.allSatisfy({ (fields[$0.key]?.count ?? 0) <= $0.value })
        else {
            throw HTTPError(.badRequest)
        }
        let language = fields["locale"].flatMap(Language.init(tag:)) ?? request.preferredLanguage
        let slug = framed ? context.parameters.get("slug") : fields["course"].flatMap { $0.isEmpty ? nil : $0 }
        let course = try await course(named: slug, language: language)
        let checkInbox =
            framed
            ? coursePages.checkInboxPage(course: course, language: language, framed: true)
            : Response(status: .seeOther, headers: [.location: "/courses/\(course.slug)/subscribed?lang=\(language.rawValue)"])
        let address: EmailAddress
        do {
            address = try EmailAddress(email)
        } catch {
            // Shown again with a stamp that counts from the page the person filled in: a correction sent at once is no bot's.
            let message = PageWords.of(language).invalidEmail.message(for: error)
            return try await coursePages.render(
                course: course, language: language, switchPath: "/courses/\(course.slug)", status: .unprocessableContent,
                email: String(email.prefix(254)), error: message,
                stamp: formStamp.reissue(after: fields["stamp"], course: course.slug, now: now()), framed: framed)
        }
        // A page from another site posting its visitors' browsers here is no signup: the same answer, no mail.
        guard origins.isSameSiteOrAllowedFormPost(request) else {
            return refused(.crossSite, course: course, context: context, answer: checkInbox)
        }
        let stamp = fields["stamp"]
        let parts = stamp.flatMap { formStamp.parts(of: $0, course: course.slug) }
        let verdict = formStamp.verdict(on: parts, now: now())
        let trapFilled = fields["website"]?.isEmpty == false
        if verdict == .stale, !trapFilled {
            // A tab left open for hours: the form again, with its address, and a word to send it once more.
            return try await coursePages.render(
                course: course, language: language, switchPath: "/courses/\(course.slug)", email: String(email.prefix(254)),
                notice: PageWords.of(language).staleForm, stamp: formStamp.reissue(after: stamp, course: course.slug, now: now()),
                framed: framed)
        }
        // A bot fills the hidden field, submits faster than a person can, or sends one page's form
        // again; it gets the same answer and no mail.
        if trapFilled { return refused(.honeypot, course: course, context: context, answer: checkInbox) }
        guard verdict == .plausible, let parts else {
            return refused(verdict == .tooFast ? .tooFast : .invalidStamp, course: course, context: context, answer: checkInbox)
        }
        let outcome = try await record(
            address, course: .id(course.id!), spending: parts, language: language, request: request, context: context)
        if outcome == .replayed { return refused(.replayed, course: course, context: context, answer: checkInbox) }
        return checkInbox
    }

    /// Why a form post was taken for a bot's: the label of `waitlist_signups_refused_total` and of the log line.
    enum Refusal: String {
        case honeypot
        case tooFast = "too_fast"
        case replayed
        case crossSite = "cross_site"
        case invalidStamp = "invalid_stamp"
    }

    /// The answer a person would get, for a post taken for a bot's: counted by reason and logged at
    /// `info` (never with the address), so that an operator sees a wave of refusals that may be people.
    private func refused(_ reason: Refusal, course: Course, context: AppRequestContext, answer: Response) -> Response {
        Counter(label: "waitlist_signups_refused_total", dimensions: [("reason", reason.rawValue)]).increment()
        context.logger.info(
            "Signup form post refused as automated", metadata: ["reason": "\(reason.rawValue)", "course": "\(course.slug)"])
        return answer
    }

    // MARK: - JSON API

    @Sendable func subscribeJSON(request: Request, context: AppRequestContext) async throws -> Response {
        guard origins.allows(request) else {
            return JSONReply.error(status: .forbidden, code: "origin_not_allowed", message: "This origin may not use the signup API.")
        }
        var response = try await subscribeJSONAllowed(request: request, context: context)
        origins.addHeaders(for: request, to: &response)
        return response
    }

    private func subscribeJSONAllowed(request: Request, context: AppRequestContext) async throws -> Response {
        if let refusal = limit(request, context: context, json: true) { return refusal }
        guard request.headers[.contentType]?.lowercased().hasPrefix("application/json") == true else {
            return JSONReply.error(
                status: .unsupportedMediaType, code: "unsupported_media_type", message: "Send the body as application/json.")
        }
        let body = try await collectBody(of: request, context: context)
        guard let signup = try? JSONDecoder().decode(SignupRequest.self, from: body),
            (signup.course?.count ?? 0) <= Self.fieldLimits["course"]!, (signup.locale?.count ?? 0) <= Self.fieldLimits["locale"]!
        else {
            return JSONReply.error(
                status: .badRequest, code: "bad_request",
                message: "The body must be a JSON object with a string \"email\" and optional \"course\" and \"locale\".")
        }
        let language = signup.locale.flatMap(Language.init(tag:)) ?? .ru
        let address: EmailAddress
        do {
            address = try EmailAddress(signup.email)
        } catch {
            return JSONReply.error(status: .unprocessableContent, code: "invalid_email", message: error.message)
        }
        // The course is looked up in the signup's own transaction: no read before it.
        try await record(address, course: .slug(signup.course), language: language, request: request, context: context)
        return JSONReply.pending()
    }

    /// The CORS preflight of a browser on an allowed origin.
    @Sendable func preflight(request: Request, context: AppRequestContext) async throws -> Response {
        guard let origin = request.headers[.origin], origins.isAllowed(origin) else {
            return Response(status: .forbidden)
        }
        var response = Response(status: .noContent)
        response.headers[.accessControlAllowOrigin] = origin
        response.headers[.accessControlAllowMethods] = "POST"
        response.headers[.accessControlAllowHeaders] = "Content-Type"
        response.headers[.accessControlMaxAge] = "600"
        response.headers[.vary] = "Origin"
        return response
    }

    // MARK: - Shared

    /// The course a signup names, or the only one; refusals in a visitor's words (the database's
    /// own are for the operator at the command line).
    private func course(named slug: String?, language: Language) async throws -> Course {
        do {
            return try await database.perform { try $0.resolveCourse(slug: slug) }
        } catch let error as WaitlistError {
            throw Self.visitorError(error, language: language)
        }
    }

    /// A course not found, or not named among several, in the visitor's words.
    private static func visitorError(_ error: WaitlistError, language: Language) -> any Error {
        switch error.kind {
        case .notFound: HTTPError(.notFound, message: PageWords.of(language).noSuchCourse)
        case .usage: HTTPError(.badRequest, message: PageWords.of(language).chooseCourse)
        default: error
        }
    }

    /// The 429 answer when the client is over its limit, else `nil` (and the attempt is counted).
    private func limit(_ request: Request, context: AppRequestContext, json: Bool, framed: Bool = false) -> Response? {
        guard let rateLimiter else { return nil }
        let client = clientAddresses.clientAddress(of: request, peer: context.remoteAddress) ?? "unknown"
        guard case .limited(let retryAfter) = rateLimiter.attempt(client: client, now: now()) else { return nil }
        Counter(label: "waitlist_signups_refused_total", dimensions: [("reason", "rate_limit")]).increment()
        var response =
            json
            ? JSONReply.error(
                status: .tooManyRequests, code: "too_many_requests", message: "Too many signups from your address; try again later.")
            : coursePages.pages.error(.tooManyRequests, language: request.preferredLanguage, framed: framed)
        response.headers[.retryAfter] = String(retryAfter)
        return response
    }

    /// The body, up to the request context's limit (413 beyond) and within ``bodyTimeout`` (408
    /// beyond); a body that cannot be read (malformed chunks, cut short) is a 400.
    private func collectBody(of request: Request, context: AppRequestContext) async throws -> ByteBuffer {
        let limit = context.maxUploadSize
        return try await withThrowingTaskGroup(of: ByteBuffer?.self) { group in
            group.addTask {
                do {
                    return try await request.body.collect(upTo: limit)
                } catch let error as NIOTooManyBytesError {
                    throw error
                } catch is CancellationError {
                    throw CancellationError()
                } catch {
                    // A broken body (bad chunk sizes, cut short before its Content-Length) is the client's fault.
                    throw HTTPError(.badRequest, message: "The request body could not be read.")
                }
            }
            group.addTask { [bodyDeadlines] in
                await bodyDeadlines.wait(until: .now + Self.bodyTimeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let body = try await group.next(), let body else {
                throw HTTPError(.requestTimeout, message: "The request body came too slowly.")
            }
            return body
        }
    }

    /// Writes the signup through the group commit, spending the form's stamp (`spending`) in the
    /// same transaction; answers only once it is on the disk.
    @discardableResult
    private func record(
        _ address: EmailAddress, course: SignupCourse, spending stamp: FormStamp.Parts? = nil, language: Language, request: Request,
        context: AppRequestContext
    ) async throws -> SignupOutcome {
        let client = ClientContext(
            source: request.signupSource, ip: clientAddresses.clientAddress(of: request, peer: context.remoteAddress),
            userAgent: request.headers[.userAgent])
        let written: (outcome: SignupOutcome, courseSlug: String)
        do {
            written = try await database.subscribeDurably(
                email: address, course: course, spending: stamp, language: language, client: client, now: now())
        } catch let error as WaitlistError where error.kind != .unavailable {
            throw Self.visitorError(error, language: language)
        }
        guard written.outcome != .replayed else { return .replayed }
        signupCounters.increment(course: written.courseSlug)
        context.logger.debug("Signup", metadata: ["course": "\(written.courseSlug)", "outcome": "\(written.outcome)"])
        if written.outcome == .confirmationQueued { mailQueued() }
        return written.outcome
    }
}

/// Which browser origins may call the JSON API: the service's own, and `WAITLIST_ALLOWED_ORIGINS`.
struct OriginPolicy: Sendable {
    let allowed: Set<String>

    init(baseURL: String, allowedOrigins: [String]) {
        var allowed = Set(allowedOrigins.map(Self.normalise))
        if let url = URL(string: baseURL), let scheme = url.scheme, let host = url.host {
            allowed.insert(Self.normalise("\(scheme)://\(host)" + (url.port.map { ":\($0)" } ?? "")))
        }
        self.allowed = allowed
    }

    func isAllowed(_ origin: String) -> Bool {
        allowed.contains(Self.normalise(origin))
    }

    /// Whether a form post comes from one of the service's own pages or an allowed embed origin, as
    /// far as the browser tells: by `Sec-Fetch-Site` where it sends it, else by `Origin` (where
    /// `null`, from a page that hides its origin, is not ours). A request with neither is not a
    /// browser's; the other rules judge it.
    func isSameSiteOrAllowedFormPost(_ request: Request) -> Bool {
        let origin = request.headers[.origin]
        if let site = request.headers[.secFetchSite]?.lowercased() {
            if site == "same-origin" || site == "none" { return true }
            return origin.map(isAllowed) ?? false
        }
        guard let origin else { return true }
        return isAllowed(origin)
    }

    /// Requests without an Origin (not from a browser) are allowed; browsers must come from an allowed origin.
    func allows(_ request: Request) -> Bool {
        guard let origin = request.headers[.origin] else { return true }
        return isAllowed(origin)
    }

    /// The CORS headers of an answer to an allowed cross-origin request.
    func addHeaders(for request: Request, to response: inout Response) {
        guard let origin = request.headers[.origin], isAllowed(origin) else { return }
        response.headers[.accessControlAllowOrigin] = origin
        response.headers[.vary] = "Origin"
    }

    private static func normalise(_ origin: String) -> String {
        origin.trimmingCharacters(in: .whitespaces).lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "/"))
    }
}

/// The fields of an `application/x-www-form-urlencoded` body; the first value of a repeated field wins.
///
/// Not Hummingbird's `URLEncodedFormDecoder`: it turns percent-encoded bytes that are not UTF-8
/// into U+FFFD instead of refusing them (`email=a%FFb@example.com` became an address with a
/// replacement character in it), where a form that is not UTF-8 is a `400` here (the route
/// tests' malformed forms); and it refuses a repeated field, where this keeps the first.
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

/// A counter with a `course` dimension, each course's made once (making one looks it up in the
/// metrics registry, which costs more than counting).
final class CountersByCourse: Sendable {
    private let label: String
    private let counters = NIOLockedValueBox<[String: Counter]>([:])

    init(label: String) {
        self.label = label
    }

    func increment(course: String) {
        let counter = counters.withLockedValue { counters in
            if let counter = counters[course] { return counter }
            let counter = Counter(label: label, dimensions: [("course", course)])
            counters[course] = counter
            return counter
        }
        counter.increment()
    }
}
