/// The configuration file: a strict subset of TOML 1.0. Lines are blank, `# comments`, a table header
/// (`[quantize]`, `[limits]`, each at most once), or `key = value` with a bare key and a value that is a basic
/// "string" or a literal 'string', an integer, a float, true/false, or a one-line array of strings. What it
/// reads follows TOML's grammar exactly (toml.io/en/v1.0.0); anything else is refused with its line.
/// Why not a TOML library: the file is a flat list of scalars; this subset needs no dependency, reads with any
/// TOML parser, and can name the key and line of every mistake.
enum TOMLSubset {
    struct Entry: Equatable {
        var key: String
        var value: ConfigValue
        var line: Int
    }

    static let tables: Set<String> = ["quantize", "limits"]

    static func parse(_ text: String, source: String) throws(ConfigError) -> [Entry] {
        var entries: [Entry] = []
        var table = ""
        var seen = Set<String>()
        var seenTables = Set<String>()
        // Split on the scalar: a CRLF is one Character, which is not "\n".
        for (index, rawLine) in text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false)
            .enumerated() {
            let lineNumber = index + 1
            func refuse(_ key: String?, _ reason: String) -> ConfigError {
                ConfigError(key: key, reason: reason, source: source, line: lineNumber)
            }
            var line = String(String.UnicodeScalarView(rawLine)).trimmed
            if let hash = commentStart(line) {
                do throws(ConfigRefusal) { try checkComment(line[hash...].unicodeScalars) } catch {
                    throw refuse(nil, error.reason)
                }
                if line.hasPrefix("#") { continue }
                if line.hasPrefix("[") { line = String(line[..<hash]).trimmed }
            }
            if line.isEmpty { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.count > 2 else { throw refuse(nil, "malformed table header") }
                table = String(line.dropFirst().dropLast()).trimmed
                guard tables.contains(table) else { throw refuse(nil, "unknown table [\(table)]") }
                guard seenTables.insert(table).inserted else { throw refuse(nil, "table [\(table)] defined twice") }
                continue
            }
            guard let equals = line.firstIndex(of: "=") else { throw refuse(nil, "expected key = value") }
            let bare = String(line[..<equals]).trimmed
            guard !bare.isEmpty, bare.unicodeScalars.allSatisfy({ isBareKeyScalar($0) }) else {
                throw refuse(nil, "invalid key \"\(bare)\"")
            }
            let key = table.isEmpty ? bare : table + "." + bare
            guard seen.insert(key).inserted else { throw refuse(key, "set twice") }
            let valueText = String(line[line.index(after: equals)...]).trimmed
            do {
                entries.append(Entry(key: key, value: try parseValue(valueText), line: lineNumber))
            } catch {
                throw refuse(key, error.reason)
            }
        }
        return entries
    }

    private static func isBareKeyScalar(_ s: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(s) || ("A"..."Z").contains(s) || ("0"..."9").contains(s) || s == "_" || s == "-"
    }

    /// Where a comment starts on a line that is a comment or a table header (whose names hold no `#`).
    private static func commentStart(_ line: String) -> String.Index? {
        line.hasPrefix("#") || line.hasPrefix("[") ? line.firstIndex(of: "#") : nil
    }

    /// TOML allows no control character but tab in a comment.
    private static func checkComment(_ comment: some Sequence<Unicode.Scalar>) throws(ConfigRefusal) {
        if comment.contains(where: isForbiddenControl) {
            throw ConfigRefusal(reason: "control character in a comment")
        }
    }

    /// The control characters TOML refuses in strings and comments: all but tab.
    static func isForbiddenControl(_ s: Unicode.Scalar) -> Bool {
        (s.value < 0x20 && s != "\t") || s.value == 0x7F
    }

    /// One value, optionally followed by a `# comment`.
    static func parseValue(_ text: String) throws(ConfigRefusal) -> ConfigValue {
        var scanner = Scanner(Array(text.unicodeScalars))
        let value = try scanner.value()
        scanner.skipSpaces()
        guard scanner.atEnd || scanner.peek == "#" else {
            throw ConfigRefusal(reason: "unexpected text after the value")
        }
        try checkComment(scanner.rest)
        return value
    }

    private struct Scanner {
        typealias Refusal = ConfigRefusal
        let scalars: [Unicode.Scalar]
        var position = 0

        init(_ scalars: [Unicode.Scalar]) { self.scalars = scalars }

        var atEnd: Bool { position >= scalars.count }
        var peek: Unicode.Scalar? { atEnd ? nil : scalars[position] }
        var rest: ArraySlice<Unicode.Scalar> { scalars[min(position, scalars.count)...] }

        mutating func skipSpaces() {
            while let c = peek, c == " " || c == "\t" { position += 1 }
        }

        mutating func value() throws(Refusal) -> ConfigValue {
            skipSpaces()
            guard let c = peek else { throw Refusal(reason: "missing value") }
            if c == "\"" || c == "'" { return .string(try string()) }
            if c == "[" { return .strings(try array()) }
            var word = ""
            while let c = peek, c != " ", c != "\t", c != "#", c != ",", c != "]" {
                word.unicodeScalars.append(c)
                position += 1
            }
            if word == "true" { return .bool(true) }
            if word == "false" { return .bool(false) }
            if let number = try TOMLNumber.parse(word) { return number }
            throw Refusal(reason: "expected a quoted string, a number, true, false or [\"...\"], got \(word)")
        }

        /// A basic "string" with TOML's escapes, or a literal 'string' taken as it is; on one line.
        mutating func string() throws(Refusal) -> String {
            let quote = scalars[position]
            if rest.starts(with: [quote, quote, quote]) {
                throw Refusal(reason: "multi-line strings are not accepted")
            }
            position += 1
            var out = ""
            while let c = peek {
                position += 1
                if c == quote { return out }
                if c == "\\" && quote == "\"" {
                    out.unicodeScalars.append(try escape())
                } else if TOMLSubset.isForbiddenControl(c) {
                    throw Refusal(reason: "control character in a string")
                } else {
                    out.unicodeScalars.append(c)
                }
            }
            throw Refusal(reason: "unterminated string")
        }

        /// The character after a backslash: `\b \t \n \f \r \" \\`, `\uXXXX` or `\UXXXXXXXX`.
        private mutating func escape() throws(Refusal) -> Unicode.Scalar {
            guard let e = peek else { throw Refusal(reason: "unterminated string") }
            position += 1
            switch e {
            case "b": return "\u{08}"
            case "t": return "\t"
            case "n": return "\n"
            case "f": return "\u{0C}"
            case "r": return "\r"
            case "\"": return "\""
            case "\\": return "\\"
            case "u", "U":
                let count = e == "u" ? 4 : 8
                let hex = rest.prefix(count)
                guard hex.count == count, hex.allSatisfy({ $0.properties.isASCIIHexDigit }),
                      let value = UInt32(String(String.UnicodeScalarView(hex)), radix: 16),
                      let scalar = Unicode.Scalar(value)
                else {
                    throw Refusal(reason: "invalid \\\(e) escape")
                }
                position += count
                return scalar
            default: throw Refusal(reason: "invalid escape \\\(e)")
            }
        }

        mutating func array() throws(Refusal) -> [String] {
            position += 1
            var items: [String] = []
            while true {
                skipSpaces()
                guard let c = peek else { throw Refusal(reason: "unterminated array") }
                if c == "]" { position += 1; return items }
                guard c == "\"" || c == "'" else { throw Refusal(reason: "arrays hold quoted strings only") }
                items.append(try string())
                skipSpaces()
                if peek == "," { position += 1 } else if peek != "]" {
                    throw Refusal(reason: "expected , or ] in the array")
                }
            }
        }
    }
}

