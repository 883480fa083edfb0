import QuantizationCore

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

    /// The fewest values for which the method means something (entropy's histogram needs as many values as bins);
    /// smaller groups get absmax's range (`CalibrationGuard`).
    var minimumValues: Int { get }
}

extension Calibrator {
    public var minimumValues: Int { 1 }
}

/// Calibrators never wreck a weight. Per group, a calibrator's range is used only when the group has at least
/// `minimumValues` values and the range quantizes the group with at most `tolerance` times absmax's squared
/// error; otherwise the group gets absmax's range (its min/max), and the outcome says why, for the manifest.
/// Both checks depend on the values alone, so outputs stay the same whatever the thread count or machine.
public enum CalibrationGuard {
    /// 1.1: a calibrator may cost at most 0.41 dB of SQNR against absmax on a group before absmax is used.
    public static let tolerance = 1.1

    public enum Outcome: Sendable { case calibrated, tooFew, worse }

    public static func range(_ calibrator: any Calibrator, _ x: UnsafeBufferPointer<Float>, observed: RangeStats,
                             grid: CodeGrid) -> (range: ClipRange, outcome: Outcome) {
        let full = ClipRange.full(observed, symmetric: grid.symmetric)
        guard x.count >= calibrator.minimumValues else { return (full, .tooFew) }
        let clip = calibrator.range(x, observed: observed, grid: grid)
        let error = Kernels.squaredError(x, params: grid.params(clip), grid: grid)
        let absmax = Kernels.squaredError(x, params: grid.params(full), grid: grid)
        return error > absmax * tolerance ? (full, .worse) : (clip, .calibrated)
    }
}

extension CalibrationCounts {
    public mutating func count(_ outcome: CalibrationGuard.Outcome) {
        groups += 1
        if outcome == .tooFew { tooFew += 1 }
        if outcome == .worse { worse += 1 }
    }
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
