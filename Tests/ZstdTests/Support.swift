import Foundation
import Zstd

/// SplitMix64: a small seeded generator so every test sees the same bytes on every run.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Uniformly random bytes: incompressible input.
func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
}

/// int8 codes of Gaussian weights (sigma ~ 30, clamped to [-127, 127]) as stored bytes: what quantd compresses.
func gaussianInt8(_ count: Int, seed: UInt64) -> [UInt8] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in
        // Box-Muller; `u1` is kept away from 0 so the logarithm stays finite.
        let u1 = Double.random(in: Double.ulpOfOne..<1, using: &generator)
        let u2 = Double.random(in: 0..<1, using: &generator)
        let normal = (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
        let code = Int8(max(-127, min(127, (normal * 30).rounded(.toNearestOrEven))))
        return UInt8(bitPattern: code)
    }
}

/// Compresses `bytes` as one frame appended to `output`, returning the frame size.
@discardableResult
func compress(_ bytes: [UInt8], with compressor: inout ZstdCompressor, into output: inout [UInt8]) throws -> Int {
    try bytes.withUnsafeBytes { source in try compressor.compressFrame(source, appendingTo: &output) }
}

/// One frame from a fresh compressor at the default settings.
func frame(of bytes: [UInt8], level: Int = 3, checksum: Bool = true) throws -> [UInt8] {
    var compressor = try ZstdCompressor(level: level, checksum: checksum)
    var output: [UInt8] = []
    try compress(bytes, with: &compressor, into: &output)
    return output
}

/// A frame end as the decoder reports it.
struct FrameEnd: Hashable {
    var compressedEnd: Int
    var rawSize: Int
}

/// What a stream decoder produced from a whole stream.
struct Decoded {
    var content: [UInt8] = []
    var ends: [FrameEnd] = []
}

/// Feeds `stream` to a new decoder in pieces of the given sizes (cycled; the whole stream at once when empty),
/// then calls `finish()`.
func decodeStream(_ stream: [UInt8], pieces: [Int] = [], requireChecksum: Bool = true) throws -> Decoded {
    var decoder = try ZstdStreamDecoder()
    var decoded = Decoded()
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
    return decoded
}

/// libzstd error codes from `zstd_errors.h` that the tests expect.
enum Code {
    static let prefixUnknown = 10
    static let frameParameterUnsupported = 14
    static let corruptionDetected = 20
    static let checksumWrong = 22
    static let parameterOutOfBound = 42
    static let stageWrong = 60
    static let dstSizeTooSmall = 70
    static let srcSizeWrong = 72
}
