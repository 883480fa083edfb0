import SafeTensors
import Zstd

/// A frame's end as the stream decoder reports it: where it ends in the compressed stream, and its content size.
public struct FrameEnd: Hashable, Sendable {
    public var compressedEnd: Int
    public var rawSize: Int

    public init(compressedEnd: Int, rawSize: Int) {
        self.compressedEnd = compressedEnd
        self.rawSize = rawSize
    }
}

/// What the zstd stream decoder made of a whole stream: the content, and where each frame ended.
public struct DecodedStream {
    public var content: [UInt8] = []
    public var ends: [FrameEnd] = []

    public init() {}

    /// Feeds `stream` to a new decoder in pieces of the given sizes (cycled; the whole stream at once when empty),
    /// then calls `finish()`.
    public init(_ stream: [UInt8], pieces: [Int] = [], requireChecksum: Bool = true) throws {
        var decoder = try ZstdStreamDecoder()
        var decoded = DecodedStream()
        let sizes = pieces.isEmpty ? [max(stream.count, 1)] : pieces
        try stream.withUnsafeBytes { bytes in
            var offset = 0
            var index = 0
            while offset < bytes.count {
                let end = min(bytes.count, offset + sizes[index % sizes.count])
                try decoder.feed(
                    UnsafeRawBufferPointer(rebasing: bytes[offset..<end]),
                    requireChecksum: requireChecksum,
                    output: { decoded.content.append(contentsOf: $0) },
                    frameEnded: { decoded.ends.append(FrameEnd(compressedEnd: $0, rawSize: $1)) }
                )
                offset = end
                index += 1
            }
        }
        try decoder.finish()
        self = decoded
    }
}

/// A safetensors file held whole in memory (an input, or an output decompressed), for checking small outputs in
/// tests.
public struct DecodedCheckpoint {
    public var header: Header
    public var bytes: [UInt8]

    public init(safetensors bytes: [UInt8], file: String = "test") throws {
        let n = try bytes.withUnsafeBytes { try Header.headerLength(prefix: UnsafeRawBufferPointer(rebasing: $0[0..<8]),
                                                                   fileSize: bytes.count, file: file) }
        header = try bytes.withUnsafeBytes {
            try Header.parse(json: UnsafeRawBufferPointer(rebasing: $0[8..<(8 + n)]), dataLength: bytes.count - 8 - n,
                             file: file)
        }
        self.bytes = bytes
    }

    /// Decompresses a `.zst` output with libzstd (checksums required) and parses what is inside.
    public init(zst path: String) throws {
        try self.init(safetensors: try DecodedStream(TempDir.read(path)).content, file: path)
    }

    public func tensor(_ name: String) -> TensorInfo? { header.tensors.first { $0.name == name } }

    public func raw(_ name: String) -> [UInt8] {
        guard let t = tensor(name) else { return [] }
        let start = header.dataStart + t.dataRange.lowerBound
        return Array(bytes[start..<(start + t.byteCount)])
    }

    public func floats(_ name: String) -> [Float] {
        let r = raw(name)
        guard let t = tensor(name) else { return [] }
        switch t.dtype {
        case .F32: return stride(from: 0, to: r.count, by: 4).map { i in
            Float(bitPattern: UInt32(r[i]) | UInt32(r[i + 1]) << 8 | UInt32(r[i + 2]) << 16 | UInt32(r[i + 3]) << 24) }
        case .F16: return stride(from: 0, to: r.count, by: 2).map { i in
            Float(Float16(bitPattern: UInt16(r[i]) | UInt16(r[i + 1]) << 8)) }
        case .BF16: return stride(from: 0, to: r.count, by: 2).map { i in
            Float(bitPattern: (UInt32(r[i]) | UInt32(r[i + 1]) << 8) << 16) }
        case .F64: return stride(from: 0, to: r.count, by: 8).map { i in
            var b: UInt64 = 0
            for k in 0..<8 { b |= UInt64(r[i + k]) << (8 * k) }
            return Float(Double(bitPattern: b)) }
        default: return []
        }
    }

    public func int8s(_ name: String) -> [Int8] { raw(name).map { Int8(bitPattern: $0) } }

    public func int64s(_ name: String) -> [Int64] {
        let r = raw(name)
        return stride(from: 0, to: r.count, by: 8).map { i in
            var b: UInt64 = 0
            for k in 0..<8 { b |= UInt64(r[i + k]) << (8 * k) }
            return Int64(bitPattern: b)
        }
    }

    /// The tensor holding a quantized weight's codes: `name` (I8, int-quantized) or `name_packed` (I32,
    /// pack-quantized).
    public func codeTensor(_ name: String) -> TensorInfo? { tensor(name) ?? tensor(name + "_packed") }

    /// A quantized weight's zero points (I8, shaped like its scale), row-major.
    public func zeroPoints(_ name: String) -> [Int8] { int8s(name + "_zero_point") }

    /// A quantized weight's int8 codes in either layout. The packed one is read as compressed-tensors describes
    /// `pack_to_int32` with 8 bits: word j of a row holds codes 4j..4j+3, code i in bits 8i..8i+7 as code + 128,
    /// the row's last word padded; the row length comes from `name_shape` (I64).
    public func codes(_ name: String) -> [Int8] {
        if tensor(name)?.dtype == .I8 { return int8s(name) }
        guard let packed = tensor(name + "_packed"), packed.dtype == .I32, packed.shape.count == 2 else { return [] }
        let shape = int64s(name + "_shape").map(Int.init)
        let count = shape.reduce(1, *)
        let rows = shape.count >= 2 ? shape[0] : 1
        let cols = count / max(rows, 1)
        let r = raw(name + "_packed")
        var out: [Int8] = []
        out.reserveCapacity(count)
        for row in 0..<rows {
            for col in 0..<cols {
                let word = row * packed.shape[1] + col / 4
                let w = UInt32(r[4 * word]) | UInt32(r[4 * word + 1]) << 8 | UInt32(r[4 * word + 2]) << 16
                    | UInt32(r[4 * word + 3]) << 24
                out.append(Int8(Int((w >> (8 * UInt32(col % 4))) & 0xFF) - 128))
            }
        }
        return out
    }
}
