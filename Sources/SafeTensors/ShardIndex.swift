/// `model.safetensors.index.json` of a sharded checkpoint:
/// {"metadata": {"total_size": N, ...any}, "weight_map": {tensor: "file.safetensors"}}.
public struct ShardIndex: Sendable, Hashable {
    /// `metadata.total_size`: the sum of the tensors' bytes (not of the files).
    public var totalSize: Int?
    /// The other `metadata` entries in file order: string values decoded, any other value as its raw JSON text
    /// (so `{"n": 3}` gives `("n", "3")` and `{"s": "3"}` gives `("s", "3")` too).
    public var metadata: [(key: String, value: String)]
    /// Tensor to shard file name, in file order.
    public var weightMap: [(tensor: String, file: String)]

    public init(totalSize: Int?, metadata: [(key: String, value: String)],
                weightMap: [(tensor: String, file: String)]) {
        self.totalSize = totalSize
        self.metadata = metadata
        self.weightMap = weightMap
    }

    /// Shard file names, distinct, in first-appearance order.
    public var shardFiles: [String] {
        var seen = Set<String>()
        return weightMap.compactMap { seen.insert($0.file).inserted ? $0.file : nil }
    }

    /// Refuses: not JSON/object, weight_map missing or not string->string, duplicate tensors, file names that are
    /// absolute, contain "/" or "\\" or "..", are empty, or start with "." (shards live in the same folder).
    ///
    /// Unlike a safetensors header, the text may be padded with any JSON whitespace (writers end it with a
    /// newline). Top-level keys other than metadata and weight_map are ignored; duplicate keys are refused.
    /// `metadata.total_size`, when present, must be a non-negative integer. Nesting is capped like a header's
    /// (`HeaderLimits().maxNestingDepth`).
    public static func parse(_ bytes: UnsafeRawBufferPointer, file: String) throws(SafeTensorsError) -> ShardIndex {
        var scanner = JSONScanner(bytes, file: file, textName: "index")
        try scanner.validateDocument(maxDepth: HeaderLimits().maxNestingDepth, whitespacePadding: true)
        scanner.rewindToObject()
        _ = scanner.enterObject()
        var index = ShardIndex(totalSize: nil, metadata: [], weightMap: [])
        var keys = Set<String>()
        var sawWeightMap = false
        var isFirst = true
        while let key = try scanner.nextKey(isFirst: &isFirst) {
            guard keys.insert(key).inserted else {
                throw SafeTensorsError(.duplicateKey, file: file, "key \(SafeTensorsError.quoted(key)) appears twice")
            }
            switch key {
            case "metadata":
                try index.parseMetadata(&scanner)
            case "weight_map":
                sawWeightMap = true
                try index.parseWeightMap(&scanner)
            default:
                _ = try scanner.skipValue()
            }
        }
        guard sawWeightMap else {
            throw SafeTensorsError(.missingField, file: file, "index has no weight_map")
        }
        return index
    }

    private mutating func parseMetadata(_ scanner: inout JSONScanner) throws(SafeTensorsError) {
        let file = scanner.file
        guard scanner.enterObject() else {
            throw SafeTensorsError(.invalidIndex, file: file,
                                   "metadata is \(scanner.describeNextValue()), not an object")
        }
        var keys = Set<String>()
        var isFirst = true
        while let key = try scanner.nextKey(isFirst: &isFirst) {
            guard keys.insert(key).inserted else {
                throw SafeTensorsError(.duplicateKey, file: file,
                                       "metadata key \(SafeTensorsError.quoted(key)) appears twice")
            }
            if key == "total_size" {
                guard let size = try scanner.readInteger("total_size") else {
                    throw SafeTensorsError(.invalidIndex, file: file,
                                           "total_size is \(scanner.describeNextValue()), not an integer")
                }
                totalSize = size
            } else if let text = try scanner.readString() {
                metadata.append((key, text))
            } else {
                metadata.append((key, scanner.text(try scanner.skipValue(), limit: nil)))
            }
        }
    }

    private mutating func parseWeightMap(_ scanner: inout JSONScanner) throws(SafeTensorsError) {
        let file = scanner.file
        guard scanner.enterObject() else {
            throw SafeTensorsError(.invalidIndex, file: file,
                                   "weight_map is \(scanner.describeNextValue()), not an object")
        }
        var tensors = Set<String>()
        var isFirst = true
        while let tensor = try scanner.nextKey(isFirst: &isFirst) {
            guard tensors.insert(tensor).inserted else {
                throw SafeTensorsError(.duplicateTensor, file: file, tensor: tensor, "appears twice in weight_map")
            }
            guard let shard = try scanner.readString() else {
                throw SafeTensorsError(.invalidIndex, file: file, tensor: tensor,
                                       "weight_map value is \(scanner.describeNextValue()), not a file name")
            }
            if let problem = Self.problem(withShardName: shard) {
                throw SafeTensorsError(.invalidShardPath, file: file, tensor: tensor,
                                       "shard file name \(SafeTensorsError.quoted(shard)) \(problem)")
            }
            weightMap.append((tensor, shard))
        }
    }

    /// Why `name` is not a plain file name in the index's own folder, or nil when it is.
    static func problem(withShardName name: String) -> String? {
        if name.isEmpty {
            return "is empty"
        }
        if name.hasPrefix("/") {
            return "is an absolute path"
        }
        if name.contains("/") || name.contains("\\") {
            return "contains a path separator"
        }
        if name.contains("..") {
            return "contains '..'"
        }
        if name.hasPrefix(".") {
            return "starts with '.'"
        }
        if name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            return "contains a control character"
        }
        return nil
    }

    /// Serializes an index (weight_map in the given order, metadata.total_size) — deterministic, pretty enough:
    /// two-space indentation, one entry per line, ending with a newline.
    public static func encode(totalSize: Int, weightMap: [(tensor: String, file: String)]) -> [UInt8] {
        var json: [UInt8] = Array("{\n  \"metadata\": {\n    \"total_size\": \(totalSize)\n  },\n".utf8)
        json.append(contentsOf: "  \"weight_map\": {".utf8)
        for (index, entry) in weightMap.enumerated() {
            json.append(contentsOf: (index == 0 ? "\n    " : ",\n    ").utf8)
            JSONText.appendString(entry.tensor, to: &json)
            json.append(contentsOf: ": ".utf8)
            JSONText.appendString(entry.file, to: &json)
        }
        json.append(contentsOf: (weightMap.isEmpty ? "}\n}\n" : "\n  }\n}\n").utf8)
        return json
    }

    public static func == (a: ShardIndex, b: ShardIndex) -> Bool {
        a.totalSize == b.totalSize
            && a.metadata.map(\.key) == b.metadata.map(\.key) && a.metadata.map(\.value) == b.metadata.map(\.value)
            && a.weightMap.map(\.tensor) == b.weightMap.map(\.tensor)
            && a.weightMap.map(\.file) == b.weightMap.map(\.file)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(totalSize)
        for entry in weightMap {
            hasher.combine(entry.tensor)
            hasher.combine(entry.file)
        }
    }
}
