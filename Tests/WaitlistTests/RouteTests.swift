import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

@Suite("Routes")
struct RouteTests {
    // MARK: - Pages

    @Test("The home page is the course page with its notify-me form")
    func homeShowsCourseForm() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            let response = try await client.get("/")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "text/html; charset=utf-8")
            #expect(response.text.contains("«Переговоры и отношения с клиентами»"))
            #expect(response.text.contains(#"<form class="signup" method="post" action="/subscribe""#))
            #expect(response.text.contains(#"name="course" value="negotiation""#))
        }
    }

    @Test("The course page speaks English when asked")
    func coursePageInEnglish() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            let byQuery = try await client.get("/courses/negotiation?lang=en")
            #expect(byQuery.text.contains("Notify me"))
            #expect(byQuery.text.contains(#"<html lang="en">"#))
            let byHeader = try await client.get("/courses/negotiation", headers: [.acceptLanguage: "en-GB,en;q=0.9"])
            #expect(byHeader.text.contains("Notify me"))
            let byDefault = try await client.get("/courses/negotiation")
            #expect(byDefault.text.contains("Сообщите мне"))
        }
    }

    @Test("Once enrolment is open the page shows the date and the enrolment link instead of the form")
    func openCoursePageShowsDate() async throws {
        let world = try await TestWorld.make()
        _ = try await world.database.open(
            courseId: try world.course.id!, date: "2027-03-15", enrolURL: "https://school.example/enrol?x=1&y=2")
        try await world.application().test(.router) { client async throws in
            let page = try await client.get("/courses/negotiation").text
            #expect(page.contains("15 марта 2027"))
            #expect(page.contains(#"href="https://school.example/enrol?x=1&amp;y=2""#))
            #expect(!page.contains(#"action="/subscribe""#))
        }
    }

    @Test("With several courses the home page lists them")
    func homeListsCourses() async throws {
        let world = try await TestWorld.make()
        try world.database.addCourse(slug: "pricing", title: "Ценообразование")
        try await world.application().test(.router) { client async throws in
            let page = try await client.get("/").text
            #expect(page.contains(#"href="/courses/negotiation""#))
            #expect(page.contains(#"href="/courses/pricing""#))
        }
    }

    @Test("A signup without a course while there are several, or for an unknown course, is refused in a visitor's words")
    func courseRefusalsSpeakToVisitors() async throws {
        let world = try await TestWorld.make()
        try world.database.addCourse(slug: "pricing", title: "Ценообразование")
        try await world.application().test(.router) { client async throws in
            let api = try await client.postJSON("/api/subscribe", #"{"email": "anna@example.com", "locale": "en"}"#)
            #expect(api.status == .badRequest)
            #expect(api.text.contains("There are several courses: open the page"), "\(api.text)")
            let form = try await client.postForm("/subscribe", [("email", "anna@example.com"), ("locale", "ru")])
            #expect(form.status == .badRequest)
            #expect(form.text.contains("Курсов несколько"), "\(form.text)")
            let unknown = try await client.postJSON("/api/subscribe", #"{"email": "anna@example.com", "course": "nope"}"#)
            #expect(unknown.status == .notFound)
            #expect(unknown.text.contains("Такого курса нет"), "\(unknown.text)")
            for response in [api, form, unknown] {
                #expect(!response.text.contains("--course") && !response.text.contains("waitlist course"))
            }
        }
    }

    @Test("Unknown courses and paths get a 404 page, never a 5xx")
    func unknownPathsAre404() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            #expect(try await client.get("/courses/nope").status == .notFound)
            #expect(try await client.get("/no/such/page").status == .notFound)
            #expect(try await client.get("/courses/nope").text.contains("<h1>"))
        }
    }

    @Test("Static files are served by plain name only; nothing outside Public/ is reachable")
    func staticFiles() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            let styles = try await client.get("/styles.css")
            #expect(styles.status == .ok)
            #expect(styles.headers[.contentType]?.hasPrefix("text/css") == true)
            for path in [
                "/../Package.swift", "//Package.swift", "/%2e%2e/Package.swift", "/.gitignore", "//" + String(repeating: "a", count: 2000),
            ] {
                let response = try await client.get(path)
                #expect(response.status == .notFound, "\(path.prefix(40))")
                #expect(!response.text.contains("swift-tools-version"))
            }
        }
        #expect(StaticFilesMiddleware<AppRequestContext>.isPlainFileName("/embed.js"))
        #expect(!StaticFilesMiddleware<AppRequestContext>.isPlainFileName("/a/b.css"))
        #expect(!StaticFilesMiddleware<AppRequestContext>.isPlainFileName("/"))
    }

    @Test("Every answer carries the security headers")
    func securityHeaders() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            for uri in ["/", "/healthz", "/no/such/page"] {
                let response = try await client.get(uri)
                #expect(response.headers[.contentSecurityPolicy]?.contains("frame-ancestors 'none'") == true)
                #expect(response.headers[.xContentTypeOptions] == "nosniff")
                // The page with the form says same-origin, so that its post carries its origin.
                #expect(response.headers[HTTPField.Name("Referrer-Policy")!] == (uri == "/" ? "same-origin" : "no-referrer"))
            }
        }
    }

    // MARK: - Signup

    @Test("A form signup answers 303 to the check-your-inbox page and queues one confirmation")
    func formSignupRedirects() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            let response = try await client.signUpOnPage("anna@example.com", clock: world.clock)
            #expect(response.status == .seeOther)
            #expect(response.headers[.location] == "/courses/negotiation/subscribed?lang=ru")
            let inbox = try await client.get(try #require(response.headers[.location]))
            #expect(inbox.status == .ok)
            #expect(inbox.text.contains("Проверьте почту"))
        }
        try await world.deliverAll()
        #expect(world.transport.messages.map(\.to.address) == ["anna@example.com"])
    }

    @Test("The answer is the same for a new, pending, confirmed and unsubscribed address")
    func sameAnswerWhoeverSignsUp() async throws {
        let world = try await TestWorld.make()
        try await world.confirmedSubscriber("confirmed@example.com")
        try await world.signUp("pending@example.com")
        try await world.confirmedSubscriber("left@example.com")
        let leftToken = try world.token("unsubscribe", sentTo: "left@example.com")
        _ = try world.database.unsubscribe(leftToken)
        try await world.application().test(.router) { client async throws in
            var formAnswers: [String] = []
            var apiAnswers: [String] = []
            for address in ["new@example.com", "pending@example.com", "confirmed@example.com", "left@example.com"] {
                let form = try await client.signUpOnPage(address, clock: world.clock)
                formAnswers.append(describe(form))
                let api = try await client.postJSON("/api/subscribe", #"{"email": "\#(address)"}"#)
                apiAnswers.append(describe(api))
            }
            #expect(Set(formAnswers).count == 1)
            #expect(Set(apiAnswers).count == 1)
        }
    }

    @Test("An invalid address gets 422 with the form, the address typed, and a message; no mail")
    func invalidAddressIs422() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            let response = try await client.postForm("/subscribe", [("email", "anna<script>@example"), ("course", "negotiation")])
            #expect(response.status == .unprocessableContent)
            #expect(response.text.contains(#"action="/subscribe""#))
            #expect(response.text.contains("anna&lt;script&gt;@example"))
            #expect(!response.text.contains("<script>"))
            #expect(response.text.contains(#"class="error""#))
        }
        #expect(try world.database.backlog().isEmpty)
    }

    @Test("Malformed forms get 4xx: bad encoding, no email field, wrong type, unknown course, too large")
    func malformedForms() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
            #expect(try await client.post("/subscribe", body: "email=%ZZ", headers: form).status == .badRequest)
            #expect(try await client.post("/subscribe", body: "course=negotiation", headers: form).status == .badRequest)
            #expect(try await client.post("/subscribe", body: "email=a%FFb@example.com", headers: form).status == .badRequest)
            #expect(
                try await client.post("/subscribe", body: "email=a@example.com", headers: [.contentType: "text/plain"]).status
                    == .unsupportedMediaType)
            #expect(try await client.postForm("/subscribe", [("email", "a@example.com"), ("course", "nope")]).status == .notFound)
            let huge = "email=" + String(repeating: "a", count: 17 * 1024)
            #expect(try await client.post("/subscribe", body: huge, headers: form).status == .contentTooLarge)
        }
        #expect(try world.database.backlog().isEmpty)
    }

    @Test("The JSON API answers 202 pending and queues one confirmation")
    func apiSignup() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            let response = try await client.postJSON(
                "/api/subscribe", #"{"email": "anna@example.com", "course": "negotiation", "locale": "en"}"#)
            #expect(response.status == .accepted)
            #expect(response.text == #"{"status":"pending"}"#)
        }
        try await world.deliverAll()
        let message = try #require(world.transport.messages.first)
        #expect(message.subject.hasPrefix("Please confirm"))
    }

    @Test(
        "The JSON API refuses bad bodies with 4xx",
        arguments: [
            (#"{"email": "#, HTTPResponse.Status.badRequest), ("[]", .badRequest), (#"{"email": 5}"#, .badRequest), ("", .badRequest),
            (#"{"course": "negotiation"}"#, .badRequest), (#"{"email": "not-an-address"}"#, .unprocessableContent),
            (#"{"email": "a@example.com", "course": "nope"}"#, .notFound),
        ])
    func apiRefusesBadBodies(_ body: String, _ status: HTTPResponse.Status) async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            let response = try await client.postJSON("/api/subscribe", body)
            #expect(response.status == status)
            #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
            if status == .unprocessableContent {
                let json = try JSONSerialization.jsonObject(with: Data(response.text.utf8)) as? [String: String]
                #expect(json?["error"] == "invalid_email")
                #expect(json?["message"]?.isEmpty == false)
            }
        }
        #expect(try world.database.backlog().isEmpty)
    }

    @Test("The JSON API wants application/json")
    func apiWantsJSON() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            let response = try await client.post(
                "/api/subscribe", body: #"{"email": "a@example.com"}"#, headers: [.contentType: "text/plain"])
            #expect(response.status == .unsupportedMediaType)
        }
    }

    // MARK: - Confirm

    @Test("GET on a confirmation link shows a button and confirms nothing; POST confirms")
    func getDoesNotConfirm() async throws {
        let world = try await TestWorld.make()
        let token = try await world.pendingSubscriber("anna@example.com")
        try await world.application().test(.router) { client async throws in
            let page = try await client.get("/confirm/\(token.value)")
            #expect(page.status == .ok)
            #expect(page.text.contains(#"<form method="post" action="/confirm/\#(token.value)""#))
            #expect(try world.database.status(courseId: try world.course.id!).confirmed == 0)
            let confirmed = try await client.post("/confirm/\(token.value)")
            #expect(confirmed.status == .ok)
            #expect(confirmed.text.contains("Подписка подтверждена"))
            #expect(try world.database.status(courseId: try world.course.id!).confirmed == 1)
        }
    }

    @Test("Unknown and malformed confirmation links get a 404 page offering to sign up again")
    func unknownConfirmationIs404() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            for uri in ["/confirm/\(Token.generate().value)", "/confirm/short", "/confirm/%00%0d%0a"] {
                let get = try await client.get(uri)
                #expect(get.status == .notFound)
                let post = try await client.post(uri)
                #expect(post.status == .notFound)
                #expect(post.text.contains(#"href="/""#))
            }
        }
    }

    @Test("An expired confirmation link gets a 410 page with a way to sign up again")
    func expiredConfirmationIs410() async throws {
        let world = try await TestWorld.make()
        let token = try await world.pendingSubscriber("anna@example.com")
        world.clock.advance(by: 8 * 24 * 3600)
        try await world.application().test(.router) { client async throws in
            #expect(try await client.get("/confirm/\(token.value)").status == .gone)
            let post = try await client.post("/confirm/\(token.value)")
            #expect(post.status == .gone)
            #expect(post.text.contains(#"href="/courses/negotiation""#))
        }
    }

    @Test("A confirmation link of an earlier signup, ended by unsubscribing, gets a 410 page once the address signs up again")
    func earlierSignupsLinkIs410() async throws {
        // Given anna's confirmation, left unused when she unsubscribed through that mail's link
        let world = try await TestWorld.make()
        let earlier = try await world.pendingSubscriber("anna@example.com")
        world.clock.advance(by: 60)
        _ = try world.database.unsubscribe(try world.token("unsubscribe", sentTo: "anna@example.com"), now: world.clock.now)
        // And a signup of her address by someone else a day later, whose confirmation went out
        world.clock.advance(by: AppDatabase.confirmationInterval + 1)
        try await world.signUp("anna@example.com")
        try await world.deliverAll()
        try await world.application().test(.router) { client async throws in
            // When the earlier link is opened and its button pressed
            let page = try await client.get("/confirm/\(earlier.value)")
            let post = try await client.post("/confirm/\(earlier.value)")
            // Then both answer 410 with a way to sign up again, and nothing is confirmed
            #expect(page.status == .gone)
            #expect(post.status == .gone)
            #expect(post.text.contains(#"href="/courses/negotiation""#))
        }
        #expect(try world.database.status(courseId: 1).pending == 1)
        #expect(try world.database.status(courseId: 1).confirmed == 0)
    }

    // MARK: - Unsubscribe

    @Test("GET on an unsubscribe link shows a button; POST unsubscribes at once")
    func unsubscribeFlow() async throws {
        let world = try await TestWorld.make()
        try await world.confirmedSubscriber("anna@example.com")
        let token = try world.token("unsubscribe", sentTo: "anna@example.com")
        try await world.application().test(.router) { client async throws in
            let page = try await client.get("/unsubscribe/\(token.value)")
            #expect(page.status == .ok)
            #expect(page.text.contains(#"action="/unsubscribe/\#(token.value)""#))
            #expect(try world.database.status(courseId: try world.course.id!).unsubscribed == 0)
            let done = try await client.post("/unsubscribe/\(token.value)")
            #expect(done.status == .ok)
            #expect(try world.database.status(courseId: try world.course.id!).unsubscribed == 1)
        }
    }

    @Test("The RFC 8058 one-click POST unsubscribes")
    func oneClickUnsubscribe() async throws {
        let world = try await TestWorld.make()
        try await world.confirmedSubscriber("anna@example.com")
        let token = try world.token("unsubscribe", sentTo: "anna@example.com")
        try await world.application().test(.router) { client async throws in
            let response = try await client.postForm("/unsubscribe/\(token.value)", [("List-Unsubscribe", "One-Click")])
            #expect(response.status == .ok)
        }
        #expect(try world.database.status(courseId: try world.course.id!).unsubscribed == 1)
    }

    @Test("An unknown unsubscribe link gets a 404 page")
    func unknownUnsubscribeIs404() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            #expect(try await client.get("/unsubscribe/\(Token.generate().value)").status == .notFound)
            #expect(try await client.post("/unsubscribe/\(Token.generate().value)").status == .notFound)
        }
    }

    // MARK: - Operations

    @Test("healthz answers ok while the database answers")
    func health() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            let response = try await client.get("/healthz")
            #expect(response.status == .ok)
            #expect(response.text == "ok\n")
        }
    }

    @Test("The public port answers /metrics with 404: its counters would tell who signs up")
    func noMetricsOnThePublicPort() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            #expect(try await client.get("/metrics").status == .notFound)
        }
    }

    @Test("The metrics listener answers in the Prometheus text format, with subscriber and mail gauges read from the database")
    func metricsListener() async throws {
        let world = try await TestWorld.make()
        try await world.confirmedSubscriber("vera@example.com")
        try await world.signUp("anna@example.com")
        try await world.signUp("boris@example.com")
        let dependencies = AppDependencies(
            settings: world.settings, database: world.database, templates: world.templates,
            publicDirectory: try world.settings.staticFilesDirectory())
        try await Application(router: buildMetricsRouter(dependencies)).test(.router) { client async throws in
            let response = try await client.get("/metrics")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
            let lines = response.text.split(separator: "\n")
            #expect(lines.contains(#"waitlist_subscribers{course="negotiation",status="pending"} 2.0"#), "\(response.text)")
            #expect(lines.contains(#"waitlist_subscribers{course="negotiation",status="confirmed"} 1.0"#))
            #expect(lines.contains(#"waitlist_mail{course="negotiation",state="queued"} 2.0"#))
            #expect(lines.contains(#"waitlist_mail{course="negotiation",state="sent"} 1.0"#))
            #expect(try await client.get("/").status == .notFound)
        }
    }

    @Test("HEAD is answered wherever GET is: the same status and headers, no body")
    func headWhereverGet() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            for uri in ["/", "/courses/negotiation", "/healthz", "/no/such/page"] {
                let get = try await client.get(uri)
                let head = try await client.execute(uri: uri, method: .head)
                #expect(head.status == get.status, "\(uri)")
                #expect(head.body.readableBytes == 0, "\(uri)")
                #expect(head.headers[.contentType] == get.headers[.contentType], "\(uri)")
            }
        }
    }

    @Test("With WAITLIST_PRIVACY_URL the form links to the school's privacy notice; without it, no link")
    func privacyNoticeLink() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            #expect(!(try await client.get("/").text.contains("privacy")))
        }
        let settings = try Settings(environment: ["WAITLIST_PRIVACY_URL": "https://school.example/privacy?a=1&b=2"])
        try await world.application(settings: settings).test(.router) { client async throws in
            let page = try await client.get("/courses/negotiation?lang=en").text
            #expect(
                page.contains(#"<a href="https://school.example/privacy?a&#61;1&amp;b&#61;2">How we handle your data</a>"#)
                    || page.contains(#"<a href="https://school.example/privacy?a=1&amp;b=2">How we handle your data</a>"#), "\(page)")
        }
        #expect(throws: SettingsError.self) { try Settings(environment: ["WAITLIST_PRIVACY_URL": "javascript:alert(1)"]) }
    }

    @Test("WAITLIST_METRICS_ADDRESS takes host:port, IPv6 in brackets; anything else is a usage error")
    func metricsAddressSetting() throws {
        #expect(try Settings(environment: [:]).metricsAddress == nil)
        #expect(try Settings(environment: ["WAITLIST_METRICS_ADDRESS": "127.0.0.1:9464"]).metricsAddress! == ("127.0.0.1", 9464))
        #expect(try Settings(environment: ["WAITLIST_METRICS_ADDRESS": "[::1]:9464"]).metricsAddress! == ("::1", 9464))
        for bad in ["9464", "127.0.0.1", "::1:9464", "host:0", "host:99999", "[]:9464", "a b:1"] {
            #expect(throws: SettingsError.self, "\(bad)") { try Settings(environment: ["WAITLIST_METRICS_ADDRESS": bad]) }
        }
    }
}
