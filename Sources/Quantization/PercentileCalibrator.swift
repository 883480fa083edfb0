import QuantizationCore

/// Percentile calibration: symmetric, the P-th percentile of |x|; asymmetric, the (100 - P)-th and P-th
/// percentiles of x. Percentiles interpolate linearly between order statistics (position p * (n - 1) in the
/// sorted values, as numpy's default), so P = 100 gives min/max. The two order statistics are found by selection
/// on a copy of the group (a whole tensor when the granularity is per tensor), in linear time.
public struct PercentileCalibrator: Calibrator {
    /// P, in [50, 100].
    public let percentile: Double

    public init(percentile: Double = 99.99) {
        check((50...100).contains(percentile), "percentile must be between 50 and 100")
        self.percentile = percentile
    }

    public var name: String { "percentile" }

    public func range(_ x: UnsafeBufferPointer<Float>, observed: RangeStats, grid: CodeGrid) -> ClipRange {
        let p = percentile / 100
        if grid.symmetric {
            var magnitudes = x.map { abs($0) }
            let a = Self.quantile(&magnitudes, p)
            return ClipRange(lo: -a, hi: a)
        }
        var values = Array(x)
        let hi = Self.quantile(&values, p)
        let lo = Self.quantile(&values, 1 - p)
        return ClipRange(lo: Swift.min(lo, 0), hi: Swift.max(hi, 0))
    }

    /// The value at position q * (n - 1) of `values` (non-empty, no NaN) in ascending order, interpolated
    /// linearly; reorders `values`.
    public static func quantile(_ values: inout [Float], _ q: Double) -> Float {
        check(!values.isEmpty && q >= 0 && q <= 1, "a quantile in [0, 1] of at least one value")
        let position = q * Double(values.count - 1)
        let i = Int(position.rounded(.down))
        let fraction = position - Double(i)
        return values.withUnsafeMutableBufferPointer { v in
            select(v, i)
            // After selection everything right of i is at least v[i]: the next order statistic is their minimum.
            guard fraction > 0, i + 1 < v.count else { return v[i] }
            var next = v[i + 1]
            for k in (i + 2)..<v.count where v[k] < next { next = v[k] }
            return Float(Double(v[i]) + (Double(next) - Double(v[i])) * fraction)
        }
    }

    /// Reorders `v` so that v[k] is the k-th smallest, nothing left of it larger and nothing right of it smaller
    /// (Hoare selection with a median-of-three pivot: deterministic, linear on average, and at ease with runs of
    /// equal values).
    static func select(_ v: UnsafeMutableBufferPointer<Float>, _ k: Int) {
        var lo = 0, hi = v.count - 1
        while hi > lo {
            let mid = lo + (hi - lo) / 2
            if v[mid] < v[lo] { v.swapAt(mid, lo) }
            if v[hi] < v[lo] { v.swapAt(hi, lo) }
            if v[hi] < v[mid] { v.swapAt(hi, mid) }
            let pivot = v[mid]
            var i = lo, j = hi
            while i <= j {
                while v[i] < pivot { i += 1 }
                while pivot < v[j] { j -= 1 }
                if i <= j {
                    v.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            // Now [lo, j] <= pivot <= [i, hi], and anything between j and i equals the pivot.
            if k <= j {
                hi = j
            } else if k >= i {
                lo = i
            } else {
                return
            }
        }
    }
}