/// TOML 1.0's integers and floats, exactly: decimal integers with an optional sign and no leading zero;
/// `0x`, `0o` and `0b` integers without a sign; floats with a fraction (digits on both sides of `.`) and/or an
/// exponent; underscores only between two digits. Integers fit 64 bits and floats are finite: no key takes
/// `inf` or `nan`, which TOML spells but this file refuses.
enum TOMLNumber {
    /// The number `word` spells; nil when it does not look like one at all (a sign or a digit first, or `.` or
    /// `_` before a digit), so that the caller can say what else it expected.
    static func parse(_ word: String) throws(ConfigRefusal) -> ConfigValue? {
        let bytes = Array(word.utf8)
        var body = bytes[...]
        let sign = body.first.flatMap { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") ? $0 : nil }
        if sign != nil { body = body.dropFirst() }
        if body.elementsEqual("inf".utf8) || body.elementsEqual("nan".utf8) {
            throw ConfigRefusal(reason: "expected a finite number, got \(word)")
        }
        let first = bytes.first ?? 0
        let startsLikeANumber = isDigit(first) || sign != nil
            || ((first == UInt8(ascii: ".") || first == underscore) && bytes.contains { isDigit($0) })
        guard startsLikeANumber else { return nil }
        func refuse(_ why: String) -> ConfigRefusal { ConfigRefusal(reason: "invalid number \(word): \(why)") }

        if body.count >= 2, body.first == UInt8(ascii: "0"), let prefix = prefixes[body[body.startIndex + 1]] {
            guard sign == nil else { throw refuse("no sign is allowed before 0x, 0o or 0b") }
            let digits = body.dropFirst(2)
            if let bad = digits.first(where: { $0 != underscore && !isDigit($0, radix: prefix.radix) }) {
                throw refuse("\(describe(bad)) is not \(prefix.name) digit")
            }
            try checkRun(digits, refuse)
            let text = String(decoding: digits.filter { $0 != underscore }, as: UTF8.self)
            guard let value = Int(text, radix: prefix.radix) else {
                throw refuse("out of the range of a 64-bit integer")
            }
            return .integer(value)
        }

        var rest = body
        let integerPart = rest.prefix { isDigit($0) || $0 == underscore }
        rest = rest.dropFirst(integerPart.count)
        if integerPart.isEmpty && rest.first == UInt8(ascii: ".") { throw refuse("'.' needs digits on both sides") }
        try checkRun(integerPart, refuse)
        if integerPart.count > 1 && integerPart.first == UInt8(ascii: "0") {
            throw refuse("leading zeros are not allowed")
        }
        var isFloat = false
        if rest.first == UInt8(ascii: ".") {
            rest = rest.dropFirst()
            let fraction = rest.prefix { isDigit($0) || $0 == underscore }
            rest = rest.dropFirst(fraction.count)
            if fraction.isEmpty { throw refuse("'.' needs digits on both sides") }
            try checkRun(fraction, refuse)
            isFloat = true
        }
        if rest.first == UInt8(ascii: "e") || rest.first == UInt8(ascii: "E") {
            rest = rest.dropFirst()
            if rest.first == UInt8(ascii: "+") || rest.first == UInt8(ascii: "-") { rest = rest.dropFirst() }
            let exponent = rest.prefix { isDigit($0) || $0 == underscore }
            rest = rest.dropFirst(exponent.count)
            if exponent.isEmpty { throw refuse("the exponent has no digits") }
            try checkRun(exponent, refuse)
            isFloat = true
        }
        if let unexpected = rest.first { throw refuse("unexpected \(describe(unexpected))") }

        let text = String(decoding: bytes.filter { $0 != underscore }, as: UTF8.self)
        if isFloat {
            guard let value = Double(text), value.isFinite else { throw refuse("out of the range of a 64-bit float") }
            return .float(value)
        }
        guard let value = Int(text) else { throw refuse("out of the range of a 64-bit integer") }
        return .integer(value)
    }

    private static let underscore = UInt8(ascii: "_")
    private static let prefixes: [UInt8: (radix: Int, name: String)] = [
        UInt8(ascii: "x"): (16, "a hexadecimal"), UInt8(ascii: "o"): (8, "an octal"),
        UInt8(ascii: "b"): (2, "a binary"),
    ]

    private static func isDigit(_ byte: UInt8, radix: Int = 10) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte - UInt8(ascii: "0")) < radix
        case UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "A")...UInt8(ascii: "F"): radix == 16
        default: false
        }
    }

    private static func describe(_ byte: UInt8) -> String {
        byte < 0x80 ? "'\(Unicode.Scalar(byte))'" : "non-ASCII text"
    }

    /// Digits with underscores only between two of them.
    private static func checkRun(_ run: ArraySlice<UInt8>, _ refuse: (String) -> ConfigRefusal) throws(ConfigRefusal) {
        guard !run.isEmpty else { throw refuse("no digits") }
        let misplaced = run.first == underscore || run.last == underscore
            || zip(run, run.dropFirst()).contains { $0 == underscore && $1 == underscore }
        if misplaced { throw refuse("an underscore must stand between two digits") }
    }
}

extension StringProtocol {
    var trimmed: String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" && $0 != "\r" }) else { return "" }
        let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" && $0 != "\r" })!
        return String(String.UnicodeScalarView(scalars[first...last]))
    }
}
