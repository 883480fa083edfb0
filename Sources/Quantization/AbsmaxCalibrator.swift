import QuantizationCore

/// min/max calibration: the whole observed range, nothing clipped ([-absmax, absmax] when symmetric). The
/// kernels' fused default path computes the same thing without a calibrator; this one serves per-tensor ranges
/// and `auto`'s candidates.
public struct AbsmaxCalibrator: Calibrator {
    public init() {}

    public var name: String { "absmax" }

    public func range(_ x: UnsafeBufferPointer<Float>, observed: RangeStats, grid: CodeGrid) -> ClipRange {
        ClipRange.full(observed, symmetric: grid.symmetric)
    }
}
