/// Sets the range that a group's values are mapped onto: the calibration step of quantization. One calibrator
/// per file; the kernels call `range` once per group (per tensor, channel or group of columns) while the group is
/// hot in cache. A calibrator must be deterministic: the same values give the same range, whatever the thread.
public protocol Calibrator: Sendable {
    /// The name used on the command line (`--calibration`) and recorded in the manifest.
    var name: String { get }

    /// The clipping range for the finite values `x` (non-empty) and codes of `grid` (any bit width: a
    /// calibrator that searches must measure at `grid.bits`). `observed` holds their min and max. Symmetric
    /// grids read max(-lo, hi) of the result as the absmax. Values outside the range are clipped.
    func range(_ x: UnsafeBufferPointer<Float>, observed: RangeStats, grid: CodeGrid) -> ClipRange
}

/// The calibrators by name: adding one is its file and a case here.
public enum CalibrationMethod: String, Sendable, Hashable, Codable, CaseIterable {
    case absmax, percentile, mse, entropy, auto

    /// The calibrator, or nil for `absmax` (the kernels' fused min/max path, which needs none).
    /// `percentile` is used by `.percentile` (and by `.auto`'s percentile candidate).
    public func calibrator(percentile: Double) -> (any Calibrator)? {
        switch self {
        case .absmax: nil
        case .percentile: PercentileCalibrator(percentile: percentile)
        case .mse: MSECalibrator()
        case .entropy: EntropyCalibrator()
        case .auto: AutoCalibrator(percentile: percentile)
        }
    }
}

extension Calibrator {
    /// Squared error of `x` quantized to `grid` over `range`: what the searching calibrators compare.
    func squaredError(_ x: UnsafeBufferPointer<Float>, _ range: ClipRange, _ grid: CodeGrid) -> Double {
        Kernels.squaredError(x, params: grid.params(range), grid: grid)
    }
}
