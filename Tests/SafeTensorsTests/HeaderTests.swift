import SafeTensors
import Testing

@Suite struct HeaderParsing {
    @Test func emptyHeaderIsAValidEmptyCheckpoint() throws {
        let header = try parse("{}      ", dataLength: 0)
        #expect(header.tensors.isEmpty)
        #expect(header.metadata.isEmpty)
        #expect(header.dataStart == 16)
        #expect(header.dataLength == 0)
    }

    @Test func streamParseTakesTheLastEndAsTheDataLength() throws {
        let json = #"{"b":\#(entry([2], 8, 16)),"a":\#(entry([2], 0, 8))}"#
        let header = try parse(json)
        #expect(header.dataLength == 16)
        #expect(header.dataStart == 8 + json.utf8.count)
        #expect(header.tensors.map(\.name) == ["b", "a"])
        #expect(header.tensorsByOffset.map(\.name) == ["a", "b"])
    }

    @Test func zeroSizeTensorsAndScalarsAreLegal() throws {
        let json = #"{"e":\#(entry([0], 0, 0)),"a":\#(entry([2], 0, 8)),"f":\#(entry("I8", [0, 3], 8, 8)),"#
            + #""s":\#(entry([], 8, 12))}"#
        let header = try parse(json, dataLength: 12)
        #expect(header.tensors.map(\.byteCount) == [0, 8, 0, 4])
        #expect(header.tensors[3].shape.isEmpty)
        #expect(header.tensors[3].elementCount == 1)
        #expect(header.tensorsByOffset.map(\.name) == ["e", "a", "f", "s"])
    }

    @Test func subByteDTypesNeedWholeBytes() throws {
        let header = try parse(#"{"a":\#(entry("F4", [4], 0, 2)),"b":\#(entry("F6_E2M3", [4], 2, 5))}"#, dataLength: 5)
        #expect(header.tensors.map(\.byteCount) == [2, 3])
    }

    @Test func escapesInNamesAreDecoded() throws {
        let json = #"{"\u00e9\ud83d\ude00\n\"\\\/\t":\#(entry([1], 0, 4))}"#
        let header = try parse(json, dataLength: 4)
        #expect(header.tensors.first?.name == "é😀\n\"\\/\t")
    }

    @Test func whitespaceBetweenTokensAndLeadingSpacesAreAccepted() throws {
        let json = "   { \"__metadata__\" : { \"format\" : \"pt\" } ,\n\t\"a\" : {\r\n \"dtype\" : \"F32\" , "
            + "\"shape\" : [ 2 ] , \"data_offsets\" : [ 0 , 8 ] }\n}  "
        let header = try parse(json, dataLength: 8)
        #expect(header.tensors.first?.dataRange == 0..<8)
        #expect(header.metadata.first?.value == "pt")
    }

    @Test func metadataKeepsFileOrder() throws {
        let header = try parse(#"{"__metadata__":{"z":"1","a":"2","m":""}}"#, dataLength: 0)
        #expect(header.metadata.map(\.key) == ["z", "a", "m"])
        #expect(header.metadata.map(\.value) == ["1", "2", ""])
    }

    @Test func headerLengthIsReadLittleEndian() throws {
        let prefix: [UInt8] = [0x10, 0x02, 0, 0, 0, 0, 0, 0]
        let length = try prefix.withUnsafeBytes { buffer in
            try Header.headerLength(prefix: buffer, fileSize: nil, file: "f")
        }
        #expect(length == 0x210)
    }

    @Test func headerLengthIsCheckedAgainstTheFileSize() {
        let prefix = lengthPrefix(0x210)
        prefix.withUnsafeBytes { buffer in
            #expect(throws: SafeTensorsError.self) {
                try Header.headerLength(prefix: buffer, fileSize: 0x210 + 7, file: "f")
            }
            #expect(throws: Never.self) { try Header.headerLength(prefix: buffer, fileSize: 0x210 + 8, file: "f") }
        }
    }

    @Test func parseRefusesAHeaderOverTheLimitWithoutAFile() {
        var limits = HeaderLimits()
        limits.maxHeaderBytes = 4
        #expect(parseError("{}      ", limits: limits)?.kind == .headerTooLarge)
        #expect(parseError("")?.kind == .headerLengthZero)
    }

    @Test func errorsNameTheTensorSafely() throws {
        let json = #"{"a\nb":\#(entry([1], 0, 4)),"a\nb":\#(entry([1], 4, 8))}"#
        let error = try #require(parseError(json, dataLength: 8))
        #expect(error.kind == .duplicateTensor)
        #expect(error.tensor == "a\nb")
        #expect(error.description == #"mem.safetensors: tensor 'a\u{a}b': tensor name appears twice"#)
    }

    @Test func syntaxErrorsWinOverSchemaErrors() {
        // The unknown dtype comes first in the text, but the document is not JSON at all.
        #expect(parseError(#"{"a":\#(entry("F33", [1], 0, 4)), "b": tru}"#)?.kind == .invalidJSON)
    }

    @Test func manyTensorsParseWithoutQuadraticWork() throws {
        let count = 100_000
        let tensors = (0..<count).map { (name: "layer.\($0).weight", dtype: DType.BF16, shape: [4]) }
        let encoded = HeaderWriter.encode(metadata: [], tensors: tensors)
        let header = try encoded.bytes[8...].withUnsafeBytes { json in
            try Header.parse(json: json, dataLength: count * 8, file: "big")
        }
        #expect(header.tensors.count == count)
        #expect(header.tensors.last?.dataRange == (count - 1) * 8..<count * 8)
    }
}

@Suite struct HeaderWriting {
    static let oddNames = [
        "wéight-😀", "a\"b", "back\\slash", "new\nline", "ctl\u{1}\u{1F}\u{7F}", "", "tab\t", "🧪 μ", "__metadata",
    ]

