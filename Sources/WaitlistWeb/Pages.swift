import Foundation
import HTTPTypes
import Hummingbird
import WaitlistCore
import WaitlistStore

/// Renders the HTML pages from their templates, in the visitor's language.
public struct Pages: Sendable {
    let templates: Templates

    public init(templates: Templates) {
        self.templates = templates
    }

    /// A rendered page with its status; `noReferrer` pages carry a token in their address.
    func page(
        _ template: String, language: Language, title: String, status: HTTPResponse.Status = .ok, context: [String: Any] = [:],
        languageSwitch: String? = nil
    ) -> Response {
        var context = context
        context["t"] = PageWords.templateContext(language)
        context["pageTitle"] = title
        if let languageSwitch { context["languageSwitch"] = languageSwitch }
        let html = templates.render(template, context)
        var headers: HTTPFields = [.contentType: "text/html; charset=utf-8"]
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// A page that says one thing, with an optional link onwards; `framed`, the embed's version
    /// for an `<iframe>` on another site.
    func message(
        language: Language, status: HTTPResponse.Status = .ok, heading: String, text: String, courseTitle: String? = nil,
        hint: String? = nil, link: (href: String, label: String)? = nil, framed: Bool = false
    ) -> Response {
        var context: [String: Any] = ["heading": heading, "text": text]
        if let courseTitle { context["courseTitle"] = courseTitle }
        if let hint { context["hint"] = hint }
        if let link { context["link"] = ["href": link.href, "label": link.label] }
        return page(framed ? "embed-message" : "message", language: language, title: heading, status: status, context: context)
    }

    /// The page for an error status, in the visitor's language; `framed`, inside the embed (with
    /// no link to the site's pages, which refuse to be framed).
    func error(_ status: HTTPResponse.Status, language: Language, detail: String? = nil, framed: Bool = false) -> Response {
        let words = PageWords.of(language)
        let (heading, text): (String, String) =
            switch status.code {
            case 404: (words.notFoundTitle, words.notFoundText)
            case 413: (words.errorTitle, words.tooLargeText)
            case 429: (words.tooManyTitle, words.tooManyText)
            case 400..<500: (words.errorTitle, detail ?? words.badRequestText)
            case 503: (words.unavailableTitle, words.unavailableText)
            default: (words.errorTitle, words.serverErrorText)
            }
        let link = framed ? nil : (href: "/", label: words.backToCourse)
        return message(language: language, status: status, heading: heading, text: text, link: link, framed: framed)
    }
}
