import Foundation
import WaitlistCore

/// RFC 6376 §3.4 "relaxed" canonicalisation of header fields and bodies, the form a DKIM signature
/// is computed over and a verifier computes again.
enum DKIMCanonicalization {
    /// One header field as it stands in a message: its name as written and the whole field, folds
    /// included, without the CRLF that ends it.
    struct HeaderField {
        var name: String
        var raw: [UInt8]
    }

    /// The header fields of a message (everything before the first empty line), in their order.
    /// A line starting with a space or tab continues the field before it.
    static func headerFields(_ message: [UInt8]) -> (fields: [HeaderField], bodyStart: Int) {
        var fields: [HeaderField] = []
        var lineStart = 0
        var index = 0
        let count = message.count
        while index < count {
            guard message[index] == 0x0A else {
                index += 1
                continue
            }
            // A line of message[lineStart..<index], without its CR.
            let lineEnd = index > lineStart && message[index - 1] == 0x0D ? index - 1 : index
            if lineEnd == lineStart {
                return (fields, index + 1)
            }
            let first = message[lineStart]
            if (first == 0x20 || first == 0x09), !fields.isEmpty {
                fields[fields.count - 1].raw += [0x0D, 0x0A] + message[lineStart..<lineEnd]
            } else {
                let line = message[lineStart..<lineEnd]
                let colon = line.firstIndex(of: UInt8(ascii: ":")) ?? lineEnd
                let name = String(decoding: message[lineStart..<colon], as: UTF8.self).trimmingCharacters(in: .whitespaces)
                fields.append(HeaderField(name: name, raw: Array(line)))
            }
            index += 1
            lineStart = index
        }
        return (fields, count)
    }

    /// The relaxed form of one header field (RFC 6376 §3.4.2): the name lowercased, folds
    /// removed, every run of spaces and tabs one space, none at the end of the value or around the
    /// colon. Ends with CRLF, as it is hashed.
    static func relaxedHeader(_ field: [UInt8]) -> [UInt8] {
        guard let colon = field.firstIndex(of: UInt8(ascii: ":")) else { return field + [0x0D, 0x0A] }
        var output: [UInt8] = []
        output.reserveCapacity(field.count + 2)
        for byte in field[..<colon] where byte != 0x20 && byte != 0x09 {
            output.append((0x41...0x5A).contains(byte) ? byte + 0x20 : byte)
        }
        output.append(UInt8(ascii: ":"))
        var pendingSpace = false
        var started = false
        for byte in field[(colon + 1)...] {
            switch byte {
            case 0x0D, 0x0A:
                continue
            case 0x20, 0x09:
                pendingSpace = started
            default:
                if pendingSpace { output.append(0x20) }
                pendingSpace = false
                started = true
                output.append(byte)
            }
        }
        output += [0x0D, 0x0A]
        return output
    }

    /// The relaxed form of a body (RFC 6376 §3.4.4): every run of spaces and tabs within a line
    /// one space, none at a line's end, no empty lines at the end, and a final CRLF unless the body
    /// is empty. Lines end at CRLF.
    static func relaxedBody(_ body: ArraySlice<UInt8>) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(body.count + 2)
        // Empty lines seen but not yet written: they are dropped if nothing follows them.
        var pendingEmptyLines = 0
        var line: [UInt8] = []
        var pendingSpace = false
        var index = body.startIndex
        func endLine() {
            if line.isEmpty {
                pendingEmptyLines += 1
            } else {
                for _ in 0..<pendingEmptyLines { output += [0x0D, 0x0A] }
                pendingEmptyLines = 0
                output += line
                output += [0x0D, 0x0A]
            }
            line.removeAll(keepingCapacity: true)
            pendingSpace = false
        }
        while index < body.endIndex {
            let byte = body[index]
            if byte == 0x0D, index + 1 < body.endIndex, body[index + 1] == 0x0A {
                endLine()
                index += 2
                continue
            }
            if byte == 0x20 || byte == 0x09 {
                pendingSpace = true
            } else {
                if pendingSpace { line.append(0x20) }
                pendingSpace = false
                line.append(byte)
            }
            index += 1
        }
        if !line.isEmpty {
            endLine()
        }
        return output
    }
}