    @Test func roundTripKeepsNamesShapesAndMetadata() throws {
        let dtypes: [DType] = [.F32, .BF16, .I8, .F4, .F6_E2M3, .U8, .F64, .C64, .BOOL]
        let shapes: [[Int]] = [[2, 3], [], [0, 5], [4], [4], [0], [1, 1, 1], [3], [7]]
        let tensors = Self.oddNames.indices.map { (name: Self.oddNames[$0], dtype: dtypes[$0], shape: shapes[$0]) }
        let metadata = [(key: "format", value: "pt"), (key: "quote\"", value: "line\nbreak"), (key: "ünï", value: "😀")]
        let (bytes, infos) = HeaderWriter.encode(metadata: metadata, tensors: tensors)
        #expect(infos.map(\.byteCount) == [24, 2, 0, 2, 3, 0, 8, 24, 7])
        let dataLength = infos.last!.dataRange.upperBound
        let header = try bytes[8...].withUnsafeBytes { json in
            try Header.parse(json: json, dataLength: dataLength, file: "w")
        }
        #expect(header.tensors == infos)
        #expect(header.metadata.map(\.key) == metadata.map(\.key))
        #expect(header.metadata.map(\.value) == metadata.map(\.value))
        #expect(header.dataStart == bytes.count)
    }

    @Test func outputMatchesTheReferenceLayout() {
        let (bytes, _) = HeaderWriter.encode(metadata: [(key: "format", value: "pt")],
                                             tensors: [(name: "a", dtype: .F32, shape: [2]),
                                                       (name: "b", dtype: .I8, shape: [])])
        let json = #"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
            + #""b":{"dtype":"I8","shape":[],"data_offsets":[8,9]}}"#
        let padded = json + String(repeating: " ", count: (8 - json.utf8.count % 8) % 8)
        #expect(bytes == lengthPrefix(UInt64(padded.utf8.count)) + Array(padded.utf8))
    }

    @Test func controlCharactersAreEscapedAsUnicode() {
        let (bytes, _) = HeaderWriter.encode(metadata: [], tensors: [(name: "\n\u{1F}\"\\é", dtype: .U8, shape: [])])
        let json = String(decoding: bytes[8...], as: UTF8.self)
        #expect(json.hasPrefix(#"{"\u000a\u001f\"\\é":"#))
    }

    @Test(arguments: 0...17)
    func paddingIsSpacesToAMultipleOfEight(nameLength: Int) {
        let name = String(repeating: "n", count: nameLength)
        let (bytes, _) = HeaderWriter.encode(metadata: [], tensors: [(name: name, dtype: .F16, shape: [3])])
        let json = Array(bytes[8...])
        #expect(json.count % 8 == 0)
        #expect(Array(bytes[..<8]) == lengthPrefix(UInt64(json.count)))
        #expect(json.first == UInt8(ascii: "{"))
        let close = json.lastIndex(of: UInt8(ascii: "}"))!
        #expect(json[(close + 1)...].allSatisfy { $0 == UInt8(ascii: " ") })
        #expect(json.count - close - 1 < 8)
    }

    @Test func emptyMetadataIsLeftOut() {
        let (bytes, _) = HeaderWriter.encode(metadata: [], tensors: [])
        #expect(bytes == lengthPrefix(8) + Array("{}      ".utf8))
    }
}
