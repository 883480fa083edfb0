/// Names from outside (files, tensors, spool entries) made safe for a one-line message and a terminal: the
/// package's one rule for the text it shows, in errors, log reasons and `quantd status`.
public enum MessageText {
    /// Whether `scalar` is shown escaped: C0 and C1 control characters, DEL, and the line and paragraph
    /// separators (which some readers take as line breaks).
    public static func isEscaped(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar == "\u{2028}" || scalar == "\u{2029}"
    }

    /// `text` with each escaped scalar written as `\u{..}` (lowercase hex), cut after `limit` scalars (then
    /// `...`) when a limit is given.
    public static func sanitized(_ text: String, limit: Int? = 200) -> String {
        var result = ""
        var count = 0
        for scalar in text.unicodeScalars {
            if count == limit {
                result += "..."
                break
            }
            count += 1
            if isEscaped(scalar) {
                result += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}
