import Testing
import Quantization
import TestSupport

/// Decoding fp16, bf16, f64 and f32 bytes: fast against reference, and the reference against the definition. The
/// fast decoder of every kernel variant this CPU runs.
@Suite struct DecodeTests {
    /// Decodes `bytes` (starting at byte `offset`, to exercise unaligned loads) with both kernels.
    func decodeBoth(_ bytes: [UInt8], offset: Int, format: FloatFormat, variant: KernelVariant)
        -> (fast: [Float], reference: [Float])
    {
        let count = (bytes.count - offset) / format.bytesPerElement
        var fast = [Float](repeating: 0, count: count), reference = fast
        bytes.withUnsafeBytes { raw in
            let src = raw.baseAddress! + offset
            fast.withUnsafeMutableBufferPointer {
                Kernels.decode(src, format: format, count: count, into: $0.baseAddress!, variant: variant)
            }
            reference.withUnsafeMutableBufferPointer {
                ReferenceKernels.decode(src, format: format, count: count, into: $0.baseAddress!)
            }
        }
        return (fast, reference)
    }

    func littleEndianBytes<T: FixedWidthInteger>(_ values: [T], offset: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0xee, count: offset)
        for v in values {
            for b in 0..<(T.bitWidth / 8) { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * b))) }
        }
        return bytes
    }

    @Test(arguments: runnableVariants) func f16AllPatternsFastEqualsReferenceAndReferenceEqualsFloat16(_ variant: KernelVariant) {
        let patterns = (0...UInt16.max).map { $0 }
        let (fast, reference) = decodeBoth(littleEndianBytes(patterns, offset: 1), offset: 1, format: .f16,
                                               variant: variant)
        #expect(fast.map(\.bitPattern) == reference.map(\.bitPattern))
        var mismatches = 0
        for (h, value) in zip(patterns, reference) {
            let expected = Float(Float16(bitPattern: h))
            if expected.isNaN ? !value.isNaN : expected.bitPattern != value.bitPattern { mismatches += 1 }
        }
        #expect(mismatches == 0)
        // Spot checks: smallest subnormal, largest finite, infinities, a quiet NaN.
        #expect(reference[0x0001] == Float(sign: .plus, exponent: -24, significand: 1))
        #expect(reference[0x7bff] == 65504 && reference[0xfc00] == -.infinity && reference[0x7c00] == .infinity)
        #expect(reference[0x7e00].bitPattern == 0x7fc0_0000)
    }

    @Test(arguments: runnableVariants) func bf16PatternsWithNaNInfinityAndSubnormalsFastEqualsReference(_ variant: KernelVariant) {
        var rng = SeededRandom(seed: 7)
        var patterns: [UInt16] = [0, 0x8000, 0x3f80, 0xbf80, 0x7f80, 0xff80, 0x7fc0, 0x7f81, 0xffff, 0x0001, 0x807f,
                                  0x7f7f]
        patterns += (0..<5000).map { _ in UInt16.random(in: 0...UInt16.max, using: &rng) }
        let (fast, reference) = decodeBoth(littleEndianBytes(patterns, offset: 3), offset: 3, format: .bf16,
                                               variant: variant)
        #expect(fast.map(\.bitPattern) == reference.map(\.bitPattern))
        #expect(reference[2] == 1 && reference[3] == -1 && reference[4] == .infinity && reference[6].isNaN)
        #expect(reference[9].isSubnormal)
    }

    /// f64: rounding to nearest f32, overflow to inf, underflow, NaN; fast equal to reference.
    @Test(arguments: runnableVariants) func f64RoundsToNearestF32AndFastEqualsReference(_ variant: KernelVariant) {
        var rng = SeededRandom(seed: 8)
        var values: [Double] = [1, -1, 0, -0.0, 1e39, -1e39, 1e-46, 3e-45, .infinity, -.infinity, .nan,
                                Double(Float.greatestFiniteMagnitude), 1 + 0x1p-24, 1 + 0x1p-24 + 0x1p-40,
                                1 + 3 * 0x1p-24]
        values += (0..<3000).map { _ in Double.random(in: -1e5...1e5, using: &rng) }
        values += (0..<3000).map { _ in Double(bitPattern: rng.next()) }
        let (fast, reference) = decodeBoth(littleEndianBytes(values.map(\.bitPattern), offset: 5), offset: 5,
                                               format: .f64, variant: variant)
        #expect(fast.map(\.bitPattern) == reference.map(\.bitPattern))
        #expect(reference[4] == .infinity && reference[5] == -.infinity && reference[6] == 0)
        #expect(reference[7] == .leastNonzeroMagnitude * 2 && reference[10].isNaN)
        // Ties to even: 1 + 2^-24 is halfway and rounds down; a hair above rounds up; 1 + 3*2^-24 rounds up.
        #expect(reference[12] == 1 && reference[13] == 1 + 0x1p-23 && reference[14] == 1 + 0x1p-22)
    }

    @Test(arguments: runnableVariants) func f32IsCopiedBitForBitFromUnalignedBytes(_ variant: KernelVariant) {
        let values: [Float] = [1.5, -0.0, .nan, .infinity, .leastNonzeroMagnitude, 3.25e7]
        let (fast, reference) = decodeBoth(littleEndianBytes(values.map(\.bitPattern), offset: 2), offset: 2,
                                               format: .f32, variant: variant)
        #expect(fast.map(\.bitPattern) == values.map(\.bitPattern))
        #expect(reference.map(\.bitPattern) == values.map(\.bitPattern))
    }

    @Test func bytesPerElement() {
        #expect([FloatFormat.f16, .bf16, .f32, .f64].map(\.bytesPerElement) == [2, 2, 4, 8])
    }
}
