import SafeTensors
import Testing

private let indexName = "model.safetensors.index.json"

private func parseIndex(_ text: String) throws(SafeTensorsError) -> ShardIndex {
    try parseIndex(bytes: Array(text.utf8))
}

private func parseIndex(bytes: [UInt8]) throws(SafeTensorsError) -> ShardIndex {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
    defer { buffer.deallocate() }
    buffer.copyBytes(from: bytes)
    return try ShardIndex.parse(UnsafeRawBufferPointer(buffer), file: indexName)
}

/// Expects `text` to be refused with `kind`, naming the index file.
private func expectIndexRefusal(_ kind: SafeTensorsError.Kind, _ text: String,
                                sourceLocation: SourceLocation = #_sourceLocation) {
    do throws(SafeTensorsError) {
        let index = try parseIndex(text)
        Issue.record("accepted an index with \(index.weightMap.count) tensors", sourceLocation: sourceLocation)
    } catch {
        #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
        #expect(error.file == indexName, sourceLocation: sourceLocation)
        #expect(error.description.hasPrefix(indexName + ": "), sourceLocation: sourceLocation)
    }
}

private func index(weightMap: String) -> String {
    #"{"metadata": {"total_size": 16}, "weight_map": {\#(weightMap)}}"#
}

@Suite struct ShardIndexParsing {
    @Test func prettyIndexWithExtraMetadataParses() throws {
        let text = """
            {
              "metadata": {
                "total_size": 1234,
                "format": "pt",
                "extra": {"a": [1, 2]}
              },
              "weight_map": {
                "a.weight": "model-00001-of-00002.safetensors",
                "b.weight": "model-00002-of-00002.safetensors",
                "c.bias": "model-00001-of-00002.safetensors"
              }
            }

            """
        let index = try parseIndex(text)
        #expect(index.totalSize == 1234)
        #expect(index.metadata.map(\.key) == ["format", "extra"])
        #expect(index.metadata.map(\.value) == ["pt", #"{"a": [1, 2]}"#])
        #expect(index.weightMap.map(\.tensor) == ["a.weight", "b.weight", "c.bias"])
        #expect(index.shardFiles == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"])
    }

    @Test func encodeThenParseRoundTrips() throws {
        let weightMap = [(tensor: "z\"q", file: "b.safetensors"), (tensor: "é😀", file: "a.safetensors"),
                         (tensor: "line\nbreak", file: "b.safetensors")]
        let bytes = ShardIndex.encode(totalSize: 99, weightMap: weightMap)
        let parsed = try parseIndex(bytes: bytes)
        #expect(parsed == ShardIndex(totalSize: 99, metadata: [], weightMap: weightMap))
        #expect(parsed.shardFiles == ["b.safetensors", "a.safetensors"])
    }

    @Test func encodeIsPrettyAndStable() {
        let bytes = ShardIndex.encode(totalSize: 8, weightMap: [(tensor: "a", file: "m-1.safetensors"),
                                                                 (tensor: "b", file: "m-2.safetensors")])
        let expected = """
            {
              "metadata": {
                "total_size": 8
              },
              "weight_map": {
                "a": "m-1.safetensors",
                "b": "m-2.safetensors"
              }
            }

            """
        #expect(String(decoding: bytes, as: UTF8.self) == expected)
    }

    @Test func indexWithoutMetadataHasNoTotalSize() throws {
        let index = try parseIndex(#"{"weight_map": {}}"#)
        #expect(index.totalSize == nil)
        #expect(index.weightMap.isEmpty)
    }

    @Test(arguments: ["../model.safetensors", "/etc/passwd", "sub/model.safetensors", #"sub\\model.safetensors"#,
                      ".hidden.safetensors", "", "a..b.safetensors", #"nul\u0000.safetensors"#])
    func shardNamesOutsideTheFolderAreRefused(name: String) {
        expectIndexRefusal(.invalidShardPath, index(weightMap: #""a": "\#(name)""#))
    }

    @Test func duplicateTensorIsRefused() {
        expectIndexRefusal(.duplicateTensor, index(weightMap: #""a": "m.safetensors", "a": "n.safetensors""#))
    }

    @Test func missingWeightMapIsRefused() {
        expectIndexRefusal(.missingField, #"{"metadata": {"total_size": 16}}"#)
    }

    @Test func weightMapThatIsNotStringToStringIsRefused() {
        expectIndexRefusal(.invalidIndex, index(weightMap: #""a": 3"#))
        expectIndexRefusal(.invalidIndex, #"{"weight_map": ["a", "m.safetensors"]}"#)
    }

    @Test func badTotalSizeIsRefused() {
        expectIndexRefusal(.invalidIndex, #"{"metadata": {"total_size": "16"}, "weight_map": {}}"#)
        expectIndexRefusal(.invalidNumber, #"{"metadata": {"total_size": -16}, "weight_map": {}}"#)
    }

    @Test func duplicateTopLevelKeyIsRefused() {
        expectIndexRefusal(.duplicateKey, #"{"weight_map": {}, "weight_map": {}}"#)
    }

    @Test func textThatIsNotAJSONObjectIsRefused() {
        expectIndexRefusal(.invalidJSON, #"{"weight_map": {"#)
        expectIndexRefusal(.notAnObject, #"["weight_map"]"#)
        expectIndexRefusal(.trailingGarbage, #"{"weight_map": {}} x"#)
    }
}
