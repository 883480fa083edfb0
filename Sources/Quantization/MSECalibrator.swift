import QuantizationCore

/// MSE calibration: the clipping range, among the full range shrunk toward 0 by a factor alpha, whose
/// quantization has the least squared error, measured at the grid's bit width on the group itself.
///
/// Grid: a coarse pass over alpha = 1, 0.95, ..., 0.05 (20 candidates), then a fine pass over best +- 0.05 in
/// steps of 0.005 (up to 20 more), so about 40 error passes over the group. Candidates are tried from the larger
/// alpha down and only a strictly smaller error replaces the best, so alpha = 1 (min/max) wins ties: the result
/// is never worse than absmax by this measure.
public struct MSECalibrator: Calibrator {
    public init() {}

    public var name: String { "mse" }

    public func range(_ x: UnsafeBufferPointer<Float>, observed: RangeStats, grid: CodeGrid) -> ClipRange {
        let full = ClipRange.full(observed, symmetric: grid.symmetric)
        guard full.hi > full.lo else { return full }
        var bestAlpha = 1.0
        var bestError = squaredError(x, full, grid)
        func consider(_ alpha: Double) {
            let e = squaredError(x, full.scaled(alpha), grid)
            if e < bestError {
                bestError = e
                bestAlpha = alpha
            }
        }
        for k in 1..<20 { consider(1 - 0.05 * Double(k)) }
        let center = bestAlpha
        for k in stride(from: 10, through: -10, by: -1) where k != 0 {
            let alpha = center + 0.005 * Double(k)
            if alpha > 0 && alpha <= 1 { consider(alpha) }
        }
        return bestAlpha == 1 ? full : full.scaled(bestAlpha)
    }
}
