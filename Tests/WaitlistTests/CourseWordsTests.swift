import Foundation
import GRDB
import HummingbirdTesting
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

@Suite("Courses in both languages")
struct CourseWordsTests {
    @Test("A fresh database's course has its English title")
    func freshDefaultCourseHasEnglishTitle() throws {
        let course = try AppDatabase.inMemory().resolveCourse(slug: nil)
        #expect(course.title == "Переговоры и отношения с клиентами")
        #expect(course.titleEn == "Negotiation and client relations")
        #expect(course.about == nil && course.aboutEn == nil)
    }

    @Test("The v10 migration gives the default course its English title only while it keeps the original Russian one")
    func migrationSetsEnglishTitleOnlyForTheOriginalTitle() throws {
        for (renamed, expected) in [(false, "Negotiation and client relations"), (true, nil)] as [(Bool, String?)] {
            // Given a database of before v10
            let queue = try DatabaseQueue()
            try AppDatabase.migrator.migrate(queue, upTo: "v8: canonical address keys")
            if renamed { try queue.write { db in try db.execute(sql: "UPDATE course SET title = 'Переговоры'") } }
            // When it is migrated
            let database = try AppDatabase(queue)
            // Then
            let course = try database.resolveCourse(slug: nil)
            #expect(course.titleEn == expected, "renamed: \(renamed)")
        }
    }

    @Test("English words fall back to the Russian ones only where none were given; empty options remove them")
    func englishFallsBackToRussian() throws {
        let database = try AppDatabase.inMemory()
        let course = try database.addCourse(slug: "pricing", title: "Ценообразование", about: "Как назначать цену.")
        #expect(course.title(in: .en) == "Ценообразование")
        #expect(course.about(in: .en) == "Как назначать цену.")
        let edited = try database.editCourse(
            slug: "pricing", newSlug: nil, title: nil, titleEn: "Pricing", aboutEn: "How to set a price.", enrolURL: nil)
        #expect(edited.title(in: .en) == "Pricing" && edited.title(in: .ru) == "Ценообразование")
        #expect(edited.about(in: .en) == "How to set a price." && edited.about(in: .ru) == "Как назначать цену.")
        let cleared = try database.editCourse(slug: "pricing", newSlug: nil, title: nil, titleEn: "", about: "", enrolURL: nil)
        #expect(cleared.titleEn == nil && cleared.about == nil && cleared.aboutEn == "How to set a price.")
        #expect(try database.course(slug: "pricing") == cleared)
        #expect(throws: WaitlistError.self) {
            try database.addCourse(slug: "long", title: "Длинный", about: String(repeating: "я", count: 1001))
        }
    }

    @Test("English pages show the English title and description, Russian pages the Russian ones, on the page and in the list")
    func pagesShowTheirLanguagesWords() async throws {
        let world = try await TestWorld.make()
        try world.database.editCourse(
            slug: "negotiation", newSlug: nil, title: nil, about: "Восемь недель практики.", aboutEn: "Eight weeks of practice.",
            enrolURL: nil)
        try await world.application().test(.router) { client async throws in
            let english = try await client.get("/courses/negotiation?lang=en").text
            #expect(english.contains("“Negotiation and client relations”"))
            #expect(english.contains("<title>Negotiation and client relations</title>"))
            #expect(english.contains(#"<p class="about">Eight weeks of practice.</p>"#))
            let russian = try await client.get("/courses/negotiation").text
            #expect(russian.contains("«Переговоры и отношения с клиентами»"))
            #expect(russian.contains(#"<p class="about">Восемь недель практики.</p>"#))
            #expect(!russian.contains("Negotiation"))
            let inbox = try await client.get("/courses/negotiation/subscribed?lang=en").text
            #expect(inbox.contains("“Negotiation and client relations”"))
        }
        try world.database.addCourse(slug: "pricing", title: "Ценообразование", about: "Как назначать цену.")
        try await world.application().test(.router) { client async throws in
            let list = try await client.get("/?lang=en").text
            #expect(list.contains("“Negotiation and client relations”"))
            #expect(list.contains("“Ценообразование”</a><p class=\"about\">Как назначать цену.</p>"), "\(list)")
        }
    }

    @Test("English mails carry the English title in subject and body; Russian mails the Russian one")
    func mailsUseTheirLanguagesTitle() async throws {
        let world = try await TestWorld.make()
        try await world.signUp("anna@example.com", language: .en)
        try await world.signUp("boris@example.com", language: .ru)
        try await world.deliverAll()
        let english = try #require(world.lastMessage(to: "anna@example.com"))
        #expect(english.subject == "Please confirm: news of “Negotiation and client relations”")
        #expect(english.text.contains("Negotiation and client relations"))
        #expect(!english.text.contains("Переговоры"))
        let russian = try #require(world.lastMessage(to: "boris@example.com"))
        #expect(russian.subject == "Подтвердите подписку на курс «Переговоры и отношения с клиентами»")
    }
}
