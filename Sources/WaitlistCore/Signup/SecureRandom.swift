#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Random bytes from the system's cryptographic generator, asked for in one call.
///
/// `SystemRandomNumberGenerator` asks the kernel for 8 bytes at a time; a token needs 24 or 32 and
/// a message ID 16, and the sender makes both for every message: one `getrandom` each instead of
/// three or four.
package enum SecureRandom {
    /// `count` random bytes.
    package static func bytes(_ count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initializedCount in
            fill(UnsafeMutableRawBufferPointer(buffer))
            initializedCount = count
        }
    }

    /// Fills `buffer` with random bytes: `arc4random_buf`, which glibc (2.36 and later) answers
    /// with one `getrandom` call and which stops the process rather than return anything weaker.
    package static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let start = buffer.baseAddress else { return }
        arc4random_buf(start, buffer.count)
    }

    /// `count` random bytes as `2 * count` lowercase hex digits.
    package static func hexDigits(_ count: Int) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(count * 2)
        for byte in bytes(count) {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
