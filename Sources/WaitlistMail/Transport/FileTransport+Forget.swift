import Foundation
import WaitlistCore

extension FileTransport {
    /// What ``removeMessages(to:in:)`` did.
    public struct Removal: Sendable, Equatable {
        /// Files deleted.
        public var removed = 0
        /// Files addressed to the address that could not be deleted, each with why.
        public var left: [String] = []
    }

    /// Deletes the `.eml` files in `directory` addressed to `address`, for `waitlist forget`. A
    /// directory that does not exist holds none; one that cannot be read, or a file addressed to
    /// `address` that cannot be deleted, is reported in ``Removal/left``.
    public static func removeMessages(to address: String, in directory: String) -> Removal {
        var removal = Removal()
        let wanted = EmailAddress.key(of: address)
        guard !wanted.isEmpty, FileManager.default.fileExists(atPath: directory) else { return removal }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            removal.left.append("\(directory): \(error.localizedDescription)")
            return removal
        }
        for name in names where name.hasSuffix(".eml") {
            let path = (directory as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: path) else {
                // Unreadable: it may be addressed to `address`, and nothing here can tell.
                removal.left.append("\(path): cannot be read")
                continue
            }
            // The header block ends at the first empty line; the recipient is in its To field.
            let text = String(decoding: data.prefix(64 * 1024), as: UTF8.self)
            let headers = text.components(separatedBy: "\r\n\r\n").first ?? text
            guard let toLine = headers.components(separatedBy: "\r\n").first(where: { $0.lowercased().hasPrefix("to:") }) else { continue }
            var recipient = toLine.dropFirst(3).trimmingCharacters(in: .whitespaces)
            if let open = recipient.lastIndex(of: "<"), let close = recipient.lastIndex(of: ">"), open < close {
                recipient = String(recipient[recipient.index(after: open)..<close])
            }
            guard EmailAddress.key(of: recipient) == wanted else { continue }
            do {
                try FileManager.default.removeItem(atPath: path)
                removal.removed += 1
            } catch {
                removal.left.append("\(path): \(error.localizedDescription)")
            }
        }
        return removal
    }
}
