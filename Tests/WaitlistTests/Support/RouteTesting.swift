import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

extension TestWorld {
    /// The application as `serve` builds it, on this world's database and clock, without a socket.
    func application(settings: Settings? = nil) throws -> some ApplicationProtocol {
        let dependencies = AppDependencies(
            settings: settings ?? self.settings, database: database, templates: templates,
            publicDirectory: try (settings ?? self.settings).staticFilesDirectory(), now: clock.function)
        return Application(router: try buildRouter(dependencies))
    }
}

extension TestClientProtocol {
    /// Posts an HTML form as a browser does.
    func postForm(_ uri: String, _ fields: [(String, String)], headers: HTTPFields = [:]) async throws -> TestResponse {
        var headers = headers
        headers[.contentType] = "application/x-www-form-urlencoded"
        let body = fields.map { "\(formEncode($0.0))=\(formEncode($0.1))" }.joined(separator: "&")
        return try await execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: body))
    }

    /// Posts a JSON body to the API.
    func postJSON(_ uri: String, _ json: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        var headers = headers
        headers[.contentType] = "application/json"
        return try await execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: json))
    }

    /// Fills in the course page's form as a person does: loads the page, takes some seconds to type,
    /// and sends it with the page's hidden fields.
    func signUpOnPage(_ email: String, course: String = "negotiation", clock: TestClock, extra: [(String, String)] = []) async throws
        -> TestResponse
    {
        let page = try await get("/courses/\(course)").text
        clock.advance(by: 5)
        return try await postForm(
            "/subscribe",
            [("email", email), ("course", course), ("locale", "ru"), ("website", ""), ("stamp", formStamp(in: page) ?? "")] + extra)
    }

    func get(_ uri: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        try await execute(uri: uri, method: .get, headers: headers)
    }

    func post(_ uri: String, body: String = "", headers: HTTPFields = [:]) async throws -> TestResponse {
        try await execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: body))
    }
}

/// The signed stamp a rendered course page carries in its form.
func formStamp(in page: String) -> String? {
    guard let range = page.range(of: #"name="stamp" value=""#) else { return nil }
    return String(page[range.upperBound...].prefix { $0 != "\"" })
}

/// `application/x-www-form-urlencoded` encoding of one name or value.
func formEncode(_ text: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._*")
    return text.addingPercentEncoding(withAllowedCharacters: allowed)!.replacingOccurrences(of: "%20", with: "+")
}

extension TestResponse {
    /// The body as text.
    var text: String { String(buffer: body) }
}
