import Foundation
import HummingbirdTesting
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

@Suite("Honeypot markup")
struct HoneypotMarkupTests {
    /// The attributes of the first tag named `tag` in `html` whose text contains `marker`.
    static func attributes(ofTag tag: String, containing marker: String, in html: String) throws -> [String: String] {
        let tagPattern = try Regex("<\(tag)\\b[^>]*>")
        let found = try #require(html.matches(of: tagPattern).first { html[$0.range].contains(marker) }, "no <\(tag)> with \(marker)")
        var attributes: [String: String] = [:]
        let attribute = try Regex(#"([a-z-]+)(?:="([^"]*)")?"#)
        for match in html[found.range].dropFirst(tag.count + 1).dropLast().matches(of: attribute) {
            guard let name = match.output[1].substring else { continue }
            attributes[String(name)] = match.output[2].substring.map(String.init) ?? ""
        }
        return attributes
    }

    @Test("The honeypot is hidden by markup, out of the keyboard order and of screen readers, with autocomplete off")
    func honeypotIsHiddenByMarkup() async throws {
        let world = try await TestWorld.make()
        try await world.application().test(.router) { client async throws in
            for path in ["/courses/negotiation", "/courses/negotiation?lang=en"] {
                let page = try await client.get(path).text
                // The wrapper: the one element around the field, hidden without any stylesheet.
                let trapStart = try #require(page.range(of: #"<div class="trap""#), "\(path)")
                let trapEnd = try #require(page[trapStart.lowerBound...].range(of: "</div>"))
                let trap = String(page[trapStart.lowerBound..<trapEnd.upperBound])
                #expect(trap.contains(#"name="website""#))
                let wrapper = try Self.attributes(ofTag: "div", containing: #"class="trap""#, in: trap)
                #expect(wrapper["hidden"] != nil, "\(path): \(wrapper)")
                #expect(wrapper["aria-hidden"] == "true", "\(path): \(wrapper)")
                let field = try Self.attributes(ofTag: "input", containing: #"name="website""#, in: trap)
                #expect(field["type"] == "text", "bots fill text fields, not hidden ones")
                #expect(field["tabindex"] == "-1", "\(path): \(field)")
                #expect(field["autocomplete"] == "off", "\(path): \(field)")
                #expect(field["hidden"] == nil && field["aria-hidden"] == nil, "the wrapper hides it, the field stays a field")
            }
        }
    }
}
