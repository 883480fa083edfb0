/// A strict, non-recursive JSON scanner over untrusted bytes (a safetensors header or a shard index).
///
/// Use it in two passes. `validateDocument` checks the whole text first (UTF-8, JSON syntax, nesting depth,
/// padding around the top-level object), so that every syntax error is reported as such before any schema
/// error, whatever the schema reader looks at. The pull methods (`enterObject`, `nextKey`, `readString`, ...)
/// then read the validated text; they still check what they rely on and throw rather than trap.
/// Nothing here recurses, and nothing allocates more than the strings it returns.
struct JSONScanner {
    let bytes: UnsafeRawBufferPointer
    let file: String
    /// What error messages call the text: "header" for a safetensors header (whose byte 0 is file offset 8).
    let textName: String
    var position = 0

    init(_ bytes: UnsafeRawBufferPointer, file: String, textName: String = "header") {
        self.bytes = bytes
        self.file = file
        self.textName = textName
    }

    /// An error about the byte at `at` (default: the current position).
    func failure(_ kind: SafeTensorsError.Kind, _ detail: String, at: Int? = nil) -> SafeTensorsError {
        SafeTensorsError(kind, file: file, "\(detail) (\(textName) byte \(at ?? position))")
    }

    func peek() -> UInt8? {
        position < bytes.count ? bytes[position] : nil
    }

