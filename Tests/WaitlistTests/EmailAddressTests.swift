import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

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
            ("an\u{202E}na@example.com", .invisibleCharacter),
            ("bo\u{034F}b@example.com", .invisibleCharacter),
            ("bob\u{200B}@example.com", .invisibleCharacter),
            ("bob@exam\u{00AD}ple.com", .invisibleCharacter),
            ("bob@xn--a.test", .badDomain),
            ("bob@xn--exmple-cua-.test", .badDomain),
            ("bob@exa\u{2488}mple.test", .badDomain),
            ("bob@1\u{05D0}.test", .badDomain),
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

    @Test(
        "One mailbox, many spellings: Unicode and punycode domains, compatibility forms, NFC and NFD, case are one key",
        arguments: [
            ["bob@exämple.test", "bob@xn--exmple-cua.test", "BOB@EXÄMPLE.TEST", "bob@exa\u{0308}mple.test"],
            ["josé@example.com", "jose\u{0301}@example.com", "JOSÉ@example.com"],
            ["bob@victim.test", "bob@vｉctim.test", "bob@ⅴictim.test", "bob@ｖｉｃｔｉｍ．ｔｅｓｔ", "bob@VICTIM.test", "bob@victim。test"],
            ["анна@пример.рф", "анна@xn--e1afmkfd.xn--p1ai", "АННА@ПРИМЕР.РФ"],
            ["straße@faß.de", "straße@xn--fa-hia.de", "STRASSE@FAß.DE"],
            ["ﬁle@example.com", "FILE@example.com", "file@example.com"],
        ])
    func spellingsOfOneMailboxShareAKey(_ spellings: [String]) throws {
        let keys = try spellings.map { try EmailAddress($0).key }
        #expect(Set(keys).count == 1, "\(keys)")
        #expect(keys.allSatisfy { $0 == EmailAddress.key(of: spellings[0]) })
    }

    @Test("The address is mailed as typed, NFC-normalised, with the domain as UTS #46 maps it, in the form it was typed")
    func mailedForm() throws {
        #expect(try EmailAddress("jose\u{0301}@Example.com").value == "josé@example.com")
        #expect(try EmailAddress("bob@xn--exmple-cua.test").value == "bob@xn--exmple-cua.test")
        #expect(try EmailAddress("Bob@EXÄMPLE.test").value == "Bob@exämple.test")
        #expect(try EmailAddress("bob@vｉctim.test").value == "bob@victim.test")
        #expect(try EmailAddress("bob@exämple.test").key == "bob@xn--exmple-cua.test")
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
