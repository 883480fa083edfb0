/// Builds one JSON object as text, escaping every string so that any file name, however odd
/// (quotes, newlines, control characters, unicode), leaves the line valid JSON.
struct JSONObjectWriter {
    private(set) var text = "{"
    private var first = true

    static func quoted(_ string: String) -> String {
        var out = "\""
        out.reserveCapacity(string.utf8.count + 2)
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{2028}": out += "\\u2028"
            case "\u{2029}": out += "\\u2029"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// A number as JSON allows it: non-finite values become `null`.
    static func number(_ value: Double) -> String {
        guard value.isFinite else { return "null" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int(value)) }
        return String((value * 1000).rounded() / 1000)
    }

    mutating func key(_ key: String) {
        if !first { text += "," }
        first = false
        text += Self.quoted(key) + ":"
    }

    mutating func raw(_ key: String, _ json: String) {
        self.key(key)
        text += json
    }

    mutating func string(_ key: String, _ value: String) { raw(key, Self.quoted(value)) }

    mutating func finish() -> String {
        text += "}"
        return text
    }
}
