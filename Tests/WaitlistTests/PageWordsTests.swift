import Foundation
import HummingbirdTesting
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

@Suite("Page words")
struct PageWordsTests {
    /// The page templates of the sources, as the resource bundle copies them.
    static let templatesDirectory = repositoryRoot.appendingPathComponent("Sources/Waitlist/Resources/Templates")

    @Test("Every word a page template asks for (t.NAME) is a word of both languages, and none is empty")
    func templatesAskOnlyForKnownWords() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.templatesDirectory.path).filter { $0.hasSuffix(".mustache") }
        #expect(names.count >= 4)
        let pattern = try Regex(#"\{\{[#^/]?t\.([A-Za-z]+)\}\}"#)
        var asked = Set<String>()
        for name in names {
            let text = try String(contentsOf: Self.templatesDirectory.appendingPathComponent(name), encoding: .utf8)
            for match in text.matches(of: pattern) {
                if let word = match.output[1].substring { asked.insert(String(word)) }
            }
        }
        #expect(asked.contains("notifyButton") && asked.contains("lang"))
        for language in [Language.ru, .en] {
            let words = PageWords.templateContext(language)
            #expect(asked.subtracting(words.keys).isEmpty, "\(language): \(asked.subtracting(words.keys).sorted())")
            #expect(words.values.allSatisfy { !$0.isEmpty })
        }
    }

    @Test("An address with an invisible character gets the form back with a sentence in the visitor's language")
    func invisibleCharacterIsRefusedInTheVisitorsWords() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            for (locale, sentence) in [("ru", "невидимый символ"), ("en", "invisible character")] {
                let response = try await client.postForm(
                    "/subscribe", [("email", "anna\u{200B}@example.com"), ("course", "negotiation"), ("locale", locale)])
                #expect(response.status == .unprocessableContent)
                #expect(response.text.contains(sentence), "\(response.text)")
            }
        }
    }
}
