#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif
import QuantizationCore

/// Entropy calibration, as TensorRT's: a histogram of |x| over [0, absmax] in 2048 bins; for each candidate
/// threshold keeping the first i bins, P is those bins with the values beyond folded into bin i - 1, and Q is the
/// same bins without the fold, merged into 2^(bits-1) target levels (128 at 8 bits) and spread back uniformly over
/// each level's non-empty bins. The threshold with the least KL(P || Q) wins (the largest on ties, within
/// rounding), at i * absmax / 2048. A candidate whose bin i - 1 was empty before the fold has an infinite
/// divergence and is skipped (as in TensorRT); with no values beyond it, i = 2048 is always finite.
///
/// Candidates: i = levels, levels + 16, ..., 2048 (121 at 8 bits; TensorRT tries every bin, this strides by 16
/// to bound the cost per group). Asymmetric grids calibrate each side of 0 on its own histogram (the
/// non-negative values up to max, the magnitudes of the non-positive ones up to -min), each with 2^(bits-1)
/// levels.
public struct EntropyCalibrator: Calibrator {
    public static let bins = 2048
    public static let stride = 16

    public init() {}

    public var name: String { "entropy" }

    /// A histogram of fewer values than bins says nothing about where to clip.
    public var minimumValues: Int { Self.bins }

    /// Which values a histogram holds.
    enum Side {
        case magnitude, positive, negative
    }

    public func range(_ x: UnsafeBufferPointer<Float>, observed: RangeStats, grid: CodeGrid) -> ClipRange {
        let levels = 1 << (grid.bits - 1)
        if grid.symmetric {
            let a = Self.threshold(x, limit: observed.absmax, levels: levels, side: .magnitude)
            return ClipRange(lo: -a, hi: a)
        }
        let hi = Self.threshold(x, limit: Swift.max(observed.max, 0), levels: levels, side: .positive)
        let lo = Self.threshold(x, limit: Swift.max(-observed.min, 0), levels: levels, side: .negative)
        return ClipRange(lo: -lo, hi: hi)
    }

    /// The KL-optimal threshold for the values of `side` in `x`, whose largest is `limit`.
    static func threshold(_ x: UnsafeBufferPointer<Float>, limit: Float, levels: Int, side: Side) -> Float {
        guard limit > 0 else { return 0 }
        var histogram = [Int](repeating: 0, count: bins)
        let perUnit = Double(bins) / Double(limit)
        for v in x {
            let m: Float
            switch side {
            case .magnitude: m = abs(v)
            case .positive: m = v
            case .negative: m = -v
            }
            guard m >= 0 else { continue }
            // Capped before the conversion, so that any value (above `limit`, infinite) lands in a bin.
            let bin = Double(m) * perUnit
            histogram[bin < Double(bins - 1) ? Int(bin) : bins - 1] += 1
        }
        let kept = bestBinCount(histogram, levels: levels)
        return kept == bins ? limit : Float(Double(limit) * Double(kept) / Double(bins))
    }

    /// The number of leading bins of a `bins`-bin histogram to keep for `levels` target levels: the candidate
    /// with the least divergence, the largest on ties.
    public static func bestBinCount(_ histogram: [Int], levels: Int) -> Int {
        check(histogram.count == bins && levels >= 1, "a histogram of \(bins) bins and at least one level")
        // Non-empty bins in order, with prefix sums of counts and of c * log(c): each candidate then costs one
        // walk over the non-empty bins below it, and a log per target level that holds any.
        var index: [Int] = [], count: [Double] = []
        for (b, c) in histogram.enumerated() where c > 0 {
            index.append(b)
            count.append(Double(c))
        }
        var cumulative = [0.0], cLogC = [0.0]
        for c in count {
            cumulative.append(cumulative.last! + c)
            cLogC.append(cLogC.last! + c * log(c))
        }
        let total = cumulative.last!
        guard total > 0 else { return bins }
        var candidates = Array(Swift.stride(from: levels, through: bins, by: stride))
        if candidates.last != bins { candidates.append(bins) }
        var best = Double.infinity, bestCount = bins
        var k = 0
        for i in candidates {
            while k < index.count && index[k] < i { k += 1 }
            let outliers = total - cumulative[k]
            // The fold needs bin i - 1 non-empty (else Q is 0 where P is not: infinite divergence).
            if outliers > 0 && !(k > 0 && index[k - 1] == i - 1) { continue }
            // KL(P || Q) * total = sum c' log c' - total log total + total log(total - outliers)
            //                      - sum over levels S' log(S / m)
            // with c' the folded counts, S and m a level's count and non-empty bins before the fold, S' after it.
            var sumCLogC = cLogC[k]
            if outliers > 0 {
                let c = count[k - 1]
                sumCLogC += (c + outliers) * log(c + outliers) - c * log(c)
            }
            var levelTerms = 0.0
            var level = -1, s = 0.0, m = 0.0
            for j in 0..<k {
                let l = index[j] * levels / i
                if l != level {
                    if m > 0 { levelTerms += s * log(s / m) }
                    level = l
                    s = 0
                    m = 0
                }
                s += count[j]
                m += 1
            }
            // The last level holds bin i - 1 when there are outliers: P's share there carries them.
            if m > 0 { levelTerms += (s + outliers) * log(s / m) }
            let divergence = sumCLogC - total * log(total) + total * log(total - outliers) - levelTerms
            // Ties within rounding go to the larger threshold.
            if divergence <= best + 1e-9 * Swift.max(1, abs(best)) {
                best = Swift.min(best, divergence)
                bestCount = i
            }
        }
        return bestCount
    }
}
