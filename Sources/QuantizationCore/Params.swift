#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// A floating-point element type that the kernels can decode to fp32.
public enum FloatFormat: Sendable, Hashable {
    case f32, f16, bf16, f64

    /// Size of one stored element in bytes.
    public var bytesPerElement: Int {
        switch self {
        case .f16, .bf16: 2
        case .f32: 4
        case .f64: 8
        }
    }
}

/// Scale and zero point of one quantization group: dequantized = scale * (q - zeroPoint).
///
/// Symmetric codes lie in [-127, 127] with zero point 0; asymmetric codes in [-128, 127] (at 8 bits; see `CodeGrid`).
/// The scale is never below `Float.leastNormalMagnitude`, so that `1 / scale` is finite: the kernels
/// multiply by that inverse (`x * (1 / scale)`, in the reference and the fast kernels alike).
public struct QuantParams: Sendable, Hashable {
    public var scale: Float
    public var zeroPoint: Int8

    public init(scale: Float, zeroPoint: Int8) {
        self.scale = scale
        self.zeroPoint = zeroPoint
    }

    /// The one place symmetric params come from a range: scale = absmax / qmax (qmax = 2^(bits-1) - 1, so 127 at
    /// 8 bits; scale 1 when absmax is 0), rounded up to `format` (so that what is stored is what quantizes).
    /// A NaN absmax counts as 0 and an infinite one as the largest finite float.
    @inlinable @inline(always)
    public static func symmetric(absmax: Float, bits: Int = 8, format: ScaleFormat = .f32) -> QuantParams {
        let a = absmax.isNaN ? 0 : Swift.min(abs(absmax), .greatestFiniteMagnitude)
        guard a > 0 else { return QuantParams(scale: 1, zeroPoint: 0) }
        // 127 spelled out for the common case: this runs once per group on the fused path.
        let qmax: Float = bits == 8 ? 127 : Float((1 << (bits - 1)) - 1)
        let scale = Swift.max(a / qmax, .leastNormalMagnitude)
        return QuantParams(scale: format == .f32 ? scale : format.roundUp(scale), zeroPoint: 0)
    }

    /// The one place asymmetric params come from a range. The range is widened to include 0 (so 0 is exact):
    /// [lo, hi] = [min(min, 0), max(max, 0)], scale = (hi - lo) / (2^bits - 1) (255 at 8 bits; worked in
    /// Double, so that it cannot overflow) rounded up to `format`, zeroPoint = clamp(round_half_even(qmin -
    /// lo / scale), qmin, qmax) with qmin = -2^(bits-1) (also in Double). An empty or all-zero range gives scale 1
    /// and zero point 0. NaN bounds count as 0.
    @inlinable @inline(always)
    public static func asymmetric(min: Float, max: Float, bits: Int = 8, format: ScaleFormat = .f32) -> QuantParams {
        let lo = min.isNaN ? 0 : Swift.max(Swift.min(min, 0), -.greatestFiniteMagnitude)
        let hi = max.isNaN ? 0 : Swift.min(Swift.max(max, 0), .greatestFiniteMagnitude)
        guard hi > lo else { return QuantParams(scale: 1, zeroPoint: 0) }
        let qmin = -Double(1 << (bits - 1)), qmax = Double((1 << (bits - 1)) - 1)
        let scale = format.roundUp(Swift.max(Float((Double(hi) - Double(lo)) / (qmax - qmin)), .leastNormalMagnitude))
        let zp = (qmin - Double(lo) / Double(scale)).rounded(.toNearestOrEven)
        return QuantParams(scale: scale, zeroPoint: Int8(Swift.min(Swift.max(zp, qmin), qmax)))
    }

    /// The multiplier applied to inputs before rounding; shared by every kernel so that all agree bit for bit.
    @inlinable public var inverseScale: Float { 1 / scale }
}

/// How scales are stored. The params functions round each scale up to this format, so that the codes are made
/// with exactly the scale that is stored (and no value of the range can round outside the codes for it).
public enum ScaleFormat: String, Sendable, Hashable, Codable, CaseIterable {
    case f32, f16, bf16

    public var bytesPerElement: Int { self == .f32 ? 4 : 2 }

    /// The smallest value of this format at or above the positive finite `x`, capped at the format's largest
    /// finite value (a scale above that clips the range: 65504 for f16).
    @inline(never)
    public func roundUp(_ x: Float) -> Float {
        switch self {
        case .f32:
            return x
        case .f16:
            var h = Float16(x)
            if Float(h) < x { h = h.nextUp }
            return h.isFinite ? Float(h) : Float(Float16.greatestFiniteMagnitude)
        case .bf16:
            var bits = x.bitPattern
            if bits & 0xffff != 0 { bits = (bits & 0xffff_0000) &+ 0x1_0000 }
            return bits >= 0x7f80_0000 ? Float(bitPattern: 0x7f7f_0000) : Float(bitPattern: bits)
        }
    }

