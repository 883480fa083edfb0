import Foundation
import TestSupport
import Zstd

// Inputs and frames for the zstd tests; what the stream decoder makes of a stream is TestSupport's `DecodedStream`.

/// Uniformly random bytes: incompressible input.
func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var generator = SeededRandom(seed: seed)
    return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
}

/// int8 codes of Gaussian weights (sigma ~ 30, clamped to [-127, 127]) as stored bytes: what quantd compresses.
func gaussianInt8(_ count: Int, seed: UInt64) -> [UInt8] {
    var generator = SeededRandom(seed: seed)
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
