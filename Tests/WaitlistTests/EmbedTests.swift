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

@Suite("Embed")
struct EmbedTests {
    /// A world whose service is at `https://waitlist.example.org` and lets the school's site frame the embed.
    static func schoolWorld(origins: String = "https://school.example, https://blog.school.example:8443") async throws -> TestWorld {
        var world = try await TestWorld.make()
        world.settings = try Settings(
            environment: ["WAITLIST_BASE_URL": "https://waitlist.example.org", "WAITLIST_ALLOWED_ORIGINS": origins])
        return world
    }

    // MARK: - The frame

    @Test("The embed is the course's form alone, posting to /embed/{slug}, with the page's stamp and honeypot")
    func embedShowsTheForm() async throws {
        let world = try await Self.schoolWorld()
        try await world.application().test(.router) { client async throws in
            let response = try await client.get("/embed/negotiation?lang=en")
            #expect(response.status == .ok)
            let page = response.text
            #expect(page.contains(#"<html lang="en">"#))
            #expect(page.contains(#"<form class="signup" method="post" action="/embed/negotiation?lang=en""#))
            #expect(page.contains(#"name="website" tabindex="-1""#))
            #expect(formStamp(in: page) != nil)
            #expect(page.contains(#"<script src="/embed-frame.js" defer></script>"#))
            // The form alone: no language switch leading out of the frame.
            #expect(!page.contains(#"class="footer""#))
            #expect(!response.headers.contains(.setCookie))
        }
    }

