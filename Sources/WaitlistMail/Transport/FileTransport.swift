import Foundation
import Logging
import NIOConcurrencyHelpers
import WaitlistCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Delivers mail by writing each message, rendered by ``MIMERenderer``, as one `.eml` file into a
/// directory: the transport of a first run without a mail server (`WAITLIST_SMTP_URL` unset).
///
/// A file is named after the message's `Date` in UTC and its message ID, e.g.
/// `20261129T005639Z-1a2b3c@example.org.eml`, so a listing sorts by time; the message ID, unique
/// per message and percent-encoded where a character is unsafe in a file name, keeps names unique,
/// and a retried message replaces its own earlier file rather than adding a second one. The bytes
/// go to a hidden temporary file in the same directory, are flushed to disk and then renamed into
/// place, so nobody ever sees half a message. The directory is created when it is missing. Files
/// are 0660 and folders 2770, as ``StateFiles`` says.
///
/// Each file is logged at `info` with its path and every http(s) link of the text part, so the
/// confirmation link can be followed straight from the log. The recipient's address is never logged.
public struct FileTransport: MailTransport {
    /// Where the `.eml` files go.
    public let directory: URL
    private let logger: Logger

    /// - Parameters:
    ///   - directory: where the `.eml` files go (`WAITLIST_MAIL_DIR`); created when missing.
    ///   - logger: receives one `info` line per file written.
    public init(directory: URL, logger: Logger) {
        self.directory = directory
        self.logger = logger
    }

    /// A session that writes into ``directory``; it never fails, the directory is checked on each send.
    public func makeSession() throws(DeliveryError) -> any MailSession {
        MailFileWriter(directory: directory, logger: logger)
    }

    // MARK: - Names and links

    /// The file name of a message: its UTC date as `yyyyMMdd'T'HHmmss'Z'`, a dash, its message ID
    /// percent-encoded (all but ASCII letters, digits and `.`, `_`, `-`, `@`, `+`) and cut to 180
    /// characters, then `.eml`. A message without an ID gets a random one, so names stay unique.
    static func fileName(for message: MailMessage) -> String {
        fileName(date: message.date, messageID: message.messageID)
    }

    /// ``fileName(for:)`` from the two fields it uses.
    static func fileName(date: Date, messageID: String) -> String {
        let time = UTCTime(date)
        let stamp =
            "\(time.padded(\.year, 4))\(time.padded(\.month, 2))\(time.padded(\.day, 2))"
            + "T\(time.padded(\.hour, 2))\(time.padded(\.minute, 2))\(time.padded(\.second, 2))Z"
        var id = ""
        for byte in messageID.utf8 {
            if isFileNameSafe(byte) {
                id.append(Character(UnicodeScalar(byte)))
            } else {
                id += "%" + MIMERenderer.hexByte(byte)
            }
        }
        if id.isEmpty {
            id = SecureRandom.hexDigits(8)
        }
        return "\(stamp)-\(id.prefix(180)).eml"
    }

    /// Whether a byte of a message ID may stand in a file name as it is.
    private static func isFileNameSafe(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default:
            "._-@+".utf8.contains(byte)
        }
    }

    /// The distinct `http://` and `https://` links of a text, in order of first appearance. A link
    /// ends at whitespace, a control character, a quote or an angle bracket, and loses trailing
    /// punctuation that more likely ends the sentence around it (`.`, `,`, `)` and the like).
    static func links(in text: String) -> [String] {
        let stoppers: Set<Unicode.Scalar> = ["<", ">", "\"", "'", "`", "«", "»", "“", "”", "‘", "’"]
        let trailingPunctuation: Set<Unicode.Scalar> = [".", ",", ";", ":", "!", "?", ")", "]", "}"]
        let scalars = Array(text.unicodeScalars)
        var links: [String] = []
        var index = 0
        while index < scalars.count {
            guard scalars[index] == "h", let schemeLength = linkSchemeLength(in: scalars, at: index) else {
                index += 1
                continue
            }
            var end = index + schemeLength
            while end < scalars.count, !MIMERenderer.isControlOrWhitespace(scalars[end]), !stoppers.contains(scalars[end]) {
                end += 1
            }
            var linkEnd = end
            while linkEnd > index + schemeLength, trailingPunctuation.contains(scalars[linkEnd - 1]) {
                linkEnd -= 1
            }
            if linkEnd > index + schemeLength {
                let link = String(String.UnicodeScalarView(scalars[index..<linkEnd]))
                if !links.contains(link) {
                    links.append(link)
                }
            }
            index = end
        }
        return links
    }

    /// The length of `http://` or `https://` when one starts at `index`, else nil.
    private static func linkSchemeLength(in scalars: [Unicode.Scalar], at index: Int) -> Int? {
        for scheme in ["https://", "http://"] {
            let schemeScalars = Array(scheme.unicodeScalars)
            if index + schemeScalars.count <= scalars.count, Array(scalars[index..<index + schemeScalars.count]) == schemeScalars {
                return schemeScalars.count
            }
        }
        return nil
    }
}

/// The session of a ``FileTransport``: writes each message as it is sent; there is nothing to
/// keep open, so ``close()`` does nothing.
final class MailFileWriter: MailSession, Sendable {
    private let directory: URL
    private let logger: Logger
    /// The message begun: its file written beside its place, and where it goes.
    private let begun = NIOLockedValueBox<(temporary: URL, target: URL, header: MailFileHeader)?>(nil)

