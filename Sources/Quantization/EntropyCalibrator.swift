#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Entropy calibration, as TensorRT's: a histogram of |x| over [0, absmax] in 2048 bins; for each candidate
/// threshold (keeping the first i bins, the values beyond folded into bin i - 1), the kept distribution P is
/// merged into 2^(bits-1) target levels (128 at 8 bits) and spread back uniformly over each level's non-empty
/// bins as Q; the threshold with the least KL(P || Q) wins (the largest on ties), at i * absmax / 2048.
///
/// Candidates: i = levels, levels + 16, ..., 2048 (121 at 8 bits; TensorRT tries every bin, this strides by 16
/// to bound the cost per group). A folded-in bin counts as non-empty (TensorRT would give it an infinite
/// divergence when it was empty before folding). Asymmetric grids calibrate each side of 0 on its own histogram
/// (positive values up to max, magnitudes of negative ones up to -min), each with 2^(bits-1) levels.
public struct EntropyCalibrator: Calibrator {
    public static let bins = 2048
    public static let stride = 16

    public init() {}

    public var name: String { "entropy" }

    public func range(_ x: UnsafeBufferPointer<Float>, observed: RangeStats, grid: CodeGrid) -> ClipRange {
        let levels = 1 << (grid.bits - 1)
        if grid.symmetric {
            let a = Self.threshold(x, limit: observed.absmax, levels: levels) { abs($0) }
            return ClipRange(lo: -a, hi: a)
        }
        let hi = Self.threshold(x, limit: Swift.max(observed.max, 0), levels: levels) { $0 > 0 ? $0 : 0 }
        let lo = Self.threshold(x, limit: Swift.max(-observed.min, 0), levels: levels) { $0 < 0 ? -$0 : 0 }
        return ClipRange(lo: -lo, hi: hi)
    }

    /// The KL-optimal threshold for the values `side(v)` of `x` in [0, limit] (zeros, the other side, are counted
    /// in bin 0 like any small value).
    static func threshold(_ x: UnsafeBufferPointer<Float>, limit: Float, levels: Int,
                          side: (Float) -> Float) -> Float {
        guard limit > 0 else { return 0 }
        var histogram = [Int](repeating: 0, count: bins)
        let perUnit = Double(bins) / Double(limit)
        for v in x {
            let b = Int(Double(side(v)) * perUnit)
            histogram[Swift.min(Swift.max(b, 0), bins - 1)] += 1
        }
        let kept = bestBinCount(histogram, levels: levels)
        return kept == bins ? limit : Float(Double(limit) * Double(kept) / Double(bins))
    }

    /// The number of leading bins to keep: the candidate with the least divergence, the largest on ties.
    static func bestBinCount(_ histogram: [Int], levels: Int) -> Int {
        // Non-empty bins in order, with prefix sums of counts and of c * log(c).
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
        var candidates = Array(Swift.stride(from: levels, through: bins, by: stride))
        if candidates.last != bins { candidates.append(bins) }
        var best = Double.infinity, bestCount = bins
        var k = 0
        for i in candidates {
            while k < index.count && index[k] < i { k += 1 }
            // KL(P || Q) * total = sum c log c - sum over levels S log(S / m) (S: a level's count, m: its
            // non-empty bins), the values beyond bin i - 1 folded into it.
            let outliers = total - cumulative[k]
            var sumCLogC = cLogC[k]
            var lastCount = 0.0
            var bins = k
            if outliers > 0 {
                if k > 0 && index[k - 1] == i - 1 {
                    let c = count[k - 1]
                    sumCLogC += (c + outliers) * log(c + outliers) - c * log(c)
                    lastCount = c + outliers
                    bins = k - 1
                } else {
                    sumCLogC += outliers * log(outliers)
                    lastCount = outliers
                }
            }
            var levelSums = 0.0
            var level = -1, s = 0.0, m = 0.0
            func visit(_ b: Int, _ c: Double) {
                let l = b * levels / i
                if l != level {
                    if m > 0 { levelSums += s * log(s / m) }
                    level = l
                    s = 0
                    m = 0
                }
                s += c
                m += 1
            }
            for j in 0..<bins { visit(index[j], count[j]) }
            if lastCount > 0 { visit(i - 1, lastCount) }
            if m > 0 { levelSums += s * log(s / m) }
            let divergence = sumCLogC - levelSums
            if divergence <= best {
                best = divergence
                bestCount = i
            }
        }
        return bestCount
    }
}
