import SafeTensors
import Testing
import TestSupport

/// Each malformed file is written to disk and opened: the open must fail with the right kind, naming the file.
@Suite struct LengthPrefixRefusals {
    @Test func fileShorterThanThePrefixIsRefused() {
        expectRefusal(.fileTooSmall, [1, 0, 0, 0, 0])
    }

    @Test func emptyFileIsRefused() {
        expectRefusal(.fileTooSmall, [])
    }

    @Test func zeroHeaderLengthIsRefused() {
        expectRefusal(.headerLengthZero, lengthPrefix(0) + Array("{}".utf8))
    }

    @Test func hugeHeaderLengthIsRefusedBeforeAnyAllocation() {
        let error = expectRefusal(.headerTooLarge, lengthPrefix(1 << 63) + Array("{}      ".utf8))
        #expect(error?.detail.contains("9223372036854775808") == true)
    }

    @Test func headerLengthPastTheEndOfTheFileIsRefused() {
        expectRefusal(.headerPastEnd, lengthPrefix(100) + Array("{}      ".utf8))
    }

    @Test func headerOverASmallLimitIsRefused() {
        var limits = HeaderLimits()
        limits.maxHeaderBytes = 16
        expectRefusal(.headerTooLarge, safetensors(#"{"a":\#(entry([1], 0, 4))}"#, data: 4), limits: limits)
    }
}

@Suite struct JSONRefusals {
    @Test func headerThatIsNotUTF8IsRefused() {
        let json = Array(#"{"a"#.utf8) + [0xFF] + Array(#"":\#(entry([1], 0, 4))}"#.utf8)
        expectRefusal(.notUTF8, safetensors(bytes: json, data: 4))
    }

    @Test func overlongUTF8IsRefused() {
        // 0xC0 0xAF is an overlong '/', a classic way past naive path checks.
        let json = Array(#"{"__metadata__":{"a":""#.utf8) + [0xC0, 0xAF] + Array(#""}}"#.utf8)
        expectRefusal(.notUTF8, safetensors(bytes: json))
    }

    @Test func headerThatIsNotJSONIsRefused() {
        expectRefusal(.invalidJSON, safetensors(#"{"a" 1}"#))
    }

    @Test func topLevelArrayIsRefused() {
        expectRefusal(.notAnObject, safetensors("[1, 2]"))
    }

    @Test func trailingGarbageAfterTheObjectIsRefused() {
        expectRefusal(.trailingGarbage, safetensors("{}x", pad: false))
    }

    @Test func secondObjectAfterTheFirstIsRefused() {
        expectRefusal(.trailingGarbage, safetensors("{}  {}  "))
    }

    @Test func nulPaddingIsRefused() {
        expectRefusal(.badPadding, safetensors(bytes: Array("{}".utf8) + [0, 0, 0, 0, 0, 0]))
    }

    @Test func tabPaddingIsRefused() {
        expectRefusal(.badPadding, safetensors("{}\t\t\t\t\t\t", pad: false))
    }

    @Test func leadingNewlineIsRefused() {
        expectRefusal(.badPadding, safetensors("\n{}     ", pad: false))
    }

    @Test func deepNestingFailsFastWithoutRecursion() {
        let depth = 10_000
        let json = #"{"a":"# + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}"
        let error = expectRefusal(.nestingTooDeep, safetensors(json))
        #expect(error?.detail.contains("deeper than 8") == true)
    }

    @Test func deepTopLevelArrayIsRefusedAsNotAnObject() {
        let depth = 10_000
        let json = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        expectRefusal(.notAnObject, safetensors(json))
    }

    @Test func deepNestingOfObjectsInMetadataIsRefused() {
        let json = #"{"__metadata__":"# + String(repeating: #"{"a":"#, count: 50) + "1"
            + String(repeating: "}", count: 51)
        expectRefusal(.nestingTooDeep, safetensors(json))
    }

    @Test func unterminatedStringIsRefused() {
        expectRefusal(.unterminatedString, safetensors(#"{"abc"#, pad: false))
    }

    @Test func unknownEscapeIsRefused() {
        expectRefusal(.invalidEscape, safetensors(#"{"__metadata__":{"a":"\q"}}"#))
    }

    @Test func shortUnicodeEscapeIsRefused() {
        expectRefusal(.invalidEscape, safetensors(#"{"__metadata__":{"a":"\u12G4"}}"#))
    }

    @Test func loneHighSurrogateIsRefused() {
        expectRefusal(.invalidSurrogate, safetensors(#"{"__metadata__":{"a":"\ud800x"}}"#))
    }

    @Test func loneLowSurrogateIsRefused() {
        expectRefusal(.invalidSurrogate, safetensors(#"{"__metadata__":{"a":"\udc00"}}"#))
    }

    @Test func highSurrogateFollowedByAnotherHighIsRefused() {
        expectRefusal(.invalidSurrogate, safetensors(#"{"__metadata__":{"a":"\ud800\ud800"}}"#))
    }

    @Test func rawControlCharacterInAStringIsRefused() {
        expectRefusal(.invalidString, safetensors("{\"__metadata__\":{\"a\":\"x\ny\"}}"))
    }
}

@Suite struct EntryRefusals {
    @Test func unknownDTypeIsRefused() {
        let error = expectRefusal(.unknownDType, safetensors(#"{"w":\#(entry("F33", [1], 0, 4))}"#, data: 4))
        #expect(error?.tensor == "w")
        #expect(error?.description.contains("tensor 'w'") == true)
    }

    @Test func dtypeThatIsNotAStringIsRefused() {
        expectRefusal(.invalidEntry, safetensors(#"{"w":{"dtype":32,"shape":[1],"data_offsets":[0,4]}}"#, data: 4))
    }

    @Test func entryThatIsNotAnObjectIsRefused() {
        expectRefusal(.invalidEntry, safetensors(#"{"w":[1,2]}"#))
    }

    @Test func negativeDimensionIsRefused() {
        expectRefusal(.invalidNumber, safetensors(#"{"w":\#(entry([-2], 0, 0))}"#))
    }

    @Test func floatDimensionIsRefusedEvenWhenWhole() {
        let error = expectRefusal(.invalidNumber,
                                  safetensors(#"{"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}"#, data: 8))
        #expect(error?.detail.contains("2.0") == true)
    }

    @Test func exponentInADimensionIsRefused() {
        expectRefusal(.invalidNumber, safetensors(#"{"w":{"dtype":"F32","shape":[2e0],"data_offsets":[0,8]}}"#))
    }

    @Test func leadingZeroInADimensionIsRefused() {
        expectRefusal(.invalidNumber, safetensors(#"{"w":{"dtype":"F32","shape":[02],"data_offsets":[0,8]}}"#))
    }

    @Test func dimensionThatOverflowsIntIsRefused() {
        let json = #"{"w":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}}"#
        expectRefusal(.invalidNumber, safetensors(json, data: 4))
    }

    @Test func stringDimensionIsRefused() {
        expectRefusal(.invalidShape, safetensors(#"{"w":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}"#))
    }

    @Test func shapeThatIsNotAnArrayIsRefused() {
        expectRefusal(.invalidShape, safetensors(#"{"w":{"dtype":"F32","shape":2,"data_offsets":[0,8]}}"#))
    }

    @Test func elementCountOverflowIsRefused() {
        expectRefusal(.sizeOverflow, safetensors(#"{"w":\#(entry([1 << 62, 4], 0, 16))}"#, data: 16))
    }

    @Test func bitCountOverflowIsRefused() {
        expectRefusal(.sizeOverflow, safetensors(#"{"w":\#(entry([1 << 61], 0, 16))}"#, data: 16))
    }

    @Test func sizeThatIsNotWholeBytesIsRefused() {
        expectRefusal(.fractionalBytes, safetensors(#"{"w":\#(entry("F4", [3], 0, 2))}"#, data: 2))
    }

    @Test func rankOverTheLimitIsRefused() {
        let shape = [Int](repeating: 1, count: 17)
        let error = expectRefusal(.rankTooLarge, safetensors(#"{"w":\#(entry(shape, 0, 4))}"#, data: 4))
        #expect(error?.detail.contains("16") == true)
    }

    @Test func reversedOffsetsAreRefused() {
        expectRefusal(.offsetsReversed, safetensors(#"{"w":\#(entry("U8", [0], 8, 0))}"#, data: 8))
    }

    @Test func offsetsThatAreNotAPairAreRefused() {
        expectRefusal(.invalidOffsets, safetensors(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#))
        expectRefusal(.invalidOffsets, safetensors(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}"#))
        expectRefusal(.invalidOffsets, safetensors(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":"0-4"}}"#))
    }

    @Test func sizeMismatchIsRefusedWithTheNumbers() {
        let error = expectRefusal(.sizeMismatch, safetensors(#"{"w":\#(entry([2, 3], 0, 12))}"#, data: 12))
        #expect(error?.detail == "data_offsets [0, 12] hold 12 bytes but shape [2, 3] of F32 needs 24")
        #expect(error?.description.hasSuffix(": tensor 'w': " + (error?.detail ?? "")) == true)
    }

    @Test func duplicateTensorNamesAreRefused() {
        let error = expectRefusal(.duplicateTensor,
                                  safetensors(#"{"w":\#(entry([1], 0, 4)),"w":\#(entry([1], 4, 8))}"#, data: 8))
        #expect(error?.tensor == "w")
    }

    @Test func duplicateTensorNamesSpelledWithEscapesAreRefused() {
        expectRefusal(.duplicateTensor,
                      safetensors(#"{"w":\#(entry([1], 0, 4)),"\u0077":\#(entry([1], 4, 8))}"#, data: 8))
    }

    @Test func duplicateKeyInsideAnEntryIsRefused() {
        let json = #"{"w":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        expectRefusal(.duplicateKey, safetensors(json, data: 4))
    }

    @Test func unknownKeyInsideAnEntryIsRefused() {
        let json = #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"offset":0}}"#
        expectRefusal(.unknownKey, safetensors(json, data: 4))
    }

    @Test func missingFieldIsRefused() {
        let error = expectRefusal(.missingField, safetensors(#"{"w":{"dtype":"F32","data_offsets":[0,4]}}"#, data: 4))
        #expect(error?.detail.contains("shape") == true)
    }

    @Test func tooManyTensorsAreRefused() {
        var limits = HeaderLimits()
        limits.maxTensors = 2
        let json = #"{"a":\#(entry([1], 0, 4)),"b":\#(entry([1], 4, 8)),"c":\#(entry([1], 8, 12))}"#
        expectRefusal(.tooManyTensors, safetensors(json, data: 12), limits: limits)
    }
}

@Suite struct MetadataRefusals {
    @Test func nonStringMetadataValueIsRefused() {
        expectRefusal(.invalidMetadata, safetensors(#"{"__metadata__":{"format":1}}"#))
    }

    @Test func nestedMetadataValueIsRefused() {
        expectRefusal(.invalidMetadata, safetensors(#"{"__metadata__":{"format":{"a":"b"}}}"#))
    }

    @Test func metadataThatIsNotAnObjectIsRefused() {
        expectRefusal(.invalidMetadata, safetensors(#"{"__metadata__":"pt"}"#))
    }

    @Test func duplicateMetadataKeyIsRefused() {
        expectRefusal(.duplicateKey, safetensors(#"{"__metadata__":{"a":"1","a":"2"}}"#))
    }

    @Test func secondMetadataObjectIsRefused() {
        expectRefusal(.duplicateKey, safetensors(#"{"__metadata__":{},"__metadata__":{}}"#))
    }
}

@Suite struct LayoutRefusals {
    @Test func overlappingTensorsAreRefused() {
        let json = #"{"a":\#(entry([2], 0, 8)),"b":\#(entry([2], 4, 12))}"#
        let error = expectRefusal(.overlap, safetensors(json, data: 12))
        #expect(error?.tensor == "b")
    }

    @Test func gapBetweenTensorsIsRefused() {
        let json = #"{"a":\#(entry([2], 0, 8)),"b":\#(entry([2], 12, 20))}"#
        let error = expectRefusal(.gap, safetensors(json, data: 20))
        #expect(error?.detail.contains("4 bytes") == true)
    }

    @Test func firstTensorNotAtZeroIsRefused() {
        expectRefusal(.firstNotAtZero, safetensors(#"{"a":\#(entry([2], 8, 16))}"#, data: 16))
    }

    @Test func zeroSizeTensorPastTheEndIsAGap() {
        let json = #"{"a":\#(entry([2], 0, 8)),"z":\#(entry([0], 100, 100))}"#
        expectRefusal(.gap, safetensors(json, data: 8))
    }

    @Test func zeroSizeTensorInsideAnotherIsAnOverlap() {
        let json = #"{"a":\#(entry([2], 0, 8)),"z":\#(entry([0], 4, 4))}"#
        expectRefusal(.overlap, safetensors(json, data: 8))
    }

    @Test func dataShorterThanTheTensorsIsRefused() {
        let error = expectRefusal(.truncatedData, safetensors(#"{"a":\#(entry([4], 0, 16))}"#, data: 10))
        #expect(error?.detail.contains("10") == true)
    }

    @Test func offsetsFarPastTheEndOfTheFileAreRefused() {
        let huge = Int.max / 8
        let json = #"{"a":\#(entry("U8", [huge], 0, huge))}"#
        expectRefusal(.truncatedData, safetensors(json, data: 8))
    }

    @Test func bytesAfterTheLastTensorAreRefused() {
        expectRefusal(.trailingBytes, safetensors(#"{"a":\#(entry([2], 0, 8))}"#, data: 9))
    }
}

@Suite struct FileRefusals {
    @Test func fifoIsRefusedWithoutBlocking() throws {
        let folder = TempDir("safetensors-tests")
        defer { folder.remove() }
        expectRefusal(.notRegularFile, path: try folder.makeFIFO("model.safetensors"))
    }

    @Test func symlinkIsNotFollowed() throws {
        let folder = TempDir("safetensors-tests")
        defer { folder.remove() }
        let target = try folder.write(safetensors(#"{"a":\#(entry([1], 0, 4))}"#, data: 4), as: "real.safetensors")
        #expect(throws: Never.self) { try SafeTensorsFile(path: target) }
        let error = expectRefusal(.notRegularFile, path: try folder.makeSymlink("link.safetensors", to: target))
        #expect(error?.errno != nil)
    }

    @Test func folderIsRefused() throws {
        let folder = TempDir("safetensors-tests")
        defer { folder.remove() }
        expectRefusal(.notRegularFile, path: try folder.makeFolder("model.safetensors"))
    }

    @Test func missingFileIsNotFound() {
        let folder = TempDir("safetensors-tests")
        defer { folder.remove() }
        let error = expectRefusal(.notFound, path: folder.path + "/absent.safetensors")
        #expect(error?.errno == 2)
    }

    @Test func readOutsideTheDataBufferIsRefused() throws {
        let folder = TempDir("safetensors-tests")
        defer { folder.remove() }
        let path = try folder.write(safetensors(#"{"a":\#(entry([2], 0, 8))}"#, data: 8), as: "m.safetensors")
        let file = try SafeTensorsFile(path: path)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 8)
        defer { buffer.deallocate() }
        #expect(throws: SafeTensorsError.self) { try file.read(dataRange: 4..<12, into: buffer) }
        #expect(throws: SafeTensorsError.self) { try file.read(absoluteOffset: file.fileSize - 4, into: buffer) }
        #expect(throws: SafeTensorsError.self) { try file.read(absoluteOffset: -1, into: buffer) }
        do {
            try file.read(dataRange: 4..<12, into: buffer)
        } catch {
            #expect(error.kind == .outOfBounds)
            #expect(error.file == path)
        }
    }
}
