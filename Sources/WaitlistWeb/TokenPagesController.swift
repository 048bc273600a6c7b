import Foundation
import HTTPTypes
import Hummingbird
import WaitlistCore
import WaitlistStore

/// The pages behind the links in mails. A GET only shows a page with a button, and nothing changes
/// until the button's POST: mail scanners fetch links, and some run the page's scripts and move a
/// pointer, so the page has no script that could submit on anyone's behalf.
struct TokenPagesController: Sendable {
    let database: AppDatabase
    let pages: Pages
    let clientAddresses: ClientAddressResolver
    let now: @Sendable () -> Date

    func addRoutes(to router: Router<AppRequestContext>) {
        router.get("/confirm/:token", use: showConfirm)
        router.post("/confirm/:token", use: confirm)
        router.get("/unsubscribe/:token", use: showUnsubscribe)
        router.post("/unsubscribe/:token", use: unsubscribe)
    }

    // MARK: - Confirm

    @Sendable func showConfirm(request: Request, context: AppRequestContext) async throws -> Response {
        let language = request.preferredLanguage
        guard let token = token(in: context) else { return unknownLink(language) }
        let now = now()
        switch try await database.perform({ try $0.lookUp(token, purpose: .confirm, now: now) }) {
        case .alreadyDone(let subscriber, let course): return alreadyConfirmed(subscriber, course)
        case .valid(let subscriber, let course):
            let words = PageWords.of(subscriber.language)
            return pages.page(
                "token-action", language: subscriber.language, title: words.confirmTitle,
                context: [
                    "heading": words.confirmTitle, "text": words.confirmText, "courseTitle": course.title(in: subscriber.language),
                    "action": "/confirm/\(token.value)", "button": words.confirmButton,
                ])
        case .expired(let course): return expiredLink(course, language)
        case .unknown: return unknownLink(language)
        }
    }

    @Sendable func confirm(request: Request, context: AppRequestContext) async throws -> Response {
        let language = request.preferredLanguage
        guard let token = token(in: context) else { return unknownLink(language) }
        let client = ClientContext(
            source: nil, ip: clientAddresses.clientAddress(of: request, peer: context.remoteAddress), userAgent: request.headers[.userAgent]
        )
        let now = now()
        switch try await database.perform({ try $0.confirm(token, client: client, now: now) }) {
        case .valid(let subscriber, let course):
            let words = PageWords.of(subscriber.language)
            return pages.message(
                language: subscriber.language, heading: words.confirmedTitle, text: words.confirmedText,
                courseTitle: course.title(in: subscriber.language))
        case .alreadyDone(let subscriber, let course): return alreadyConfirmed(subscriber, course)
        case .expired(let course): return expiredLink(course, language)
        case .unknown: return unknownLink(language)
        }
    }

    // MARK: - Unsubscribe

    @Sendable func showUnsubscribe(request: Request, context: AppRequestContext) async throws -> Response {
        let language = request.preferredLanguage
        guard let token = token(in: context) else { return unknownLink(language) }
        let now = now()
        switch try await database.perform({ try $0.lookUp(token, purpose: .unsubscribe, now: now) }) {
        case .valid(let subscriber, let course):
            let words = PageWords.of(subscriber.language)
            if subscriber.status == .unsubscribed {
                return pages.message(
                    language: subscriber.language, heading: words.unsubscribedTitle, text: words.unsubscribedText,
                    courseTitle: course.title(in: subscriber.language))
            }
            return pages.page(
                "token-action", language: subscriber.language, title: words.unsubscribeTitle,
                context: [
                    "heading": words.unsubscribeTitle, "text": words.unsubscribeText, "courseTitle": course.title(in: subscriber.language),
                    "action": "/unsubscribe/\(token.value)", "button": words.unsubscribeButton,
                ])
        case .alreadyDone, .expired, .unknown: return unknownLink(language)
        }
    }

    /// Unsubscribes at once; this is also the RFC 8058 one-click POST, whose body is ignored.
    @Sendable func unsubscribe(request: Request, context: AppRequestContext) async throws -> Response {
        let language = request.preferredLanguage
        guard let token = token(in: context) else { return unknownLink(language) }
        let now = now()
        switch try await database.perform({ try $0.unsubscribe(token, now: now) }) {
        case .valid(let subscriber, let course):
            let words = PageWords.of(subscriber.language)
            return pages.message(
                language: subscriber.language, heading: words.unsubscribedTitle, text: words.unsubscribedText,
                courseTitle: course.title(in: subscriber.language))
        case .alreadyDone, .expired, .unknown: return unknownLink(language)
        }
    }

    // MARK: - Helpers

    /// `200`: the link did what it does before, and changes nothing now.
    private func alreadyConfirmed(_ subscriber: Subscriber, _ course: Course) -> Response {
        let words = PageWords.of(subscriber.language)
        return pages.message(
            language: subscriber.language, heading: words.confirmedTitle, text: words.alreadyConfirmedText,
            courseTitle: course.title(in: subscriber.language))
    }

    private func token(in context: AppRequestContext) -> Token? {
        context.parameters.get("token").flatMap { Token(link: $0) }
    }

    private func unknownLink(_ language: Language) -> Response {
        let words = PageWords.of(language)
        return pages.message(
            language: language, status: .notFound, heading: words.unknownLinkTitle, text: words.unknownLinkText,
            link: (href: "/", label: words.signUpAgain))
    }

    private func expiredLink(_ course: Course, _ language: Language) -> Response {
        let words = PageWords.of(language)
        return pages.message(
            language: language, status: .gone, heading: words.expiredTitle, text: words.expiredText,
            courseTitle: course.title(in: language),
            link: (href: coursePath(course, language), label: words.signUpAgain))
    }
}
