import SafeTensors
#if canImport(Glibc)
import Glibc
#endif

/// A deterministic generator (SplitMix64), so every test input is the same on every run.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Roughly Gaussian (sum of uniforms), with the occasional outlier, like trained weights.
    public mutating func weight(std: Float = 0.02) -> Float {
        var s: Float = 0
        for _ in 0..<4 { s += Float.random(in: -1...1, using: &self) }
        let v = s * std * 0.866
        return Int.random(in: 0..<997, using: &self) == 0 ? v * 12 : v
    }
}

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

/// A fresh folder under /tmp, removed by `remove()`.
public struct TempDir: Sendable {
    public let path: String

    public init(_ label: String = "quantd-test") {
        var template = Array("/tmp/\(label)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
    }

    public func remove() {
        _ = Shell.run("/bin/rm", ["-rf", path])
    }

    public subscript(_ name: String) -> String { path + "/" + name }

    public static func write(_ bytes: [UInt8], to path: String) throws {
        guard let f = fopen(path, "wb") else { throw TestError("cannot create \(path)") }
        defer { fclose(f) }
        let n = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
        guard n == bytes.count else { throw TestError("short write to \(path)") }
    }

    public static func read(_ path: String) throws -> [UInt8] {
        guard let f = fopen(path, "rb") else { throw TestError("cannot open \(path)") }
        defer { fclose(f) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
            if n == 0 { break }
            out += chunk[0..<n]
        }
        return out
    }

    /// Names in a folder, sorted, without "." and "..".
    public static func list(_ path: String) -> [String] {
        guard let d = opendir(path) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) {
                String(cString: $0.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }
}

public struct TestError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