    /// Skips JSON whitespace (space, tab, line feed, carriage return) between tokens.
    mutating func skipWhitespace() {
        while position < bytes.count, Self.isWhitespace(bytes[position]) {
            position += 1
        }
    }

    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == .space || byte == .tab || byte == .lineFeed || byte == .carriageReturn
    }

    /// What a value starting with `byte` is, for error messages.
    static func describeValue(startingWith byte: UInt8?) -> String {
        guard let byte else { return "missing" }
        return switch byte {
        case UInt8(ascii: "{"): "an object"
        case UInt8(ascii: "["): "an array"
        case UInt8(ascii: "\""): "a string"
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): "a number"
        case UInt8(ascii: "t"), UInt8(ascii: "f"): "a boolean"
        case UInt8(ascii: "n"): "null"
        default: "not a JSON value"
        }
    }

    /// What the value at the current position is, for error messages.
    func describeNextValue() -> String {
        Self.describeValue(startingWith: peek())
    }

    // MARK: UTF-8

    /// Refuses bytes that are not well-formed UTF-8 (overlong forms, surrogates, values above U+10FFFF included).
    func validateUTF8() throws(SafeTensorsError) {
        var i = 0
        let n = bytes.count
        while i < n {
            let lead = bytes[i]
            if lead < 0x80 {
                i += 1
                continue
            }
            let length: Int
            var low: UInt8 = 0x80
            var high: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; high = 0x9F
            case 0xF0: length = 4; low = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; high = 0x8F
            default:
                throw failure(.notUTF8, "invalid UTF-8 lead byte 0x\(hex(lead))", at: i)
            }
            guard i + length <= n else {
                throw failure(.notUTF8, "UTF-8 sequence cut off by the end of the \(textName)", at: i)
            }
            for k in 1..<length {
                let byte = bytes[i + k]
                let (lo, hi) = k == 1 ? (low, high) : (0x80, 0xBF)
                guard byte >= lo, byte <= hi else {
                    throw failure(.notUTF8, "invalid UTF-8 continuation byte 0x\(hex(byte))", at: i + k)
                }
            }
            i += length
        }
    }

    // MARK: Pass 1: the whole document

    /// Checks that the text is one JSON object, padded only with spaces (or any JSON whitespace when
    /// `whitespacePadding`), nested at most `maxDepth` deep.
    /// Leaves `position` at the end; call `rewindToObject()` before reading.
    mutating func validateDocument(maxDepth: Int, whitespacePadding: Bool = false) throws(SafeTensorsError) {
        try validateUTF8()
        position = 0
        try skipPadding(leading: true, whitespace: whitespacePadding)
        guard let first = peek() else {
            throw failure(.invalidJSON, "\(textName) holds only padding, no JSON object")
        }
        guard first == .openBrace else {
            let what = Self.describeValue(startingWith: first)
            if what == "not a JSON value" {
                throw failure(.invalidJSON, "unexpected byte 0x\(hex(first)) where a JSON object should start")
            }
            throw failure(.notAnObject, "top-level JSON value is \(what), not an object")
        }
        // The open containers, innermost last: true for an object. Never longer than maxDepth.
        var stack: [Bool] = []
        stack.reserveCapacity(max(0, min(maxDepth, 64)))
        var expectingValue = true
        while true {
            if expectingValue {
                skipWhitespace()
                guard let byte = peek() else {
                    throw failure(.invalidJSON, "\(textName) ends where a value is expected")
                }
                switch byte {
                case .openBrace, .openBracket:
                    guard stack.count < maxDepth else {
                        throw failure(.nestingTooDeep, "arrays and objects nested deeper than \(maxDepth)")
                    }
                    let isObject = byte == .openBrace
                    position += 1
                    skipWhitespace()
                    if peek() == (isObject ? .closeBrace : .closeBracket) {
                        position += 1
                    } else {
                        stack.append(isObject)
                        if isObject {
                            try scanKeyAndColon()
                        }
                        continue
                    }
                case .quote:
                    _ = try scanString(decode: false)
                case .minus, UInt8(ascii: "0")...UInt8(ascii: "9"):
                    _ = try scanNumber()
                case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
                    try scanLiteral()
                default:
                    throw failure(.invalidJSON, "unexpected byte 0x\(hex(byte)) where a value is expected")
                }
                expectingValue = false
            }
            guard let isObject = stack.last else { break }
            skipWhitespace()
            guard let byte = peek() else {
                throw failure(.invalidJSON, "\(textName) ends inside \(isObject ? "an object" : "an array")")
            }
            position += 1
            switch byte {
            case .comma:
                if isObject {
                    skipWhitespace()
                    try scanKeyAndColon()
                }
                expectingValue = true
            case .closeBrace where isObject, .closeBracket where !isObject:
                stack.removeLast()
            default:
                let expected = isObject ? "',' or '}'" : "',' or ']'"
                throw failure(.invalidJSON, "expected \(expected), found byte 0x\(hex(byte))", at: position - 1)
            }
        }
        try skipPadding(leading: false, whitespace: whitespacePadding)
    }

    /// Moves to the top-level `{` of a validated document (past the leading spaces).
    mutating func rewindToObject() {
        position = 0
        skipWhitespace()
    }

    /// Skips the spaces (or JSON whitespace) around the top-level object; any other byte there is refused.
    private mutating func skipPadding(leading: Bool, whitespace: Bool) throws(SafeTensorsError) {
        while let byte = peek() {
            switch byte {
            case .space:
                position += 1
            case 0x00, .tab, .lineFeed, .carriageReturn:
                if whitespace, byte != 0x00 {
                    position += 1
                    continue
                }
                throw failure(.badPadding, "padding byte 0x\(hex(byte)) (only spaces may pad the \(textName))")
            default:
                if leading {
                    return
                }
                throw failure(.trailingGarbage, "byte 0x\(hex(byte)) after the end of the top-level object")
            }
        }
    }

    private mutating func scanKeyAndColon() throws(SafeTensorsError) {
        guard peek() == .quote else {
            throw failure(.invalidJSON, "expected a string key, found \(describeNextValue())")
        }
        _ = try scanString(decode: false)
        skipWhitespace()
        guard peek() == .colon else {
            throw failure(.invalidJSON, "expected ':' after an object key")
        }
        position += 1
    }

    private mutating func scanLiteral() throws(SafeTensorsError) {
        for word in ["true", "false", "null"] {
            let utf8 = word.utf8
            if position + utf8.count <= bytes.count,
               utf8.enumerated().allSatisfy({ bytes[position + $0.offset] == $0.element }) {
                position += utf8.count
                return
            }
        }
        throw failure(.invalidJSON, "invalid literal (expected true, false or null)")
    }

    // MARK: Strings

    /// Scans the string starting at the current quote and moves past it. Checks escapes, surrogate pairs and
    /// control characters; returns the decoded string when `decode` is true, nil otherwise.
    mutating func scanString(decode: Bool) throws(SafeTensorsError) -> String? {
        let start = position
        guard peek() == .quote else {
            throw failure(.invalidJSON, "expected a string, found \(describeNextValue())")
        }
        position += 1
        var runStart = position
        var decoded: [UInt8] = []
        var escaped = false
        while true {
            guard position < bytes.count else {
                throw failure(.unterminatedString, "string has no closing quote", at: start)
            }
            let byte = bytes[position]
            if byte == .quote {
                let run = UnsafeRawBufferPointer(rebasing: bytes[runStart..<position])
                position += 1
                guard decode else { return nil }
                guard escaped else { return String(decoding: run, as: UTF8.self) }
                decoded.append(contentsOf: run)
                return String(decoding: decoded, as: UTF8.self)
            }
            if byte < 0x20 {
                throw failure(.invalidString, "raw control character 0x\(hex(byte)) in a string")
            }
            if byte == .backslash {
                if decode {
                    decoded.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<position]))
                }
                escaped = true
                let scalar = try scanEscape(stringStart: start)
                if decode {
                    decoded.append(contentsOf: UTF8.encode(scalar)!)
                }
                runStart = position
                continue
            }
            position += 1
        }
    }

    /// Scans one escape at the current backslash and moves past it.
    private mutating func scanEscape(stringStart: Int) throws(SafeTensorsError) -> Unicode.Scalar {
        let escapeStart = position
        guard position + 1 < bytes.count else {
            throw failure(.unterminatedString, "string has no closing quote", at: stringStart)
        }
        let letter = bytes[position + 1]
        position += 2
        switch letter {
        case .quote: return "\""
        case .backslash: return "\\"
        case UInt8(ascii: "/"): return "/"
        case UInt8(ascii: "b"): return "\u{08}"
        case UInt8(ascii: "f"): return "\u{0C}"
        case UInt8(ascii: "n"): return "\n"
        case UInt8(ascii: "r"): return "\r"
        case UInt8(ascii: "t"): return "\t"
        case UInt8(ascii: "u"): break
        default:
            throw failure(.invalidEscape, "unknown escape '\\\(printable(letter))'", at: escapeStart)
        }
        let unit = try scanHex4(escapeStart: escapeStart)
        switch unit {
        case 0xD800...0xDBFF:
            guard position + 1 < bytes.count, bytes[position] == .backslash, bytes[position + 1] == UInt8(ascii: "u")
            else {
                throw failure(.invalidSurrogate, "high surrogate \\u\(hex16(unit)) not followed by a low surrogate",
                              at: escapeStart)
            }
            let lowStart = position
            position += 2
            let low = try scanHex4(escapeStart: lowStart)
            guard (0xDC00...0xDFFF).contains(low) else {
                throw failure(.invalidSurrogate,
                              "high surrogate \\u\(hex16(unit)) followed by \\u\(hex16(low)), not a low surrogate",
                              at: escapeStart)
            }
            let value = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
            return Unicode.Scalar(value)!
        case 0xDC00...0xDFFF:
            throw failure(.invalidSurrogate, "lone low surrogate \\u\(hex16(unit))", at: escapeStart)
        default:
            return Unicode.Scalar(unit)!
        }
    }

    /// Reads the four hex digits after `\u` (position is just past the `u`).
    private mutating func scanHex4(escapeStart: Int) throws(SafeTensorsError) -> UInt16 {
        var value: UInt16 = 0
        for _ in 0..<4 {
            guard position < bytes.count else {
                throw failure(.invalidEscape, "\\u escape cut off by the end of the \(textName)", at: escapeStart)
            }
            let byte = bytes[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default:
                throw failure(.invalidEscape, "\\u escape needs four hex digits", at: escapeStart)
            }
            value = value << 4 | UInt16(digit)
            position += 1
        }
        return value
    }

    // MARK: Numbers

    /// Scans a number with the JSON grammar and moves past it; returns its text's range.
    /// Leading zeros, a bare '-', '1.' and '1e' are refused as invalid numbers.
    mutating func scanNumber() throws(SafeTensorsError) -> Range<Int> {
        let start = position
        if peek() == .minus {
            position += 1
        }
        let intStart = position
        skipDigits()
        guard position > intStart else {
            throw failure(.invalidNumber, "number has no digits", at: start)
        }
        if bytes[intStart] == UInt8(ascii: "0"), position - intStart > 1 {
            throw failure(.invalidNumber, "number '\(text(start..<position))' has a leading zero", at: start)
        }
        if peek() == UInt8(ascii: ".") {
            position += 1
            let fractionStart = position
            skipDigits()
            guard position > fractionStart else {
                throw failure(.invalidNumber, "number has no digits after '.'", at: start)
            }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            position += 1
            if peek() == .plus || peek() == .minus {
                position += 1
            }
            let exponentStart = position
            skipDigits()
            guard position > exponentStart else {
                throw failure(.invalidNumber, "number has no digits in its exponent", at: start)
            }
        }
        return start..<position
    }

    private mutating func skipDigits() {
        while let byte = peek(), byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
            position += 1
        }
    }

    /// The text in `range`, shortened to `limit` bytes (for error messages) unless `limit` is nil.
    func text(_ range: Range<Int>, limit: Int? = 40) -> String {
        let shown = range.lowerBound..<min(range.upperBound, range.lowerBound + (limit ?? range.count))
        let suffix = shown.count < range.count ? "..." : ""
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[shown]), as: UTF8.self) + suffix
    }

    // MARK: Pass 2: pulling values out of a validated document

    /// Enters the object at the current position; false (nothing consumed) when the value is not an object.
    mutating func enterObject() -> Bool {
        skipWhitespace()
        guard peek() == .openBrace else { return false }
        position += 1
        return true
    }

    /// Enters the array at the current position; false (nothing consumed) when the value is not an array.
    mutating func enterArray() -> Bool {
        skipWhitespace()
        guard peek() == .openBracket else { return false }
        position += 1
        return true
    }

    /// In an entered object: reads the next key and its colon, or consumes the closing brace and returns nil.
    mutating func nextKey(isFirst: inout Bool) throws(SafeTensorsError) -> String? {
        guard try nextMember(close: .closeBrace, isFirst: &isFirst) else { return nil }
        let key = try scanString(decode: true)!
        skipWhitespace()
        guard peek() == .colon else {
            throw failure(.invalidJSON, "expected ':' after an object key")
        }
        position += 1
        return key
    }

    /// In an entered array: true when another element follows, false after consuming the closing bracket.
    mutating func nextElement(isFirst: inout Bool) throws(SafeTensorsError) -> Bool {
        try nextMember(close: .closeBracket, isFirst: &isFirst)
    }

    private mutating func nextMember(close: UInt8, isFirst: inout Bool) throws(SafeTensorsError) -> Bool {
        skipWhitespace()
        if peek() == close {
            position += 1
            return false
        }
        if !isFirst {
            guard peek() == .comma else {
                throw failure(.invalidJSON, "expected ',' between members")
            }
            position += 1
            skipWhitespace()
        }
        isFirst = false
        return true
    }

    /// Reads a string value; nil (nothing consumed) when the value is not a string.
    mutating func readString() throws(SafeTensorsError) -> String? {
        skipWhitespace()
        guard peek() == .quote else { return nil }
        return try scanString(decode: true)
    }

    /// Reads a non-negative integer that fits `Int`; nil (nothing consumed) when the value is not a number.
    /// Negative numbers, fractions (even `2.0`), exponents and overflow are refused as `invalidNumber`.
    mutating func readInteger(_ what: @autoclosure () -> String) throws(SafeTensorsError) -> Int? {
        skipWhitespace()
        guard let first = peek(), first == .minus || (first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9"))
        else { return nil }
        let start = position
        let range = try scanNumber()
        let literal = text(range)
        var value = 0
        for index in range {
            let byte = bytes[index]
            switch byte {
            case .minus:
                throw failure(.invalidNumber, "\(what()) (\(literal)) is negative", at: start)
            case UInt8(ascii: "."):
                throw failure(.invalidNumber, "\(what()) (\(literal)) is not an integer", at: start)
            case UInt8(ascii: "e"), UInt8(ascii: "E"):
                throw failure(.invalidNumber, "\(what()) (\(literal)) has an exponent", at: start)
            default:
                let (times10, o1) = value.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
                guard !o1, !o2 else {
                    throw failure(.invalidNumber, "\(what()) (\(literal)) does not fit a 64-bit integer", at: start)
                }
                value = sum
            }
        }
        return value
    }

    /// Skips any value (iteratively; the document is validated, so nesting is bounded) and returns its text's range.
    mutating func skipValue() throws(SafeTensorsError) -> Range<Int> {
        skipWhitespace()
        let start = position
        var depth = 0
        repeat {
            guard let byte = peek() else {
                throw failure(.invalidJSON, "\(textName) ends inside a value")
            }
            switch byte {
            case .quote:
                _ = try scanString(decode: false)
            case .openBrace, .openBracket:
                depth += 1
                position += 1
            case .closeBrace, .closeBracket:
                guard depth > 0 else {
                    throw failure(.invalidJSON, "unexpected byte 0x\(hex(byte)) where a value is expected")
                }
                depth -= 1
                position += 1
            case .minus, UInt8(ascii: "0")...UInt8(ascii: "9"):
                _ = try scanNumber()
            case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
                try scanLiteral()
            case .comma, .colon, .space, .tab, .lineFeed, .carriageReturn:
                guard depth > 0 else {
                    throw failure(.invalidJSON, "unexpected byte 0x\(hex(byte)) where a value is expected")
                }
                position += 1
            default:
                throw failure(.invalidJSON, "unexpected byte 0x\(hex(byte)) where a value is expected")
            }
        } while depth > 0
        return start..<position
    }
}

extension UInt8 {
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let lineFeed = UInt8(ascii: "\n")
    static let carriageReturn = UInt8(ascii: "\r")
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let comma = UInt8(ascii: ",")
    static let colon = UInt8(ascii: ":")
    static let minus = UInt8(ascii: "-")
    static let plus = UInt8(ascii: "+")
}

/// Two uppercase hex digits.
func hex(_ byte: UInt8) -> String {
    let digits = Array("0123456789ABCDEF".utf8)
    return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 0xF)]], as: UTF8.self)
}

/// Four uppercase hex digits.
func hex16(_ unit: UInt16) -> String {
    hex(UInt8(unit >> 8)) + hex(UInt8(unit & 0xFF))
}

/// A byte as itself when printable ASCII, else as 0xHH.
func printable(_ byte: UInt8) -> String {
    (0x21...0x7E).contains(byte) ? String(UnicodeScalar(byte)) : "0x\(hex(byte))"
}
