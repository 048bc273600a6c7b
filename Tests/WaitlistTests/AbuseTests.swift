import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

@Suite("Abuse: rate limits, bots, origins")
struct AbuseTests {
    // MARK: - Rate limit

    @Test("Past the per-client limit, form and API together get 429 with Retry-After, and nothing is queued")
    func rateLimitAcrossFormAndAPI() async throws {
        var world = try await TestWorld.make()
        world.settings.signupRateLimit = Rate(count: 3, per: .hour)
        let clock = world.clock
        try await world.application().test(.router) { client async throws in
            #expect(try await client.signUpOnPage("a@example.com", clock: clock).status == .seeOther)
            #expect(try await client.postJSON("/api/subscribe", #"{"email": "b@example.com"}"#).status == .accepted)
            #expect(try await client.signUpOnPage("c@example.com", clock: clock).status == .seeOther)
            let page = try await client.signUpOnPage("d@example.com", clock: clock)
            #expect(page.status == .tooManyRequests)
            #expect(page.headers[.contentType] == "text/html; charset=utf-8")
            #expect(Int(page.headers[.retryAfter] ?? "") ?? 0 > 0)
            let api = try await client.postJSON("/api/subscribe", #"{"email": "e@example.com"}"#)
            #expect(api.status == .tooManyRequests)
            #expect(api.text.contains(#""error":"too_many_requests""#))
            #expect(Int(api.headers[.retryAfter] ?? "") ?? 0 > 0)
        }
        #expect(try world.database.status(courseId: 1).pending == 3)
    }

    @Test("The limiter refills over its period and keeps clients apart")
    func limiterRefillsPerClient() {
        let limiter = SignupRateLimiter(rate: Rate(count: 2, per: .minute))
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(limiter.attempt(client: "192.0.2.1", now: start) == .allowed)
        #expect(limiter.attempt(client: "192.0.2.1", now: start) == .allowed)
        #expect(limiter.attempt(client: "192.0.2.1", now: start) == .limited(retryAfter: 30))
        #expect(limiter.attempt(client: "192.0.2.2", now: start) == .allowed)
        #expect(limiter.attempt(client: "192.0.2.1", now: start.addingTimeInterval(30)) == .allowed)
        #expect(limiter.attempt(client: "192.0.2.1", now: start.addingTimeInterval(31)) == .limited(retryAfter: 29))
    }

    @Test("IPv6 clients count per /64: rotating through one block gets no more signups; another block is another client")
    func limiterKeysIPv6ByItsSlash64() {
        let limiter = SignupRateLimiter(rate: Rate(count: 2, per: .hour))
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(limiter.attempt(client: "2001:db8:1:2::1", now: now) == .allowed)
        #expect(limiter.attempt(client: "2001:db8:1:2:ffff:0:0:7", now: now) == .allowed)
        #expect(limiter.attempt(client: "2001:0db8:0001:0002:abcd::9", now: now) != .allowed)
        #expect(limiter.attempt(client: "2001:db8:1:3::1", now: now) == .allowed)
        // An IPv4 address written as IPv6 is that IPv4 address.
        #expect(limiter.attempt(client: "192.0.2.1", now: now) == .allowed)
        #expect(limiter.attempt(client: "::ffff:192.0.2.1", now: now) == .allowed)
        #expect(limiter.attempt(client: "192.0.2.1", now: now) != .allowed)
        #expect(SignupRateLimiter.key(for: "2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64")
        #expect(SignupRateLimiter.key(for: "unknown") == "unknown")
    }

    @Test("A flood of distinct client addresses cannot grow the limiter's memory past its capacity")
    func limiterMemoryIsBounded() {
        let limiter = SignupRateLimiter(rate: Rate(count: 20, per: .hour), capacity: 1000)
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        for index in 0..<50_000 {
            _ = limiter.attempt(client: "10.\(index / 65536).\(index / 256 % 256).\(index % 256)", now: now)
        }
        #expect(limiter.trackedClients <= 1000)
        #expect(limiter.trackedClients > 0)
    }

    @Test("The client is the peer, or the last untrusted X-Forwarded-For hop when the peer is a trusted proxy")
    func clientAddressBehindProxies() throws {
        let resolver = ClientAddressResolver(trustedProxies: ["127.0.0.1", "10.0.0.2"])
        func request(forwardedFor: String?) -> Request {
            var head = HTTPRequest(method: .post, scheme: "http", authority: "x", path: "/subscribe")
            if let forwardedFor { head.headerFields[.xForwardedFor] = forwardedFor }
            return Request(head: head, body: .init(buffer: ByteBuffer()))
        }
        let proxy = try SocketAddress(ipAddress: "127.0.0.1", port: 4000)
        let stranger = try SocketAddress(ipAddress: "192.0.2.50", port: 4000)
        let forwarded = request(forwardedFor: "203.0.113.9, 198.51.100.4, 10.0.0.2")
        #expect(resolver.clientAddress(of: forwarded, peer: proxy) == "198.51.100.4")
        #expect(resolver.clientAddress(of: forwarded, peer: stranger) == "192.0.2.50")
        #expect(resolver.clientAddress(of: request(forwardedFor: nil), peer: proxy) == "127.0.0.1")
    }

    // MARK: - Bots

    @Test(
        "A bot's submit gets the same answer as a person's and sends nothing",
        arguments: ["honeypot", "too fast", "no stamp", "forged stamp", "stamp used before"])
    func botsGetSameAnswerAndNoMail(_ kind: String) async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            let person = try await client.signUpOnPage("person@example.com", clock: world.clock)
            let page = try await client.get("/courses/negotiation").text
            let stamp = try #require(formStamp(in: page))
            var fields = [("email", "bot@example.com"), ("course", "negotiation"), ("locale", "ru")]
            switch kind {
            case "honeypot":
                world.clock.advance(by: 5)
                fields += [("website", "http://spam.example"), ("stamp", stamp)]
            case "too fast":
                fields += [("website", ""), ("stamp", stamp)]
            case "no stamp":
                world.clock.advance(by: 5)
            case "stamp used before":
                world.clock.advance(by: 5)
                fields += [("website", ""), ("stamp", stamp)]
                _ = try await client.postForm(
                    "/subscribe", [("email", "first@example.com"), ("course", "negotiation"), ("website", ""), ("stamp", stamp)])
            default:
                world.clock.advance(by: 5)
                let signed = stamp.split(separator: ".").prefix(2).joined(separator: ".")
                fields += [("stamp", signed + ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
            }
            let bot = try await client.postForm("/subscribe", fields)
            #expect(describe(bot) == describe(person))
        }
        try await world.deliverAll()
        #expect(world.transport.messages.map(\.to.address).filter { $0 != "first@example.com" } == ["person@example.com"])
    }

    @Test(
        "A form posted by a foreign page through its visitor's browser sends nothing; our own page and allowed embeds sign up",
        arguments: [
            (["Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"], false),
            (["Sec-Fetch-Site": "same-site", "Origin": "https://blog.waitlist.example.org"], false),
            (["Origin": "https://evil.example"], false),
            (["Origin": "null"], false),
            (["Sec-Fetch-Site": "same-origin", "Origin": "https://waitlist.example.org"], true),
            (["Origin": "https://waitlist.example.org"], true),
            (["Sec-Fetch-Site": "cross-site", "Origin": "https://school.example"], true),
            ([:], true),
        ])
    func crossSiteFormPosts(_ headers: [String: String], signsUp: Bool) async throws {
        var made = try await TestWorld.make()
        made.settings = try Settings(
            environment: ["WAITLIST_BASE_URL": "https://waitlist.example.org", "WAITLIST_ALLOWED_ORIGINS": "https://school.example"])
        let world = made
        try await world.application().test(.router) { client async throws in
            let person = try await client.signUpOnPage("person@example.com", clock: world.clock)
            let page = try await client.get("/courses/negotiation").text
            world.clock.advance(by: 5)
            var fields = HTTPFields()
            for (name, value) in headers { fields[HTTPField.Name(name)!] = value }
            let answer = try await client.postForm(
                "/subscribe",
                [
                    ("email", "visitor@example.com"), ("course", "negotiation"), ("website", ""),
                    ("stamp", try #require(formStamp(in: page))),
                ],
                headers: fields)
            #expect(describe(answer) == describe(person))
        }
        try await world.deliverAll()
        #expect(world.transport.messages.contains { $0.to.address == "visitor@example.com" } == signsUp)
    }

    @Test("Pages that carry a stamp or a token are never stored by a cache")
    func stampAndTokenPagesAreNotCached() async throws {
        let world = try await TestWorld.make()
        let token = try await world.pendingSubscriber("anna@example.com")
        try await world.application().test(.router) { client async throws in
            for uri in [
                "/", "/courses/negotiation", "/confirm/\(token.value)",
                "/unsubscribe/\(try world.token("unsubscribe", sentTo: "anna@example.com").value)",
            ] {
                #expect(try await client.get(uri).headers[.cacheControl] == "no-store", "\(uri)")
            }
        }
    }

    @Test("The page with the form sends its origin with the post (Referrer-Policy same-origin); token pages show none")
    func formPagesSendTheirOrigin() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            #expect(try await client.get("/courses/negotiation").headers[.referrerPolicy] == "same-origin")
            #expect(try await client.get("/").headers[.referrerPolicy] == "same-origin")
            #expect(try await client.get("/confirm/\(Token.generate().value)").headers[.referrerPolicy] == "no-referrer")
        }
    }

