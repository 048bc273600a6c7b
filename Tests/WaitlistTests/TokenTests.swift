import Crypto
import Foundation
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

@Suite("Tokens")
struct TokenTests {
    @Test("A plain token is 256 random bits in base64url, 43 characters, never repeated")
    func generatedTokensAreLongAndDistinct() {
        let tokens = (0..<1000).map { _ in Token.generate().value }
        #expect(Set(tokens).count == 1000)
        for token in tokens {
            #expect(token.count == 43)
            #expect(token.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
            #expect(
                Data(base64Encoded: token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/") + "=")?.count
                    == 32)
        }
    }

    @Test("base64url is Foundation's base64 with - for +, _ for / and no padding, at every length")
    func base64URLMatchesFoundation() {
        var generator = SplitMix64(seed: 64)
        for length in 0...70 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let expected = Data(bytes).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            #expect(Token.base64URL(bytes) == expected, "\(length) bytes")
        }
        #expect(Token.base64URL([0xFB, 0xFF, 0xBF]) == "-_-_")
    }

    @Test("The stored hash is the SHA-256 of the token as written in the link")
    func hashIsSHA256() throws {
        let token = Token.generate()
        #expect(token.hash == Data(SHA256.hash(data: Data(token.value.utf8))))
        #expect(token.hash.count == 32)
        let parsed = try #require(Token(link: token.value))
        #expect(parsed.hash == token.hash)
    }

    @Test(
        "Links that cannot hold one of our tokens are refused before any lookup",
        arguments: [
            "", "short", String(repeating: "a", count: 44), String(repeating: "a", count: 42) + "=", String(repeating: "é", count: 43),
            "../" + String(repeating: "a", count: 40),
        ])
    func malformedLinksAreRefused(_ text: String) {
        #expect(Token(link: text) == nil)
    }

    @Test("A mail's token carries the outbox row's number, then 192 random bits, in the same 43 characters")
    func keyedTokensCarryTheirRow() throws {
        var generator = SplitMix64(seed: 8)
        let ids: [Int64] =
            [0, 1, 63, 64, 4095, 1_000_000, Int64(Int32.max), Int64.max]
            + (0..<200).map { _ in Int64.random(in: 1...Int64.max, using: &generator) }
        for id in ids {
            let token = Token.generate(keyedBy: id)
            #expect(token.value.count == 43)
            #expect(token.keyedMessageId == id, "\(id)")
            let parsed = try #require(Token(link: token.value))
            #expect(parsed.keyedMessageId == id)
            let bytes = try #require(
                Data(base64Encoded: token.value.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/") + "="))
            #expect(bytes.prefix(8).reduce(0 as UInt64) { $0 << 8 | UInt64($1) } == UInt64(id))
        }
        // The same row's tokens share only the row's number.
        let tokens = (0..<1000).map { _ in Token.generate(keyedBy: 42).value }
        #expect(Set(tokens).count == 1000)
        #expect(Set(tokens.map { $0.dropFirst(11) }).count == 1000)
    }

    @Test("A token matches its own hash and no other")
    func matchesOnlyItsOwnHash() {
        let token = Token.generate(keyedBy: 7)
        #expect(token.matches(hash: token.hash))
        #expect(!token.matches(hash: Token.generate(keyedBy: 7).hash))
        var flipped = token.hash
        flipped[31] ^= 1
        #expect(!token.matches(hash: flipped))
        #expect(!token.matches(hash: token.hash.prefix(31)))
        #expect(!token.matches(hash: Data()))
    }

    @Test("A token's description never shows it whole")
    func descriptionHidesToken() {
        let token = Token.generate()
        #expect(!"\(token)".contains(token.value))
    }
}

@Suite("Retry schedule")
struct RetryPolicyTests {
    @Test("Back-off starts within 30 seconds, doubles, and stops growing at 15 minutes")
    func schedule() {
        let delays = (1...10).map(RetryPolicy.delay(afterAttempt:))
        #expect(delays == [30, 60, 120, 240, 480, 900, 900, 900, 900, 900])
        #expect(RetryPolicy.delay(afterAttempt: 1000) == 900)
        #expect(RetryPolicy.giveUpAfter == 3 * 24 * 3600)
    }
}
