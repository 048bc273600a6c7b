import Testing

@testable import Waitlist

@Suite("Email addresses")
struct EmailAddressTests {
    @Test(
        "Accepts ordinary addresses",
        arguments: [
            "anna@example.com", "anna.petrova+course@mail.example.co.uk", "a@b.io", "x_y-z@sub-domain.example.org",
            "  padded@example.com  ", "анна@пример.рф", "o'connor@example.ie", String(repeating: "a", count: 64) + "@example.com",
        ])
    func acceptsValid(_ input: String) throws {
        let address = try EmailAddress(input)
        #expect(address.value == input.trimmingCharacters(in: .whitespaces).lowercasedDomain())
    }

    @Test(
        "Refuses invalid addresses with the right reason",
        arguments: [
            ("", EmailAddress.Problem.empty),
            ("   ", .empty),
            ("anna.example.com", .missingAt),
            ("anna@@example.com", .missingAt),
            ("an@na@example.com", .missingAt),
            ("anna@localhost", .badDomain),
            ("anna@example", .badDomain),
            ("anna@example..com", .badDomain),
            ("anna@.example.com", .badDomain),
            ("anna@-example.com", .badDomain),
            ("anna@example.123", .badDomain),
            ("anna@exa_mple.com", .badDomain),
            ("@example.com", .badLocalPart),
            ("an na@example.com", .badLocalPart),
            ("anna\r\nBcc: victim@example.com@example.com", .missingAt),
            ("anna\r\n@example.com", .badLocalPart),
            ("an\u{0}na@example.com", .badLocalPart),
            ("an\tna@example.com", .badLocalPart),
            (".anna@example.com", .badLocalPart),
            ("anna.@example.com", .badLocalPart),
            ("an..na@example.com", .badLocalPart),
            ("<anna>@example.com", .badLocalPart),
            ("\"anna\"@example.com", .badLocalPart),
            ("an\u{202E}na@example.com", .badLocalPart),
            (String(repeating: "a", count: 65) + "@example.com", .localPartTooLong),
            ("a@" + String(repeating: "b", count: 250) + ".com", .tooLong),
            ("anna@exam ple.com", .badDomain),
        ])
    func refusesInvalid(_ input: String, _ problem: EmailAddress.Problem) {
        #expect(throws: problem) { try EmailAddress(input) }
    }

    @Test("Two spellings differing in case are the same subscriber")
    func keyIgnoresCase() throws {
        #expect(try EmailAddress("Anna@Example.COM").key == EmailAddress("anna@example.com").key)
        #expect(try EmailAddress("Anna@Example.COM").value == "Anna@example.com")
    }

    @Test("The sender may be at a dotless host such as localhost")
    func senderAllowsLocalhost() {
        #expect(EmailAddress.isValidSender("waitlist@localhost"))
        #expect(!EmailAddress.isValidSender("waitlist@@localhost"))
        #expect(!EmailAddress.isValidSender("wait list@localhost"))
    }
}

extension String {
    /// The address with its domain lower-cased, as ``EmailAddress`` stores it.
    fileprivate func lowercasedDomain() -> String {
        guard let at = lastIndex(of: "@") else { return self }
        return String(self[..<at]) + self[at...].lowercased()
    }
}