    @Test("A stamp from a tab left open for hours gets the form again, the address kept, and a word to send it once more")
    func staleStampAsksToSendAgain() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            let page = try await client.get("/courses/negotiation?lang=en").text
            world.clock.advance(by: FormStamp.maximumAge + 60)
            let answer = try await client.postForm(
                "/subscribe",
                [
                    ("email", "late@example.com"), ("course", "negotiation"), ("locale", "en"), ("website", ""),
                    ("stamp", try #require(formStamp(in: page))),
                ])
            #expect(answer.status == .ok)
            #expect(answer.text.contains("its form has expired"))
            #expect(answer.text.contains(#"value="late@example.com""#))
            // The form it shows carries a fresh stamp that works.
            world.clock.advance(by: 5)
            let again = try await client.postForm(
                "/subscribe",
                [
                    ("email", "late@example.com"), ("course", "negotiation"), ("locale", "en"), ("website", ""),
                    ("stamp", try #require(formStamp(in: answer.text))),
                ])
            #expect(again.status == .seeOther)
        }
        try await world.deliverAll()
        #expect(world.transport.messages.map(\.to.address) == ["late@example.com"])
    }

    @Test("Two people who load the page in the same second get stamps of their own, and both are mailed")
    func visitorsOfTheSameSecondAreTwoSignups() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            // Given two page loads at the same instant
            let first = try #require(formStamp(in: try await client.get("/courses/negotiation").text))
            let second = try #require(formStamp(in: try await client.get("/courses/negotiation").text))
            #expect(first != second)
            world.clock.advance(by: 3)
            // When each person sends their form
            for (address, stamp) in [("anna@example.com", first), ("boris@example.com", second)] {
                let answer = try await client.postForm(
                    "/subscribe", [("email", address), ("course", "negotiation"), ("website", ""), ("stamp", stamp)])
                #expect(answer.status == .seeOther)
            }
        }
        // Then both get their confirmation
        try await world.deliverAll()
        #expect(world.transport.messages.map(\.to.address).sorted() == ["anna@example.com", "boris@example.com"])
    }

    @Test("A form signup that is not written leaves its stamp unspent: the person's retry from the same page is mailed")
    func signupNotWrittenKeepsItsStamp() async throws {
        let world = try await TestWorld.make()
        // Given a database that refuses this signup's row for now
        try await world.database.writer.write { db in
            try db.execute(
                sql: """
                    CREATE TRIGGER refuse_anna BEFORE INSERT ON subscriber WHEN NEW.email = 'anna@example.com'
                    BEGIN SELECT RAISE(ABORT, 'refused by the test'); END
                    """)
        }
        try await world.application().test(.router) { client async throws in
            let page = try await client.get("/courses/negotiation").text
            let fields = [
                ("email", "anna@example.com"), ("course", "negotiation"), ("website", ""), ("stamp", try #require(formStamp(in: page))),
            ]
            world.clock.advance(by: 5)
            // When the person sends the form, it is not written and the answer says so
            let failed = try await client.postForm("/subscribe", fields)
            #expect(failed.status.code >= 500)
            // When the database takes it again and the person sends the same page once more
            try await world.database.writer.write { db in try db.execute(sql: "DROP TRIGGER refuse_anna") }
            #expect(try await client.postForm("/subscribe", fields).status == .seeOther)
        }
        // Then the retry was written and mailed
        try await world.deliverAll()
        #expect(world.transport.messages.map(\.to.address) == ["anna@example.com"])
    }

    @Test("A form shown again after a refused address carries a stamp accepted however fast the correction comes")
    func correctionAfter422IsAcceptedAtOnce() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            // Given a person who took their time on the page and typed a wrong address
            let page = try await client.get("/courses/negotiation").text
            world.clock.advance(by: 5)
            let refused = try await client.postForm(
                "/subscribe",
                [("email", "anna@"), ("course", "negotiation"), ("website", ""), ("stamp", try #require(formStamp(in: page)))])
            #expect(refused.status == .unprocessableContent)
            // When the corrected address is sent within the second
            world.clock.advance(by: 0.5)
            let corrected = try await client.postForm(
                "/subscribe",
                [
                    ("email", "anna@example.com"), ("course", "negotiation"), ("website", ""),
                    ("stamp", try #require(formStamp(in: refused.text))),
                ])
            #expect(corrected.status == .seeOther)
        }
        // Then it is mailed
        try await world.deliverAll()
        #expect(world.transport.messages.map(\.to.address) == ["anna@example.com"])
    }

    @Test("A page back from the browser's cache gets a fresh stamp that counts from the page; without a stamp of ours, from now")
    func freshStampForAPageShownAgain() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            // Given a page loaded, sent (its stamp spent) and shown again by Back
            let page = try #require(formStamp(in: try await client.get("/courses/negotiation").text))
            world.clock.advance(by: 4)
            #expect(
                try await client.postForm(
                    "/subscribe", [("email", "typo@exampel.com"), ("course", "negotiation"), ("website", ""), ("stamp", page)]
                ).status == .seeOther)
            // When its script asks for a fresh stamp and the mended address is sent at once
            let answer = try await client.get("/courses/negotiation/stamp?after=\(formEncode(page))")
            #expect(answer.status == .ok)
            #expect(answer.headers[.cacheControl] == "no-store")
            let fresh = answer.text
            #expect(fresh != page)
            let mended = try await client.postForm(
                "/subscribe", [("email", "anna@example.com"), ("course", "negotiation"), ("website", ""), ("stamp", fresh)])
            #expect(mended.status == .seeOther)
            // And a stamp asked for without one of ours counts from now: sent at once, it is too fast
            let bare = try await client.get("/courses/negotiation/stamp").text
            let stamp = FormStamp(key: try world.database.secret(named: "signup-form-stamp"))
            #expect(stamp.verify(bare, course: "negotiation", now: world.clock.now) == .tooFast)
        }
        // Then both addresses were mailed: the stamp spent by the first signup did not drop the second
        try await world.deliverAll()
        #expect(world.transport.messages.map(\.to.address).sorted() == ["anna@example.com", "typo@exampel.com"])
    }

    @Test("The check-inbox page links to a fresh form for a person who mistyped the address")
    func checkInboxLinksToAFreshForm() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            let page = try await client.get("/courses/negotiation/subscribed").text
            #expect(page.contains(#"href="/courses/negotiation""#))
            #expect(page.contains(PageWords.russian.wrongAddress))
        }
    }

    @Test("A stamp is good only for its course, after the fill time, for at most 6 hours, and is its page load's own")
    func stampRules() throws {
        let stamp = FormStamp(key: Data(repeating: 7, count: 32))
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let issued = stamp.issue(course: "negotiation", now: now)
        #expect(stamp.verify(issued, course: "negotiation", now: now.addingTimeInterval(1)) == .tooFast)
        #expect(stamp.verify(issued, course: "negotiation", now: now.addingTimeInterval(3)) == .plausible)
        #expect(stamp.verify(issued, course: "pricing", now: now.addingTimeInterval(3)) == .invalid)
        #expect(stamp.verify(issued, course: "negotiation", now: now.addingTimeInterval(6 * 3600 - 1)) == .plausible)
        #expect(stamp.verify(issued, course: "negotiation", now: now.addingTimeInterval(6 * 3600 + 1)) == .stale)
        #expect(
            FormStamp(key: Data(repeating: 8, count: 32)).verify(issued, course: "negotiation", now: now.addingTimeInterval(3)) == .invalid)
        #expect(stamp.verify(nil, course: "negotiation", now: now) == .invalid)
        #expect(stamp.verify("garbage", course: "negotiation", now: now) == .invalid)
        // The stamp of a page load is its own: the same second gives another nonce, and the nonce is signed
        let twin = stamp.issue(course: "negotiation", now: now)
        #expect(twin != issued)
        let nonce = try #require(stamp.parts(of: issued, course: "negotiation")?.nonce)
        #expect(nonce.utf8.count * 6 >= 96, "96 random bits at least")
        let parts = issued.split(separator: ".")
        let swapped = [String(parts[0]), String(twin.split(separator: ".")[1]), String(parts[2])].joined(separator: ".")
        #expect(stamp.verify(swapped, course: "negotiation", now: now.addingTimeInterval(3)) == .invalid)
    }

    @Test("The form's key is made once and kept in the database")
    func formKeyIsKept() throws {
        let database = try AppDatabase.inMemory()
        let first = try database.secret(named: "signup-form-stamp")
        #expect(first.count == 32)
        #expect(try database.secret(named: "signup-form-stamp") == first)
        #expect(try database.secret(named: "another") != first)
    }

    @Test("A bounced address gets the same answer as a new one")
    func bouncedSameAnswer() async throws {
        let world = try await TestWorld.make()
        try await world.signUp("bounced@example.com")
        world.transport.failNext(.permanent("550 no such user"))
        try await world.deliverAll()
        #expect(try world.database.status(courseId: 1).bounced == 1)
        try await world.application().test(.router) { client async throws in
            let bounced = try await client.signUpOnPage("bounced@example.com", clock: world.clock)
            let new = try await client.signUpOnPage("new@example.com", clock: world.clock)
            #expect(describe(bounced) == describe(new))
            let bouncedAPI = try await client.postJSON("/api/subscribe", #"{"email": "bounced@example.com"}"#)
            let newAPI = try await client.postJSON("/api/subscribe", #"{"email": "other@example.com"}"#)
            #expect(describe(bouncedAPI) == describe(newAPI))
        }
    }

    // MARK: - Origins and limits

    @Test("CORS: only allowed origins may call the API from a browser, and nothing else is cross-origin")
    func corsOnlyForAllowedOrigins() async throws {
        var world = try await TestWorld.make()
        world.settings.allowedOrigins = ["https://school.example"]
        try await world.application().test(.router) { client async throws in
            let preflight = try await client.execute(
                uri: "/api/subscribe", method: .options,
                headers: [
                    .origin: "https://school.example", .accessControlRequestMethod: "POST", .accessControlRequestHeaders: "content-type",
                ])
            #expect(preflight.status == .noContent)
            #expect(preflight.headers[.accessControlAllowOrigin] == "https://school.example")
            #expect(preflight.headers[.accessControlAllowHeaders]?.lowercased().contains("content-type") == true)
            let refused = try await client.execute(
                uri: "/api/subscribe", method: .options, headers: [.origin: "https://evil.example", .accessControlRequestMethod: "POST"])
            #expect(refused.status == .forbidden)
            #expect(refused.headers[.accessControlAllowOrigin] == nil)
            let allowed = try await client.postJSON(
                "/api/subscribe", #"{"email": "a@example.com"}"#, headers: [.origin: "https://school.example"])
            #expect(allowed.status == .accepted)
            #expect(allowed.headers[.accessControlAllowOrigin] == "https://school.example")
            let foreign = try await client.postJSON(
                "/api/subscribe", #"{"email": "b@example.com"}"#, headers: [.origin: "https://evil.example"])
            #expect(foreign.status == .forbidden)
            let page = try await client.get("/", headers: [.origin: "https://school.example"])
            #expect(page.headers[.accessControlAllowOrigin] == nil)
        }
        #expect(try world.database.status(courseId: 1).pending == 1)
    }

    @Test("The fourth course an address signs up for within a day gets the same answer as the others, and no mail")
    func fourthCourseInADayGetsSameAnswerAndNoMail() async throws {
        // Given four courses
        let world = try await TestWorld.make()
        for slug in ["pricing", "sales", "service"] { _ = try world.database.addCourse(slug: slug, title: slug) }
        try await world.application().test(.router) { client async throws in
            // When one address signs up for each through the API
            var answers: [String] = []
            for slug in ["negotiation", "pricing", "sales", "service"] {
                let answer = try await client.postJSON("/api/subscribe", #"{"email": "anna@example.com", "course": "\#(slug)"}"#)
                answers.append(describe(answer))
            }
            // Then all four answers are the same, and three confirmations go out
            #expect(Set(answers).count == 1)
            #expect(answers.first?.hasPrefix("202") == true)
        }
        try await world.deliverAll()
        #expect(world.transport.messages.count == 3)
    }

    @Test("Over-long fields are refused with 400 before any work")
    func overLongFields() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            let long = String(repeating: "x", count: 65)
            #expect(try await client.postForm("/subscribe", [("email", "a@example.com"), ("course", long)]).status == .badRequest)
            #expect(try await client.postForm("/subscribe", [("email", "a@example.com"), ("locale", long)]).status == .badRequest)
            #expect(try await client.postJSON("/api/subscribe", #"{"email": "a@example.com", "course": "\#(long)"}"#).status == .badRequest)
            let longAddress = String(repeating: "a", count: 300) + "@example.com"
            #expect(try await client.postJSON("/api/subscribe", #"{"email": "\#(longAddress)"}"#).status == .unprocessableContent)
        }
        #expect(try world.database.backlog().isEmpty)
    }

    // MARK: - Pages

    @Test("The confirmation page, however late it is opened, has the button and no script that could submit it")
    func confirmPageHasNoScript() async throws {
        // Given a pending subscriber whose confirmation went out
        let world = try await TestWorld.make()
        let token = try await world.pendingSubscriber("anna@example.com")
        try await world.application().test(.router) { client async throws in
            for minutes: TimeInterval in [1, 10, 24 * 60] {
                // When the link is opened that many minutes later
                world.clock.advance(by: minutes * 60)
                let page = try await client.get("/confirm/\(token.value)")
                // Then the page has the button and no script of any kind: only the button's POST confirms
                #expect(page.status == .ok)
                #expect(page.text.contains("<button type=\"submit\">"), "\(minutes) min")
                #expect(!page.text.contains("<script"), "\(minutes) min")
                #expect(page.headers[.contentSecurityPolicy]?.contains("unsafe-inline") == false)
                #expect(page.headers[HTTPField.Name("Referrer-Policy")!] == "no-referrer")
            }
            #expect(try await client.get("/confirm.js").status == .notFound)
        }
        #expect(try world.database.status(courseId: 1).pending == 1)
    }

    @Test("HSTS is sent when the base URL is https, and not otherwise")
    func hstsOnlyOverHTTPS() async throws {
        var world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            #expect(try await client.get("/").headers[.strictTransportSecurity] == nil)
        }
        world.settings.baseURL = "https://waitlist.example.org"
        try await world.application().test(.router) { client async throws in
            #expect(try await client.get("/").headers[.strictTransportSecurity]?.hasPrefix("max-age=") == true)
        }
    }

    // MARK: - Retention

    @Test("Unconfirmed signups are deleted 7 days after their last confirmation mail; confirmed ones stay")
    func retentionPurgesUnconfirmed() async throws {
        let world = try await TestWorld.make()
        try await world.signUp("old@example.com")
        try await world.confirmedSubscriber("kept@example.com")
        try await world.deliverAll()
        world.clock.advance(by: 6 * 24 * 3600)
        try await world.signUp("recent@example.com")
        try await world.deliverAll()
        #expect(try world.database.purgeUnconfirmed(now: world.clock.now).signups == 0)
        world.clock.advance(by: 24 * 3600 + 60)
        let purged = try world.database.purgeUnconfirmed(now: world.clock.now)
        #expect(purged.signups == 1)
        #expect(purged.tokens >= 1)
        let emails = try await world.database.writer.read { db in
            try String.fetchAll(db, sql: "SELECT email FROM subscriber ORDER BY email")
        }
        #expect(emails == ["kept@example.com", "recent@example.com"])
    }

    @Test("The database file holds no token in clear after a signup and its mail")
    func noTokenInTheFile() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("waitlist-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("waitlist.sqlite").path
        let world = try await TestWorld.make()
        let database = try AppDatabase.open(path: path)
        _ = try await database.subscribeDurably(
            email: try EmailAddress("anna@example.com"), courseId: 1, language: .ru, client: ClientContext())
        let transport = RecordingTransport()
        let sender = OutboxSender(
            store: database, transport: transport, composer: world.composer, concurrency: 1, logger: .init(label: "test"))
        try await sender.run(mode: .drain)
        let message = try #require(transport.messages.first)
        let tokens = [try #require(world.linkToken("confirm", in: message)), try #require(world.linkToken("unsubscribe", in: message))]
        var bytes = Data()
        for suffix in ["", "-wal", "-shm"] {
            bytes += FileManager.default.contents(atPath: path + suffix) ?? Data()
        }
        #expect(bytes.count > 0)
        #expect(bytes.range(of: Data("anna@example.com".utf8)) != nil, "the search itself must find what is there")
        for token in tokens {
            #expect(bytes.range(of: Data(token.value.utf8)) == nil)
            #expect(bytes.range(of: token.hash) != nil)
        }
    }
}

/// Status, headers (but the date) and body of an answer, to compare answers.
func describe(_ response: TestResponse) -> String {
    let headers = response.headers.filter { $0.name != .date }.map { "\($0.name): \($0.value)" }.sorted().joined(separator: "\n")
    return "\(response.status.code)\n\(headers)\n\(response.text)"
}