    @Test("The embed may be framed by the allowed origins only; every other page by nobody")
    func embedFrameAncestors() async throws {
        let world = try await Self.schoolWorld()
        try await world.application().test(.router) { client async throws in
            for uri in ["/embed/negotiation", "/embed/no-such-course"] {
                let response = try await client.get(uri)
                #expect(
                    response.headers[.contentSecurityPolicy]?.contains(
                        "frame-ancestors https://school.example https://blog.school.example:8443;") == true)
                #expect(response.headers[HTTPField.Name("X-Frame-Options")!] == nil)
            }
            for uri in ["/", "/courses/negotiation", "/courses/negotiation/subscribed", "/embedded", "/healthz"] {
                let response = try await client.get(uri)
                #expect(response.headers[.contentSecurityPolicy]?.contains("frame-ancestors 'none'") == true)
                #expect(response.headers[HTTPField.Name("X-Frame-Options")!] == "DENY")
            }
        }
    }

    @Test("With no WAITLIST_ALLOWED_ORIGINS nobody may frame the embed")
    func embedUnframableWithoutOrigins() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            let response = try await client.get("/embed/negotiation")
            #expect(response.status == .ok)
            #expect(response.headers[.contentSecurityPolicy]?.contains("frame-ancestors 'none'") == true)
        }
    }

    @Test("Once enrolment is open the embed shows the date, and its link opens a new top-level tab")
    func openEmbedLinksOut() async throws {
        let world = try await Self.schoolWorld()
        _ = try await world.database.open(courseId: try world.course.id!, date: "2027-03-15", enrolURL: "https://school.example/enrol")
        try await world.application().test(.router) { client async throws in
            let page = try await client.get("/embed/negotiation").text
            #expect(page.contains("15 марта 2027"))
            #expect(page.contains(#"href="https://school.example/enrol" target="_blank" rel="noopener""#))
            #expect(!page.contains("<form"))
        }
    }

    @Test("An unknown course's embed is a 404 inside the frame, with no link to pages that refuse framing")
    func unknownCourseEmbedIs404() async throws {
        let world = try await Self.schoolWorld()
        try await world.application().test(.router) { client async throws in
            for response in [
                try await client.get("/embed/no-such-course"),
                try await client.postForm("/embed/no-such-course", [("email", "anna@example.com")]),
            ] {
                #expect(response.status == .notFound)
                #expect(response.text.contains(#"<body class="embedded">"#))
                #expect(!response.text.contains(#"href="/""#))
            }
        }
    }

    // MARK: - Its post

    @Test("A signup in the frame answers check-your-inbox inside the frame and queues one confirmation")
    func embedSignup() async throws {
        let world = try await Self.schoolWorld()
        try await world.application().test(.router) { client async throws in
            let response = try await client.signUpInEmbed("anna@example.com", clock: world.clock)
            #expect(response.status == .ok)
            #expect(response.text.contains("Check your inbox"))
            #expect(response.text.contains(#"<body class="embedded">"#))
            #expect(response.text.contains(#"href="/embed/negotiation?lang=en""#))
            #expect(response.headers[.contentSecurityPolicy]?.contains("frame-ancestors https://school.example") == true)
        }
        try await world.deliverAll()
        #expect(world.transport.messages.map(\.to.address) == ["anna@example.com"])
    }

    @Test("An invalid address in the frame gets 422 with the embed's form, the address kept and a message; no mail")
    func embedInvalidAddress() async throws {
        let world = try await Self.schoolWorld()
        try await world.application().test(.router) { client async throws in
            let response = try await client.signUpInEmbed("anna@", clock: world.clock)
            #expect(response.status == .unprocessableContent)
            #expect(response.text.contains(#"action="/embed/negotiation?lang=en""#))
            #expect(response.text.contains(#"value="anna@""#))
            #expect(response.text.contains(#"class="error""#))
        }
        #expect(try world.database.backlog().isEmpty)
    }

    @Test("Past the per-client limit, the frame's post gets 429 with Retry-After inside the frame")
    func embedRateLimited() async throws {
        var world = try await Self.schoolWorld()
        world.settings.signupRateLimit = Rate(count: 1, per: .hour)
        let clock = world.clock
        try await world.application().test(.router) { client async throws in
            #expect(try await client.signUpInEmbed("a@example.com", clock: clock).status == .ok)
            let refused = try await client.signUpInEmbed("b@example.com", clock: clock)
            #expect(refused.status == .tooManyRequests)
            #expect(Int(refused.headers[.retryAfter] ?? "") ?? 0 > 0)
            #expect(refused.text.contains(#"<body class="embedded">"#))
            #expect(refused.text.contains(#"<html lang="en">"#))
        }
        #expect(try world.database.status(courseId: 1).pending == 1)
    }

    @Test(
        "The frame's own post (same-origin, as Chromium sends it from a framed document) signs up; other sites' posts do not",
        arguments: [
            (["Sec-Fetch-Site": "same-origin", "Origin": "https://waitlist.example.org"], true),
            (["Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"], false),
            (["Origin": "https://evil.example"], false),
        ])
    func embedPostOrigins(_ headers: [String: String], signsUp: Bool) async throws {
        let world = try await Self.schoolWorld()
        try await world.application().test(.router) { client async throws in
            var fields = HTTPFields()
            for (name, value) in headers { fields[HTTPField.Name(name)!] = value }
            let answer = try await client.signUpInEmbed("visitor@example.com", clock: world.clock, headers: fields)
            // The same answer either way: a foreign page learns nothing.
            #expect(answer.status == .ok)
            #expect(answer.text.contains("Check your inbox"))
        }
        try await world.deliverAll()
        #expect(world.transport.messages.contains { $0.to.address == "visitor@example.com" } == signsUp)
    }

    @Test("The frame's post signs up for the course in its path, whatever its form says")
    func embedPostUsesPathCourse() async throws {
        let world = try await Self.schoolWorld()
        _ = try world.database.addCourse(slug: "typography", title: "Типографика")
        try await world.application().test(.router) { client async throws in
            let page = try await client.get("/embed/typography").text
            world.clock.advance(by: 5)
            let answer = try await client.postForm(
                "/embed/typography",
                [("email", "anna@example.com"), ("course", "negotiation"), ("website", ""), ("stamp", try #require(formStamp(in: page)))])
            #expect(answer.status == .ok)
            #expect(answer.text.contains("Типографика"))
        }
        #expect(try world.database.status(courseId: 1).pending == 0)
    }

    // MARK: - The scripts and the setting

    @Test("/embed.js and the frame's script are served as JavaScript with a cache header")
    func embedScripts() async throws {
        let world = try await Self.schoolWorld()
        try await world.application().test(.router) { client async throws in
            for uri in ["/embed.js", "/embed-frame.js"] {
                let response = try await client.get(uri)
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/javascript") == true)
                #expect(response.headers[.cacheControl] == "public, max-age=3600")
            }
            #expect(try await client.get("/embed.js").text.contains("event.origin !== origin"))
        }
    }

    @Test(
        "WAITLIST_ALLOWED_ORIGINS takes origins only; a path, a quote or a list written with spaces is a usage error",
        arguments: [
            ("https://school.example", true), ("http://localhost:8000/", true), ("https://[::1]:8443", true),
            ("https://school.example/articles", false), ("school.example", false), ("https://school.example 'unsafe-inline'", false),
            ("https://a.example; script-src *", false), ("ftp://school.example", false),
        ])
    func allowedOriginsSetting(_ value: String, valid: Bool) throws {
        let parsed = try? Settings(environment: ["WAITLIST_ALLOWED_ORIGINS": value])
        #expect((parsed != nil) == valid)
    }
}

extension TestClientProtocol {
    /// Fills in the embed's form as a person does: loads the frame, takes some seconds, and sends it.
    func signUpInEmbed(_ email: String, course: String = "negotiation", clock: TestClock, headers: HTTPFields = [:]) async throws
        -> TestResponse
    {
        let page = try await get("/embed/\(course)?lang=en").text
        clock.advance(by: 5)
        return try await postForm(
            "/embed/\(course)?lang=en",
            [("email", email), ("course", course), ("locale", "en"), ("website", ""), ("stamp", formStamp(in: page) ?? "")],
            headers: headers)
    }
}