    /// Stores `scales` (each already representable in this format) little-endian at `out`, which holds
    /// `scales.count * bytesPerElement` bytes.
    public func encode(_ scales: UnsafeBufferPointer<Float>, into out: UnsafeMutableRawPointer) {
        for (i, s) in scales.enumerated() {
            switch self {
            case .f32: out.storeBytes(of: s.bitPattern, toByteOffset: 4 * i, as: UInt32.self)
            case .f16: out.storeBytes(of: Float16(s).bitPattern, toByteOffset: 2 * i, as: UInt16.self)
            case .bf16: out.storeBytes(of: UInt16(s.bitPattern >> 16), toByteOffset: 2 * i, as: UInt16.self)
            }
        }
    }
}

/// The codes of a quantization: `bits` wide (2 to 8; the kernels write 8), symmetric [-(2^(b-1) - 1),
/// 2^(b-1) - 1] with zero point 0, or asymmetric [-2^(b-1), 2^(b-1) - 1]; and the format the scales are
/// stored in. Calibrators take it, so that they can search for a range at any bit width.
public struct CodeGrid: Sendable, Hashable {
    public var bits: Int
    public var symmetric: Bool
    public var scaleFormat: ScaleFormat

    public init(bits: Int = 8, symmetric: Bool, scaleFormat: ScaleFormat = .f32) {
        check((2...8).contains(bits), "bits must be between 2 and 8")
        self.bits = bits
        self.symmetric = symmetric
        self.scaleFormat = scaleFormat
    }

    public var qmin: Int { symmetric ? 1 - (1 << (bits - 1)) : -(1 << (bits - 1)) }
    public var qmax: Int { (1 << (bits - 1)) - 1 }

    /// Params for a clipping range: symmetric grids use max(-lo, hi) as the absmax.
    public func params(_ range: ClipRange) -> QuantParams {
        symmetric
            ? .symmetric(absmax: Swift.max(-range.lo, range.hi), bits: bits, format: scaleFormat)
            : .asymmetric(min: range.lo, max: range.hi, bits: bits, format: scaleFormat)
    }
}

/// The interval a calibrator maps onto the codes; values outside it are clipped.
public struct ClipRange: Sendable, Hashable {
    public var lo: Float
    public var hi: Float

    public init(lo: Float, hi: Float) {
        self.lo = lo
        self.hi = hi
    }

    /// The unclipped range of `observed`: [-absmax, absmax] for a symmetric grid, else [min, max] (0 included).
    public static func full(_ observed: RangeStats, symmetric: Bool) -> ClipRange {
        if observed.min > observed.max { return ClipRange(lo: 0, hi: 0) }
        if symmetric { return ClipRange(lo: -observed.absmax, hi: observed.absmax) }
        return ClipRange(lo: Swift.min(observed.min, 0), hi: Swift.max(observed.max, 0))
    }

    /// The range shrunk toward 0 by `factor` (in (0, 1]).
    public func scaled(_ factor: Double) -> ClipRange {
        ClipRange(lo: Float(Double(lo) * factor), hi: Float(Double(hi) * factor))
    }
}

/// Range of some values: min and max over the finite ones, and how many were NaN or infinite.
public struct RangeStats: Sendable, Hashable {
    public var min: Float
    public var max: Float
    public var nonFinite: Int

    public init(min: Float, max: Float, nonFinite: Int) {
        self.min = min
        self.max = max
        self.nonFinite = nonFinite
    }

    /// No values seen: min is +infinity and max is -infinity, so that any value replaces them.
    public static let empty = RangeStats(min: .infinity, max: -.infinity, nonFinite: 0)

    /// Largest magnitude among the finite values; 0 when there were none.
    public var absmax: Float { min > max ? 0 : Swift.max(abs(min), abs(max)) }

    public mutating func merge(_ other: RangeStats) {
        min = Swift.min(min, other.min)
        max = Swift.max(max, other.max)
        nonFinite += other.nonFinite
    }
}

/// Error of quantization over some values, mergeable across tiles; sums are kept in Double.
/// Non-finite inputs make the sums NaN or infinite: callers refuse such tensors (see `TileResult.nonFinite`).
public struct ErrorStats: Sendable, Hashable {
    public var count: Int
    public var sumSquaredError: Double
    public var sumSquaredSignal: Double
    public var maxAbsError: Float
    /// Values whose rounded code, before clamping, fell outside the code range.
    public var clipped: Int
    /// How a calibrator fared on the groups (all zero without one).
    public var calibration = CalibrationCounts()

