import Testing
import SafeTensors

@Suite struct JSONTextWriting {
    @Test func stringsEscapeQuotesBackslashesAndC0OnlyAsJSONRequires() {
        #expect(JSONText.quoted("a\"b\\c\n\r\t\u{0}\u{1F}") == #""a\"b\\c\u000a\u000d\u0009\u0000\u001f""#)
        let kept = "del\u{7F} sep\u{2028} c1\u{9B} é 模型 🤖"
        #expect(JSONText.quoted(kept) == "\"" + kept + "\"")
        var bytes: [UInt8] = [0x7B]
        JSONText.appendString("k\n", to: &bytes)
        #expect(bytes == Array(#"{"k\u000a""#.utf8))
    }

    @Test func numbersAreWholeOrThreeDecimalsAndNonFiniteIsNull() {
        #expect(JSONText.number(42) == "42" && JSONText.number(-3) == "-3" && JSONText.number(3.25) == "3.25")
        #expect(JSONText.number(1.23456) == "1.235" && JSONText.number(1e16) == "1e+16")
        #expect(JSONText.number(.nan) == "null" && JSONText.number(.infinity) == "null")
    }
}

@Suite struct MessageTextSanitizing {
    @Test func controlsAndSeparatorsAreEscapedAndTheRestKept() {
        #expect(MessageText.sanitized("a\nb\u{1B}[31m\u{7F}\u{85}\u{9B}\u{2028}\u{2029}\t") ==
            #"a\u{a}b\u{1b}[31m\u{7f}\u{85}\u{9b}\u{2028}\u{2029}\u{9}"#)
        #expect(MessageText.sanitized("ünïcödé 模型 🤖 \"q\" \\") == "ünïcödé 模型 🤖 \"q\" \\")
    }

    @Test func longTextIsCutAfterTheLimitUnlessThereIsNone() {
        let long = String(repeating: "x", count: 300)
        #expect(MessageText.sanitized(long) == String(repeating: "x", count: 200) + "...")
        #expect(MessageText.sanitized(String(repeating: "x", count: 200)) == String(repeating: "x", count: 200))
        #expect(MessageText.sanitized(long, limit: nil) == long)
    }

    @Test func errorMessagesUseTheRule() {
        let error = SafeTensorsError(.invalidEntry, file: "dir/new\nline\u{9B}", tensor: "t\u{2028}", "bad")
        #expect(error.description == #"dir/new\u{a}line\u{9b}: tensor 't\u{2028}': bad"#)
    }
}
