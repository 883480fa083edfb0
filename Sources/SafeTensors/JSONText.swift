/// The package's one hand-made JSON writer: safetensors headers, shard indexes and the daemon's log lines write
/// their strings and numbers here (manifests and records go through Foundation's `JSONEncoder`).
///
/// Strings are escaped as RFC 8259 requires and no more: `"` and `\` with a backslash, U+0000 to U+001F as
/// `\u00XX` (lowercase hex), everything else as its UTF-8 bytes. A string holding a newline thus stays on its
/// line, whatever the name.
public enum JSONText {
    /// Appends `text` as a JSON string.
    public static func appendString(_ text: String, to json: inout [UInt8]) {
        func digit(_ value: UInt8) -> UInt8 { value < 10 ? 0x30 + value : 0x57 + value }
        json.append(.quote)
        for byte in text.utf8 {
            switch byte {
            case .quote, .backslash:
                json.append(.backslash)
                json.append(byte)
            case 0..<0x20:
                json.append(contentsOf: "\\u00".utf8)
                json.append(digit(byte >> 4))
                json.append(digit(byte & 0xF))
            default:
                json.append(byte)
            }
        }
        json.append(.quote)
    }

    /// `text` as a JSON string.
    public static func quoted(_ text: String) -> String {
        var json: [UInt8] = []
        json.reserveCapacity(text.utf8.count + 2)
        appendString(text, to: &json)
        return String(decoding: json, as: UTF8.self)
    }

    /// A number as JSON allows it: whole values (below 1e15) without a fraction, others rounded to three
    /// decimals, non-finite values as `null`.
    public static func number(_ value: Double) -> String {
        guard value.isFinite else { return "null" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int(value)) }
        return String((value * 1000).rounded() / 1000)
    }
}