    public init(count: Int, sumSquaredError: Double, sumSquaredSignal: Double, maxAbsError: Float, clipped: Int) {
        self.count = count
        self.sumSquaredError = sumSquaredError
        self.sumSquaredSignal = sumSquaredSignal
        self.maxAbsError = maxAbsError
        self.clipped = clipped
    }

    public static let zero = ErrorStats(count: 0, sumSquaredError: 0, sumSquaredSignal: 0, maxAbsError: 0, clipped: 0)

    public mutating func merge(_ other: ErrorStats) {
        count += other.count
        sumSquaredError += other.sumSquaredError
        sumSquaredSignal += other.sumSquaredSignal
        maxAbsError = Swift.max(maxAbsError, other.maxAbsError)
        clipped += other.clipped
        calibration.merge(other.calibration)
    }

    /// sqrt(sse / sss); 0 when the error is 0, +infinity when only the signal is 0.
    public var relativeRMSE: Double {
        if sumSquaredError == 0 { return 0 }
        return (sumSquaredError / sumSquaredSignal).squareRoot()
    }

    /// Signal to quantization noise ratio in decibels, 10 * log10(sss / sse); +infinity when sse is 0.
    public var sqnrDB: Double {
        if sumSquaredError == 0 { return .infinity }
        return 10 * log10(sumSquaredSignal / sumSquaredError)
    }

    /// Share of the values that were clipped; 0 when there were none.
    public var clippedFraction: Double { count == 0 ? 0 : Double(clipped) / Double(count) }
}

/// How a tensor's groups were calibrated: mergeable across tiles like `ErrorStats`.
public struct CalibrationCounts: Sendable, Hashable {
    /// Groups a calibrator was asked for.
    public var groups = 0
    /// Groups with fewer values than the calibrator's `minimumValues`: given absmax's range.
    public var tooFew = 0
    /// Groups whose calibrated range had more than `CalibrationGuard.tolerance` times absmax's error: given
    /// absmax's range.
    public var worse = 0

    public init() {}

    public mutating func merge(_ other: CalibrationCounts) {
        groups += other.groups
        tooFew += other.tooFew
        worse += other.worse
    }
}

/// Output of a tile: its error stats and the non-finite count seen while calibrating.
public struct TileResult: Sendable, Hashable {
    public var stats: ErrorStats
    public var nonFinite: Int

    public init(stats: ErrorStats, nonFinite: Int) {
        self.stats = stats
        self.nonFinite = nonFinite
    }
}

/// The float next to a nonzero finite `x`, above it when `upward`, else below: a cheap `nextUp`/`nextDown`
/// for the half-integers that bound the codes.
@inlinable @inline(always)
func adjacent(_ x: Float, upward: Bool) -> Float {
    // Adding 1 to the bit pattern moves away from zero.
    let step: UInt32 = (x > 0) == upward ? 1 : 0xffff_ffff
    return Float(bitPattern: x.bitPattern &+ step)
}

/// What applying params to one group needs, derived once per group from `QuantParams`.
///
/// With v = x * inverseScale, the code is clamp(round_half_even(v), lowest, highest) + zeroPoint, where
/// [lowest, highest] = [qmin - zp, qmax - zp]. NaN inputs get the code qmax and are not counted as clipped.
public struct Codebook {
    public let scale: Float
    public let inverseScale: Float
    public let zeroPoint: Int32
    /// Bounds of round(v), as exact floats.
    public let lowest: Float
    public let highest: Float
    /// round_half_even(v) > highest exactly when v >= clipFrom (a tie rounds up only to an even code).
    public let clipFrom: Float
    /// round_half_even(v) < lowest exactly when v <= clipTo.
    public let clipTo: Float

    /// 8-bit codes (the fused path's, per group: the bounds are constants here).
    @inlinable @inline(always)
    public init(_ params: QuantParams, symmetric: Bool) {
        self.init(params, qmin: symmetric ? -127 : -128, qmax: 127)
    }

    @inlinable @inline(always)
    public init(_ params: QuantParams, grid: CodeGrid) {
        self.init(params, qmin: Int32(grid.qmin), qmax: Int32(grid.qmax))
    }

    @inlinable @inline(always)
    public init(_ params: QuantParams, qmin: Int32, qmax: Int32) {
        scale = params.scale
        inverseScale = params.inverseScale
        zeroPoint = Int32(params.zeroPoint)
        let low = qmin - zeroPoint
        let high = qmax - zeroPoint
        lowest = Float(low)
        highest = Float(high)
        // highest + 0.5 rounds to highest + 1 when that is even, i.e. when highest is odd; likewise below.
        let up = Float(high) + 0.5, down = Float(low) - 0.5
        clipFrom = high & 1 != 0 ? up : adjacent(up, upward: true)
        clipTo = low & 1 != 0 ? down : adjacent(down, upward: false)
    }
}
