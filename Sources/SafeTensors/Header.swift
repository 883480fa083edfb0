/// One tensor entry of a safetensors header, validated.
public struct TensorInfo: Sendable, Hashable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    /// Byte range relative to the start of the data buffer (after the 8-byte length and the JSON).
    public var dataRange: Range<Int>

    public init(name: String, dtype: DType, shape: [Int], dataRange: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.dataRange = dataRange
    }

    /// Product of the shape (1 for a scalar of rank 0).
    public var elementCount: Int { shape.reduce(1, *) }
    public var byteCount: Int { dataRange.count }
}

/// Caps on what a header may make a reader allocate. Defaults follow the reference reader
/// (100 MB header) plus quantd's own bounds.
public struct HeaderLimits: Sendable, Hashable, Codable {
    public var maxHeaderBytes: Int = 100_000_000
    public var maxTensors: Int = 1_000_000
    public var maxRank: Int = 16
    public var maxNestingDepth: Int = 8
    public init() {}
}

/// A parsed and validated safetensors header.
public struct Header: Sendable, Hashable {
    /// `__metadata__` entries in the order they appear in the file.
    public var metadata: [(key: String, value: String)]
    /// Tensors in the order they appear in the JSON.
    public var tensors: [TensorInfo]
    /// Offset of the data buffer in the file: 8 + header length.
    public var dataStart: Int
    /// Length of the data buffer (the last tensor's end).
    public var dataLength: Int

    /// Builds a header from parts already validated (the writer's output, or a test's).
    public init(metadata: [(key: String, value: String)], tensors: [TensorInfo], dataStart: Int, dataLength: Int) {
        self.metadata = metadata
        self.tensors = tensors
        self.dataStart = dataStart
        self.dataLength = dataLength
    }

    /// Tensors sorted by data offset (the order of the bytes in the file; zero-size tensors before their neighbour).
    public var tensorsByOffset: [TensorInfo] {
        tensors.sorted {
            ($0.dataRange.lowerBound, $0.dataRange.upperBound) < ($1.dataRange.lowerBound, $1.dataRange.upperBound)
        }
    }

    public static func == (a: Header, b: Header) -> Bool {
        a.tensors == b.tensors && a.dataStart == b.dataStart && a.dataLength == b.dataLength
            && a.metadata.map(\.key) == b.metadata.map(\.key) && a.metadata.map(\.value) == b.metadata.map(\.value)
    }
    public func hash(into h: inout Hasher) { h.combine(tensors); h.combine(dataStart) }
}
