import QuantSystem
import SafeTensors
import SystemPackage

/// A safetensors file built in memory: tensors with their raw little-endian bytes.
public struct Checkpoint {
    public struct Entry {
        public var name: String
        public var dtype: DType
        public var shape: [Int]
        public var bytes: [UInt8]
    }

    public var metadata: [(key: String, value: String)] = [("format", "pt")]
    public var entries: [Entry] = []

    public init() {}

    /// F32 tensors of seeded random weights (`SeededRandom.weight`), in the order given.
    public static func random(_ tensors: [(name: String, shape: [Int])], seed: UInt64) -> Checkpoint {
        var rng = SeededRandom(seed: seed)
        var c = Checkpoint()
        for tensor in tensors { c.addRandom(tensor.name, shape: tensor.shape, rng: &rng) }
        return c
    }

    /// F32 tensors of seeded values uniform in [-1, 1), in the order given: one draw a value, quick to make in bulk
    /// (tens of MB for the daemon's jobs, whose numbers do not matter).
    public static func uniform(_ tensors: [(name: String, shape: [Int])], seed: UInt64) -> Checkpoint {
        var rng = SeededRandom(seed: seed)
        var c = Checkpoint()
        for tensor in tensors {
            let count = tensor.shape.reduce(1, *)
            var bytes = [UInt8](repeating: 0, count: 4 * count)
            bytes.withUnsafeMutableBytes { raw in
                for i in 0..<count {
                    // The draw's top 24 bits as a signed fraction, which a Float holds exactly.
                    let value = Float(Int32(truncatingIfNeeded: rng.next() >> 40) - (1 << 23)) / Float(1 << 23)
                    raw.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
                }
            }
            c.add(tensor.name, .F32, shape: tensor.shape, bytes: bytes)
        }
        return c
    }

    /// `count` F32 tensors `layer0.weight`, `layer1.weight`, ... of `rows` x `cols` uniform values: a small
    /// checkpoint for a job whose numbers do not matter.
    public static func layers(_ count: Int = 2, rows: Int = 64, cols: Int = 64, seed: UInt64) -> Checkpoint {
        uniform((0..<count).map { ("layer\($0).weight", [rows, cols]) }, seed: seed)
    }

    public mutating func add(_ name: String, _ dtype: DType = .F32, shape: [Int], values: [Float]) {
        var bytes: [UInt8] = []
        for v in values {
            switch dtype {
            case .F32: withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 }
            case .F16: withUnsafeBytes(of: Float16(v).bitPattern.littleEndian) { bytes += $0 }
            case .BF16: withUnsafeBytes(of: Self.bfloat16(v).littleEndian) { bytes += $0 }
            case .F64: withUnsafeBytes(of: Double(v).bitPattern.littleEndian) { bytes += $0 }
            default: preconditionFailure("add(values:) takes float dtypes")
            }
        }
        entries.append(Entry(name: name, dtype: dtype, shape: shape, bytes: bytes))
    }

    public mutating func add(_ name: String, _ dtype: DType, shape: [Int], bytes: [UInt8]) {
        entries.append(Entry(name: name, dtype: dtype, shape: shape, bytes: bytes))
    }

    /// Adds a float tensor of random weights.
    public mutating func addRandom(_ name: String, _ dtype: DType = .F32, shape: [Int], rng: inout SeededRandom) {
        let n = shape.reduce(1, *)
        add(name, dtype, shape: shape, values: (0..<n).map { _ in rng.weight() })
    }

    /// Round to nearest even bfloat16.
    public static func bfloat16(_ v: Float) -> UInt16 {
        let bits = v.bitPattern
        if v.isNaN { return UInt16(bits >> 16) | 0x40 }
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(rounded >> 16)
    }

    public var bytes: [UInt8] {
        let (header, _) = HeaderWriter.encode(metadata: metadata,
                                              tensors: entries.map { ($0.name, $0.dtype, $0.shape) })
        return header + entries.flatMap(\.bytes)
    }

    public func write(to path: String) throws {
        try TempDir.write(bytes, to: path)
    }
}

/// A sharded checkpoint: its shard files and `model.safetensors.index.json`, which maps each tensor to its shard.
public struct ShardedCheckpoint {
    public var shards: [(file: String, checkpoint: Checkpoint)] = []

    public init() {}

    public mutating func add(_ file: String, _ checkpoint: Checkpoint) {
        shards.append((file, checkpoint))
    }

    /// The index: every tensor of every shard in order, `total_size` the shards' data bytes.
    public var index: [UInt8] {
        let entries = shards.flatMap { shard in shard.checkpoint.entries.map { (shard.file, $0) } }
        return ShardIndex.encode(totalSize: entries.reduce(0) { $0 + $1.1.bytes.count },
                                 weightMap: entries.map { (tensor: $0.1.name, file: $0.0) })
    }

    /// Writes the shards and the index into `folder`, made if missing.
    public func write(to folder: String) throws {
        try FileSystem.makeDirectories(FilePath(folder))
        for shard in shards { try shard.checkpoint.write(to: folder + "/" + shard.file) }
        try TempDir.write(index, to: folder + "/model.safetensors.index.json")
    }
}
