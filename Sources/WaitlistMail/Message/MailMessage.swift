import Foundation
import WaitlistCore

/// One message to one recipient, before it is rendered to RFC 5322 bytes.
///
/// Every field holds plain Unicode text; ``MIMERenderer`` does all the encoding, so nothing a
/// visitor typed can reach a header raw.
public struct MailMessage: Sendable, Hashable {
    public var from: Mailbox
    public var to: Mailbox
    public var subject: String
    /// The `text/plain` part.
    public var text: String
    /// The `text/html` alternative, if any.
    public var html: String?
    /// Extra headers such as `List-Unsubscribe`; names are ASCII, values are plain text.
    public var extraHeaders: [(name: String, value: String)]
    /// The `Message-ID` without angle brackets, e.g. `1a2b3c@example.org`.
    public var messageID: String
    /// The `Date` header.
    public var date: Date
    /// The `List-Id` header (RFC 2919) of mail sent to a list; `nil`: none.
    public var listID: ListID?

    public init(
        from: Mailbox,
        to: Mailbox,
        subject: String,
        text: String,
        html: String? = nil,
        extraHeaders: [(name: String, value: String)] = [],
        messageID: String,
        date: Date,
        listID: ListID? = nil
    ) {
        self.from = from
        self.to = to
        self.subject = subject
        self.text = text
        self.html = html
        self.extraHeaders = extraHeaders
        self.messageID = messageID
        self.date = date
        self.listID = listID
    }

    public static func == (lhs: MailMessage, rhs: MailMessage) -> Bool {
        lhs.from == rhs.from && lhs.to == rhs.to && lhs.subject == rhs.subject && lhs.text == rhs.text
            && lhs.html == rhs.html && lhs.messageID == rhs.messageID && lhs.date == rhs.date && lhs.listID == rhs.listID
            && lhs.extraHeaders.map(\.name) == rhs.extraHeaders.map(\.name)
            && lhs.extraHeaders.map(\.value) == rhs.extraHeaders.map(\.value)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(messageID)
    }
}

/// A list's identity in the `List-Id` header (RFC 2919): `"Title" <label.namespace>`.
public struct ListID: Sendable, Hashable {
    /// The list's name as people read it, in any script; encoded per RFC 2047 when not ASCII.
    public var title: String
    /// The list's identifier, a dot-atom such as `negotiation.school.example`.
    public var id: String

    public init(title: String, id: String) {
        self.title = title
        self.id = id
    }
}