    init(directory: URL, logger: Logger) {
        self.directory = directory
        self.logger = logger
    }

    /// Writes the message's file beside its place and flushes it to disk; any failure is
    /// `.transient`, since a full disk or a wrong permission can be fixed and the message sent again.
    func begin(_ mail: OutgoingMail, following: OutgoingMail?) throws(DeliveryError) {
        abandon()
        try createDirectoryIfMissing()
        let header = MailFileHeader(mail.bytes)
        let target = directory.appendingPathComponent(FileTransport.fileName(date: header.date, messageID: header.messageID))
        let temporary = directory.appendingPathComponent(".\(target.lastPathComponent).\(SecureRandom.hexDigits(8)).tmp")
        try writeDurably(mail.bytes, to: temporary)
        begun.withLockedValue { $0 = (temporary, target, header) }
    }

    /// Moves the file begun into place, atomically, and logs it.
    func finish() throws(DeliveryError) {
        guard let (temporary, target, header) = takeBegun() else {
            throw .transient("No mail file was begun.")
        }
        guard rename(temporary.path, target.path) == 0 else {
            let reason = "cannot move mail file into place at \(target.path): \(String(cString: strerror(errno)))"
            unlink(temporary.path)
            throw .transient(reason)
        }
        syncDirectory()
        let links = FileTransport.links(in: header.decodedBody)
        logger.info("Mail written to \(target.path)\(links.isEmpty ? "" : "; links: " + links.joined(separator: " "))")
    }

    /// Removes the file begun: the message never reaches its place.
    func abandon() {
        if let (temporary, _, _) = takeBegun() {
            unlink(temporary.path)
        }
    }

    /// The message begun, which is no longer.
    private func takeBegun() -> (temporary: URL, target: URL, header: MailFileHeader)? {
        begun.withLockedValue { begun in
            defer { begun = nil }
            return begun
        }
    }

    /// Nothing to close but a message begun and not finished, which is removed.
    func close() {
        abandon()
    }

    /// Creates the mail directory and its parents when missing, 2770 (``StateFiles``); fails when the
    /// path is taken by a file.
    private func createDirectoryIfMissing() throws(DeliveryError) {
        do {
            try StateFiles.createFolder(atPath: directory.path)
        } catch {
            throw .transient("cannot create mail directory \(directory.path): \(error)")
        }
    }

    /// Writes bytes to a new file, mode 0660 (``StateFiles``: a message holds links that confirm
    /// and unsubscribe), and flushes them to disk; removes the file again on failure.
    private func writeDurably(_ bytes: [UInt8], to file: URL) throws(DeliveryError) {
        let descriptor: Int32
        do {
            descriptor = try StateFiles.createFile(atPath: file.path, mode: StateFiles.dataMode)
        } catch {
            throw .transient("cannot create mail file: \(error)")
        }
        var failure: String?
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    failure = String(cString: strerror(errno))
                    return
                }
                offset += written
            }
        }
        if failure == nil && fsync(descriptor) != 0 {
            failure = String(cString: strerror(errno))
        }
        if closeDescriptor(descriptor) != 0 && failure == nil {
            failure = String(cString: strerror(errno))
        }
        if let failure {
            unlink(file.path)
            throw .transient("cannot write mail file \(file.path): \(failure)")
        }
    }

    /// Flushes the directory itself, so the rename survives a crash; best effort.
    private func syncDirectory() {
        let descriptor = open(directory.path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        _ = fsync(descriptor)
        _ = closeDescriptor(descriptor)
    }
}

/// What the file transport reads back from a rendered message: its `Date` and `Message-ID` for the
/// file's name, and its body with quoted-printable undone, to find the links to log.
struct MailFileHeader: Sendable {
    var date: Date
    var messageID: String
    var decodedBody: String

    init(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        let parts = text.components(separatedBy: "\r\n\r\n")
        let lines = (parts.first ?? "").components(separatedBy: "\r\n")
        func field(_ name: String) -> String? {
            lines.first { $0.lowercased().hasPrefix(name.lowercased() + ":") }
                .map { String($0.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces) }
        }
        date = field("Date").flatMap(Self.parseDate) ?? Date()
        messageID = field("Message-ID").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "<>")) } ?? ""
        decodedBody = Self.undoQuotedPrintable(parts.dropFirst().joined(separator: "\r\n\r\n"))
    }

    /// `Sun, 29 Nov 2026 00:56:39 +0000`, as ``MIMERenderer/rfc5322Date(_:)`` writes it.
    private static func parseDate(_ value: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        return formatter.date(from: value)
    }

    /// Soft line breaks joined and `=XX` turned back into bytes: enough to read the links.
    private static func undoQuotedPrintable(_ body: String) -> String {
        let bytes = Array(body.replacingOccurrences(of: "=\r\n", with: "").utf8)
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "="), index + 2 < bytes.count,
                let value = UInt8(String(decoding: bytes[(index + 1)...(index + 2)], as: UTF8.self), radix: 16)
            {
                decoded.append(value)
                index += 3
            } else {
                decoded.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: decoded, as: UTF8.self)
    }
}

/// Closes a file descriptor; here because inside ``MailFileWriter`` `close` names the session's own method.
private func closeDescriptor(_ descriptor: Int32) -> Int32 {
    close(descriptor)
}
