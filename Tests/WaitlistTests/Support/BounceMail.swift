import Foundation

/// Bounces as relays write them, for the tests of `waitlist bounce`.
enum BounceMail {
    /// A delivery status notification as Postfix writes it (RFC 3464): a `multipart/report` with a
    /// human-readable part, a `message/delivery-status` part and the returned message's headers,
    /// delivered to `bounces+TAG@school.example` (with `Delivered-To` when `deliveredTo`).
    static func dsn(
        tag: String, recipient: String = "anna@example.com", action: String = "failed", status: String = "5.1.1",
        diagnostic: String = "smtp; 550 5.1.1 <anna@example.com>: Recipient address rejected: User unknown in virtual mailbox table",
        deliveredTo: Bool = true
    ) -> [UInt8] {
        let envelope = "bounces+\(tag)@school.example"
        let boundary = "4C7A21F2B3.1764590000/mx.school.example"
        var lines: [String] = []
        if deliveredTo { lines.append("Delivered-To: \(envelope)") }
        lines += [
            "Received: by mx.school.example (Postfix)",
            "\tid 4C7A21F2B3; Tue,  1 Dec 2026 12:00:00 +0000 (UTC)",
            "Date: Tue,  1 Dec 2026 12:00:00 +0000 (UTC)",
            "From: MAILER-DAEMON@mx.school.example (Mail Delivery System)",
            "Subject: Undelivered Mail Returned to Sender",
            "To: \(envelope)",
            "Auto-Submitted: auto-replied",
            "MIME-Version: 1.0",
            "Content-Type: multipart/report; report-type=delivery-status;",
            "\tboundary=\"\(boundary)\"",
            "Content-Transfer-Encoding: 8bit",
            "Message-Id: <20261201120000.4C7A21F2B3@mx.school.example>",
            "",
            "This is a MIME-encapsulated message.",
            "",
            "--\(boundary)",
            "Content-Description: Notification",
            "Content-Type: text/plain; charset=us-ascii",
            "",
            "This is the mail system at host mx.school.example.",
            "",
            "I'm sorry to have to inform you that your message could not",
            "be delivered to one or more recipients.",
            "",
            "<\(recipient)>: host mx.example.com[192.0.2.25] said: \(diagnostic.replacingOccurrences(of: "smtp; ", with: ""))",
            "",
            "--\(boundary)",
            "Content-Description: Delivery report",
            "Content-Type: message/delivery-status",
            "",
            "Reporting-MTA: dns; mx.school.example",
            "X-Postfix-Queue-ID: 4C7A21F2B3",
            "X-Postfix-Sender: rfc822; \(envelope)",
            "Arrival-Date: Tue,  1 Dec 2026 11:59:58 +0000 (UTC)",
            "",
            "Final-Recipient: rfc822; \(recipient)",
            "Original-Recipient: rfc822;\(recipient)",
            "Action: \(action)",
            "Status: \(status)",
            "Remote-MTA: dns; mx.example.com",
        ]
        // Folded as Postfix folds long fields.
        let words = diagnostic.split(separator: " ")
        lines.append("Diagnostic-Code: " + words.prefix(4).joined(separator: " "))
        if words.count > 4 { lines.append("    " + words.dropFirst(4).joined(separator: " ")) }
        lines += [
            "",
            "--\(boundary)",
            "Content-Description: Undelivered Message Headers",
            "Content-Type: text/rfc822-headers",
            "Content-Transfer-Encoding: 8bit",
            "",
            "Return-Path: <\(envelope)>",
            "From: Waitlist <waitlist@school.example>",
            "To: \(recipient)",
            "Subject: 550 5.1.1 is not what decides",
            "Message-ID: <announcement.1@school.example>",
            "",
            "--\(boundary)--",
            "",
        ]
        return Array(lines.joined(separator: "\n").utf8)
    }

    /// A bounce that is no DSN (as qmail and some hosted relays write them), quoting the remote reply.
    static func plain(tag: String, reply: String = "550 5.1.1 The email account that you tried to reach does not exist.") -> [UInt8] {
        let text = """
            Return-Path: <>
            To: bounces+\(tag)@school.example
            From: MAILER-DAEMON@relay.example.net
            Subject: failure notice

            Hi. This is the qmail-send program at relay.example.net.
            I'm afraid I wasn't able to deliver your message to the following addresses.

            <anna@example.com>:
            192.0.2.25 failed after I sent the message.
            Remote host said: \(reply)

            """
        return Array(text.replacingOccurrences(of: "\n", with: "\r\n").utf8)
    }
}
