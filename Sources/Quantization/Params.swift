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
/// Symmetric codes lie in [-127, 127] with zero point 0; asymmetric codes in [-128, 127].
/// The scale is never below `Float.leastNormalMagnitude`, so that `1 / scale` is finite: the kernels
/// multiply by that inverse (`x * (1 / scale)`, in the reference and the fast kernels alike).
public struct QuantParams: Sendable, Hashable {
    public var scale: Float
    public var zeroPoint: Int8

    public init(scale: Float, zeroPoint: Int8) {
        self.scale = scale
        self.zeroPoint = zeroPoint
    }

    /// The one place symmetric params come from a range: scale = absmax / 127 (1 when absmax is 0).
    /// A NaN absmax counts as 0 and an infinite one as the largest finite float.
    public static func symmetric(absmax: Float) -> QuantParams {
        let a = absmax.isNaN ? 0 : Swift.min(abs(absmax), .greatestFiniteMagnitude)
        guard a > 0 else { return QuantParams(scale: 1, zeroPoint: 0) }
        return QuantParams(scale: Swift.max(a / 127, .leastNormalMagnitude), zeroPoint: 0)
    }

    /// The one place asymmetric params come from a range. The range is widened to include 0 (so 0 is exact):
    /// [lo, hi] = [min(min, 0), max(max, 0)], scale = (hi - lo) / 255 (worked in Double, so that it cannot
    /// overflow), zeroPoint = clamp(round_half_even(-128 - lo / scale), -128, 127) (also in Double).
    /// An empty or all-zero range gives scale 1 and zero point 0. NaN bounds count as 0.
    public static func asymmetric(min: Float, max: Float) -> QuantParams {
        let lo = min.isNaN ? 0 : Swift.max(Swift.min(min, 0), -.greatestFiniteMagnitude)
        let hi = max.isNaN ? 0 : Swift.min(Swift.max(max, 0), .greatestFiniteMagnitude)
        guard hi > lo else { return QuantParams(scale: 1, zeroPoint: 0) }
        let scale = Swift.max(Float((Double(hi) - Double(lo)) / 255), .leastNormalMagnitude)
        let zp = (-128 - Double(lo) / Double(scale)).rounded(.toNearestOrEven)
        return QuantParams(scale: scale, zeroPoint: Int8(Swift.min(Swift.max(zp, -128), 127)))
    }

    /// The multiplier applied to inputs before rounding; shared by every kernel so that all agree bit for bit.
    var inverseScale: Float { 1 / scale }
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
@inline(__always)
func adjacent(_ x: Float, upward: Bool) -> Float {
    // Adding 1 to the bit pattern moves away from zero.
    let step: UInt32 = (x > 0) == upward ? 1 : 0xffff_ffff
    return Float(bitPattern: x.bitPattern &+ step)
}

/// What applying params to one group needs, derived once per group from `QuantParams`.
///
/// With v = x * inverseScale, the code is clamp(round_half_even(v), lowest, highest) + zeroPoint, where
/// [lowest, highest] = [qmin - zp, qmax - zp]. NaN inputs get the code qmax and are not counted as clipped.
struct Codebook {
    let scale: Float
    let inverseScale: Float
    let zeroPoint: Int32
    /// Bounds of round(v), as exact floats.
    let lowest: Float
    let highest: Float
    /// round_half_even(v) > highest exactly when v >= clipFrom (a tie rounds up only to an even code).
    let clipFrom: Float
    /// round_half_even(v) < lowest exactly when v <= clipTo.
    let clipTo: Float

    init(_ params: QuantParams, symmetric: Bool) {
        scale = params.scale
        inverseScale = params.inverseScale
        zeroPoint = Int32(params.zeroPoint)
        let low = (symmetric ? -127 : -128) - zeroPoint
        let high = 127 - zeroPoint
        lowest = Float(low)
        highest = Float(high)
        // highest + 0.5 rounds to highest + 1 when that is even, i.e. when highest is odd; likewise below.
        let up = Float(high) + 0.5, down = Float(low) - 0.5
        clipFrom = high & 1 != 0 ? up : adjacent(up, upward: true)
        clipTo = low & 1 != 0 ? down : adjacent(down, upward: false)
    }
}
