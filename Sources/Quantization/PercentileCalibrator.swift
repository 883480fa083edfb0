/// Percentile calibration: symmetric, the P-th percentile of |x|; asymmetric, the (100 - P)-th and P-th
/// percentiles of x. Percentiles interpolate linearly between order statistics (position p * (n - 1) in the
/// sorted values, as numpy's default), so P = 100 gives min/max. Sorts a copy of the group (a whole tensor when
/// the granularity is per tensor).
public struct PercentileCalibrator: Calibrator {
    /// P, in [50, 100].
    public let percentile: Double

    public init(percentile: Double = 99.99) {
        precondition((50...100).contains(percentile), "percentile must be between 50 and 100")
        self.percentile = percentile
    }

    public var name: String { "percentile" }

    public func range(_ x: UnsafeBufferPointer<Float>, observed: RangeStats, grid: CodeGrid) -> ClipRange {
        let p = percentile / 100
        if grid.symmetric {
            var magnitudes = x.map { abs($0) }
            magnitudes.sort()
            let a = Self.quantile(magnitudes, p)
            return ClipRange(lo: -a, hi: a)
        }
        var sorted = Array(x)
        sorted.sort()
        return ClipRange(lo: Swift.min(Self.quantile(sorted, 1 - p), 0), hi: Swift.max(Self.quantile(sorted, p), 0))
    }

    /// The value at position q * (n - 1) of ascending `sorted` (non-empty), interpolated linearly.
    static func quantile(_ sorted: [Float], _ q: Double) -> Float {
        let position = q * Double(sorted.count - 1)
        let i = Int(position.rounded(.down))
        guard i + 1 < sorted.count else { return sorted[sorted.count - 1] }
        let fraction = position - Double(i)
        return Float(Double(sorted[i]) + (Double(sorted[i + 1]) - Double(sorted[i])) * fraction)
    }
}
