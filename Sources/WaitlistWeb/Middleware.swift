import Foundation
import HTTPTypes
import Hummingbird
import Logging
import WaitlistCore
import WaitlistStore

/// Turns every error a route throws into a page (or JSON under `/api/`) with the right status,
/// so that no input ever produces a bare 500 or a stack trace.
struct ErrorPageMiddleware<Context: RequestContext>: RouterMiddleware {
    let pages: Pages

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            return respond(to: request, status: error.status, headers: error.headers, message: error.body)
        } catch let error as any HTTPResponseError {
            return respond(to: request, status: error.status, headers: [:], message: nil)
        } catch let error as WaitlistError {
            let status: HTTPResponse.Status =
                switch error.kind {
                case .notFound: .notFound
                case .usage, .data: .badRequest
                case .unavailable: .serviceUnavailable
                }
            return respond(to: request, status: status, headers: [:], message: error.message)
        } catch let error where AppDatabase.isStorageFailure(error) {
            // The database cannot answer now (locked past the busy timeout, disk full): try again later.
            context.logger.error("Database unavailable", metadata: ["error": "\(AppDatabase.describe(error))"])
            return respond(
                to: request, status: .serviceUnavailable, headers: [:], message: "The service is busy; try again in a few seconds.")
        } catch {
            context.logger.error("Request failed", metadata: ["error": "\(String(reflecting: error))"])
            return respond(to: request, status: .internalServerError, headers: [:], message: nil)
        }
    }

    private func respond(to request: Request, status: HTTPResponse.Status, headers: HTTPFields, message: String?) -> Response {
        var response: Response
        if request.uri.path.hasPrefix("/api/") {
            response = JSONReply.error(status: status, code: JSONReply.code(for: status), message: message ?? status.reasonPhrase)
        } else {
            response = pages.error(
                status, language: request.preferredLanguage, detail: status.code == 400 ? message : nil,
                framed: EmbedFraming.isEmbed(request.uri.path))
        }
        for field in headers where field.name != .contentType && field.name != .contentLength {
            response.headers.append(field)
        }
        if status == .serviceUnavailable && response.headers[.retryAfter] == nil {
            response.headers[.retryAfter] = String(AppDatabase.retryAfterSeconds)
        }
        return response
    }
}

/// A `HEAD` answer keeps its status and headers and loses its body, error pages included (the
/// router answers `HEAD` with each route's `GET`: `RouterOptions.autoGenerateHeadEndpoints`).
struct HeadWithoutBodyMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        guard request.method == .head else { return response }
        if let length = response.body.contentLength { response.headers[.contentLength] = String(length) }
        response.body = ResponseBody()
        return response
    }
}

/// Headers every answer carries: a strict Content-Security-Policy, no sniffing, no framing (but
/// for the embed, by the school's sites), no referrer.
struct SecurityHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    /// True when the service is reached over https, which turns on HSTS.
    let isHTTPS: Bool
    /// Who may frame the embed.
    var framing = EmbedFraming(allowedOrigins: [])

    static func contentSecurityPolicy(frameAncestors: String) -> String {
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
            + "frame-ancestors \(frameAncestors); base-uri 'none'"
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        let isEmbed = EmbedFraming.isEmbed(request.uri.path)
        response.headers[.contentSecurityPolicy] = Self.contentSecurityPolicy(
            frameAncestors: isEmbed ? framing.embedAncestors : "'none'")
        response.headers[.xContentTypeOptions] = "nosniff"
        // Pages with the signup form say `same-origin` themselves; every other page shows no referrer.
        if response.headers[.referrerPolicy] == nil { response.headers[.referrerPolicy] = "no-referrer" }
        // The embed's framing is said by its frame-ancestors alone; an X-Frame-Options would forbid it in older browsers.
        if !isEmbed { response.headers[.xFrameOptions] = "DENY" }
        if isHTTPS { response.headers[.strictTransportSecurity] = "max-age=31536000" }
        return response
    }
}

/// Serves the files of `Public/` (styles, scripts, icons). Only plain file names at the top level
/// reach the file system: nothing with a second slash, dot-dot or odd characters is even looked up.
struct StaticFilesMiddleware<Context: RequestContext>: RouterMiddleware {
    let files: FileMiddleware<Context, LocalFileSystem>

    init(directory: String) {
        // Scripts may be cached for an hour: `/embed.js` is fetched by every page of the school's site that embeds the form.
        files = FileMiddleware(directory, cacheControl: .init([(.textJavascript, [.public, .maxAge(3600)])]), searchForIndexHtml: false)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard Self.isPlainFileName(request.uri.path) else { return try await next(request, context) }
        return try await files.handle(request, context: context, next: next)
    }

    /// `/name.ext`: one segment of letters, digits, dots, hyphens and underscores, not starting with a dot.
    static func isPlainFileName(_ path: String) -> Bool {
        let name = path.utf8.dropFirst()
        guard path.utf8.first == UInt8(ascii: "/"), (1...100).contains(name.count), name.first != UInt8(ascii: ".") else { return false }
        return name.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
                || byte == UInt8(ascii: "_")
        }
    }
}

/// JSON answers of the API.
enum JSONReply {
    static func body(_ object: [String: String], status: HTTPResponse.Status) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// The `202 {"status":"pending"}` of an accepted signup, made once.
    private static let pendingBody = ByteBuffer(string: #"{"status":"pending"}"#)

    static func pending() -> Response {
        Response(
            status: .accepted, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: pendingBody))
    }

    static func error(status: HTTPResponse.Status, code: String, message: String) -> Response {
        body(["error": code, "message": message], status: status)
    }

    static func code(for status: HTTPResponse.Status) -> String {
        switch status.code {
        case 400: "bad_request"
        case 404: "not_found"
        case 405: "method_not_allowed"
        case 413: "too_large"
        case 415: "unsupported_media_type"
        case 429: "too_many_requests"
        case 503: "unavailable"
        case 400..<500: "bad_request"
        default: "server_error"
        }
    }
}
