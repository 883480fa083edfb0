import QuantizationCore

/// Per group, the candidate whose range quantizes the group with the least squared error (measured at the
/// grid's bit width; the first candidate wins ties, and absmax comes first). Choosing per group is at least as
/// good on every tensor as choosing one candidate per tensor, since a tensor's error is the sum of its groups'.
///
/// Budget: fixed by element count, never by the clock, so the output does not depend on machine speed. Every
/// group tries absmax, percentile and mse (about 45 error passes over the group); entropy joins only for groups
/// of at least 2048 values (its histogram's bin count), where its histogram means something and its cost per
/// value is small.
public struct AutoCalibrator: Calibrator {
    /// Tried on every group, in this order.
    public let candidates: [any Calibrator]
    /// Tried on groups of at least `EntropyCalibrator.bins` values.
    public let largeGroupCandidates: [any Calibrator]

    public init(percentile: Double = 99.99) {
        candidates = [AbsmaxCalibrator(), PercentileCalibrator(percentile: percentile), MSECalibrator()]
        largeGroupCandidates = [EntropyCalibrator()]
    }

    public var name: String { "auto" }

    public func range(_ x: UnsafeBufferPointer<Float>, observed: RangeStats, grid: CodeGrid) -> ClipRange {
        choose(x, observed: observed, grid: grid).range
    }

    /// The winning candidate's index (into `candidates` followed by `largeGroupCandidates`) and its range.
    public func choose(_ x: UnsafeBufferPointer<Float>, observed: RangeStats, grid: CodeGrid)
        -> (index: Int, range: ClipRange)
    {
        let tried = x.count >= EntropyCalibrator.bins ? candidates + largeGroupCandidates : candidates
        var best = (index: 0, range: tried[0].range(x, observed: observed, grid: grid))
        var bestError = squaredError(x, best.range, grid)
        for (i, c) in tried.enumerated().dropFirst() {
            let r = c.range(x, observed: observed, grid: grid)
            let e = squaredError(x, r, grid)
            if e < bestError {
                best = (i, r)
                bestError = e
            }
        }
        return best
    }
}
