import Foundation

// MARK: - Random text

/// A small, seeded pseudo-random generator (SplitMix64), so a random test repeats exactly.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}

/// Random text of up to `maxPieces` pieces, mixing what mail has to survive: ASCII, spaces, line
/// breaks and other control characters, Cyrillic, CJK, emoji and ZWJ sequences, combining marks,
/// flags, and fragments that look like encoded-words, boundaries and SMTP dots.
func randomText(using generator: inout SplitMix64, maxPieces: Int) -> String {
    let fragments = [
        "=?", "?=", "=?utf-8?B?", "=?UTF-8?Q?a?=", "=", ".", "\n.", "--", "--=_Waitlist_Alternative_Part", "\"", "\\", "<", ">", "@",
        ",", ";", ":", "(", ")", "\r\n", "\r", "\n", "\t", "  ", "👩‍👩‍👧‍👦", "🇷🇺", "é", "https://example.org/a?b=c",
    ]
    let controls: [UInt32] = [0x00, 0x07, 0x08, 0x0B, 0x0C, 0x1B, 0x1F, 0x7F, 0x85, 0x9B, 0x2028, 0x2029]
    var text = ""
    let count = Int.random(in: 0...maxPieces, using: &generator)
    for _ in 0..<count {
        let kind = Int.random(in: 0..<100, using: &generator)
        let scalarValue: UInt32
        switch kind {
        case 0..<30: scalarValue = UInt32.random(in: 0x21...0x7E, using: &generator)
        case 30..<42: scalarValue = 0x20
        case 42..<58: scalarValue = UInt32.random(in: 0x410...0x44F, using: &generator)
        case 58..<62: scalarValue = UInt32.random(in: 0x4E00...0x9FFF, using: &generator)
        case 62..<70: scalarValue = UInt32.random(in: 0x1F300...0x1F64F, using: &generator)
        case 70..<75: scalarValue = UInt32.random(in: 0x300...0x36F, using: &generator)
        case 75..<79: scalarValue = UInt32.random(in: 0xA0...0xFF, using: &generator)
        case 79..<84: scalarValue = controls[Int.random(in: 0..<controls.count, using: &generator)]
        default:
            text += fragments[Int.random(in: 0..<fragments.count, using: &generator)]
            continue
        }
        text.unicodeScalars.append(Unicode.Scalar(scalarValue)!)
    }
    return text
}
