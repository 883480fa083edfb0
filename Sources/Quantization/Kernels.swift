@_exported import QuantizationCore
internal import KernelsBaseline
internal import KernelsV3
internal import KernelsV4

/// The fast kernels: SIMD16 lanes, several accumulators, magic-number rounding (Sources/FastKernels, compiled
/// once per x86-64 instruction-set level). Each one agrees bit for bit with its twin in `ReferenceKernels`.
///
/// Sizes are checked here, once, then the call goes to the build of `variant`: by default
/// `KernelVariant.selected`, the best this CPU runs (or the one QUANTD_KERNELS names). Tests and benchmarks pass
/// another; one this CPU cannot run stops the program with the reason.
public enum Kernels {
    /// Decodes `count` little-endian values of `format` at `src` (unaligned allowed) into `dst`. f16: IEEE half
    /// including subnormals, inf and NaN (payload kept); bf16: upper half of f32; f64: rounded to nearest f32
    /// (overflow gives inf).
    public static func decode(
        _ src: UnsafeRawPointer, format: FloatFormat, count: Int, into dst: UnsafeMutablePointer<Float>,
        variant: KernelVariant = .selected
    ) {
        check(count >= 0, "negative count")
        build(variant).decode(src, format: format, count: count, into: dst)
    }

    /// min, max over finite values and the count of non-finite ones.
    public static func range(_ x: UnsafeBufferPointer<Float>, variant: KernelVariant = .selected) -> RangeStats {
        build(variant).range(x)
    }

    /// Row tile, row-major `rows` x `cols`, groups of `groupSize` along each row (groupSize >= cols means one group
    /// per row = per channel; a short last group is fine). Per group: range -> params -> codes, fused while the
    /// group is hot in cache. Writes scales[r * groupsPerRow + g] and, when !symmetric, zeroPoints likewise (an
    /// empty buffer when symmetric). q has rows*cols elements. Returns error stats of the whole tile.
    public static func quantizeGroups(
        _ x: UnsafeBufferPointer<Float>, rows: Int, cols: Int, groupSize: Int, symmetric: Bool,
        q: UnsafeMutableBufferPointer<Int8>, scales: UnsafeMutableBufferPointer<Float>,
        zeroPoints: UnsafeMutableBufferPointer<Int8>, variant: KernelVariant = .selected
    ) -> TileResult {
        quantizeGroups(x, rows: rows, cols: cols, groupSize: groupSize, grid: CodeGrid(symmetric: symmetric),
                       calibrator: nil, q: q, scales: scales, zeroPoints: zeroPoints, variant: variant)
    }

    /// `quantizeGroups` with the scale format of `grid` (8 bits) and a calibrator. Without a calibrator, each
    /// group's min/max range gives its params (the fused absmax path). With one, the group's range pass runs
    /// first (non-finite count, x^2, min/max), the calibrator picks the clipping range from the group's values
    /// while they are hot, and the apply step clamps and counts what it clips. A group holding NaN or Inf
    /// skips the calibrator (its min/max range is used; the caller refuses or keeps such a tensor). The
    /// calibrator's own error measurements (`squaredError`) run on `KernelVariant.selected`.
    public static func quantizeGroups(
        _ x: UnsafeBufferPointer<Float>, rows: Int, cols: Int, groupSize: Int, grid: CodeGrid,
        calibrator: (any Calibrator)?, q: UnsafeMutableBufferPointer<Int8>, scales: UnsafeMutableBufferPointer<Float>,
        zeroPoints: UnsafeMutableBufferPointer<Int8>, variant: KernelVariant = .selected
    ) -> TileResult {
        check(grid.bits == 8, "the kernels write 8-bit codes")
        let groups = checkTile(x.count, rows: rows, cols: cols, groupSize: groupSize, symmetric: grid.symmetric,
                               q: q.count, scales: scales.count, zeroPoints: zeroPoints.count)
        let kernels = build(variant)
        guard let calibrator else {
            return kernels.quantizeGroups(x, rows: rows, cols: cols, groupSize: groupSize, groups: groups, grid: grid,
                                          q: q, scales: scales, zeroPoints: zeroPoints)
        }
        var calibration = CalibrationCounts()
        var result = kernels.calibratedGroups(
            x, rows: rows, cols: cols, groupSize: groupSize, groups: groups, grid: grid, q: q, scales: scales,
            zeroPoints: zeroPoints
        ) { group, observed in
            let guarded = CalibrationGuard.range(calibrator, group, observed: observed, grid: grid)
            calibration.count(guarded.outcome)
            return guarded.range
        }
        result.stats.calibration = calibration
        return result
    }

    /// Sum of squared quantization errors of `x` (finite values) with `params` on `grid` (any bit width), without
    /// writing codes: what calibrators minimise. Float lane sums, moved into Double every 4096 values.
    public static func squaredError(
        _ x: UnsafeBufferPointer<Float>, params: QuantParams, grid: CodeGrid, variant: KernelVariant = .selected
    ) -> Double {
        build(variant).squaredError(x, params: params, grid: grid)
    }

    /// With fixed params (per-tensor granularity: the engine computes the tensor's range first).
    public static func quantize(
        _ x: UnsafeBufferPointer<Float>, params: QuantParams, symmetric: Bool, q: UnsafeMutableBufferPointer<Int8>,
        variant: KernelVariant = .selected
    ) -> ErrorStats {
        checkFixed(x.count, params: params, symmetric: symmetric, q: q.count)
        return build(variant).quantize(x, params: params, symmetric: symmetric, q: q)
    }

    /// Dequantize codes (for `quantd dequantize`): out[i] = scale * (q[i] - zp), groups as in quantizeGroups.
    public static func dequantizeGroups(
        _ q: UnsafeBufferPointer<Int8>, rows: Int, cols: Int, groupSize: Int, scales: UnsafeBufferPointer<Float>,
        zeroPoints: UnsafeBufferPointer<Int8>?, into out: UnsafeMutableBufferPointer<Float>,
        variant: KernelVariant = .selected
    ) {
        let groups = checkDequantize(q.count, rows: rows, cols: cols, groupSize: groupSize, scales: scales.count,
                                     zeroPoints: zeroPoints?.count, out: out.count)
        build(variant).dequantizeGroups(q, rows: rows, cols: cols, groupSize: groupSize, groups: groups,
                                        scales: scales, zeroPoints: zeroPoints, into: out)
    }

    /// The build of `variant`, which this CPU must be able to run.
    @inline(__always)
    private static func build(_ variant: KernelVariant) -> any KernelBuild.Type {
        check(variant.isSupported, "\(variant) kernels need \(variant.missingFeatures.joined(separator: ", ")), "
            + "which this CPU lacks")
        switch variant {
        case .baseline: return KernelsBaseline.FastKernels.self
        case .v3: return KernelsV3.FastKernels.self
        case .v4: return KernelsV4.FastKernels.self
        }
    }
}
