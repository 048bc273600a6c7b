import Foundation
import WaitlistCore

extension FileTransport {
    /// Deletes the `.eml` files in `directory` addressed to `address`, for `waitlist forget`.
    ///
    /// - Returns: how many files were deleted.
    public static func removeMessages(to address: String, in directory: String) -> Int {
        let wanted = EmailAddress.key(of: address)
        guard !wanted.isEmpty, let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return 0 }
        var removed = 0
        for name in names where name.hasSuffix(".eml") {
            let path = (directory as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            // The header block ends at the first empty line; the recipient is in its To field.
            let text = String(decoding: data.prefix(64 * 1024), as: UTF8.self)
            let headers = text.components(separatedBy: "\r\n\r\n").first ?? text
            guard let toLine = headers.components(separatedBy: "\r\n").first(where: { $0.lowercased().hasPrefix("to:") }) else { continue }
            var recipient = toLine.dropFirst(3).trimmingCharacters(in: .whitespaces)
            if let open = recipient.lastIndex(of: "<"), let close = recipient.lastIndex(of: ">"), open < close {
                recipient = String(recipient[recipient.index(after: open)..<close])
            }
            if EmailAddress.key(of: recipient) == wanted, (try? FileManager.default.removeItem(atPath: path)) != nil {
                removed += 1
            }
        }
        return removed
    }
}
