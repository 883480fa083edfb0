/// One build of the fast kernels. Sources/FastKernels is compiled once per x86-64 instruction-set level, into
/// KernelsBaseline, KernelsV3 and KernelsV4 (their folders hold links to its files), and each module's
/// `FastKernels` conforms to this. `Kernels` (in Quantization) checks the sizes and picks the build that runs
/// (`KernelVariant`), so a build indexes only what was checked: `groups` is the groups per row, and
/// `zeroPoints` is empty when the grid is symmetric, else as long as `scales`.
package protocol KernelBuild {
    static func decode(_ src: UnsafeRawPointer, format: FloatFormat, count: Int, into dst: UnsafeMutablePointer<Float>)

    static func range(_ x: UnsafeBufferPointer<Float>) -> RangeStats

    /// The fused path: each group's min/max gives its params (8-bit codes of `grid`).
    static func quantizeGroups(
        _ x: UnsafeBufferPointer<Float>, rows: Int, cols: Int, groupSize: Int, groups: Int, grid: CodeGrid,
        q: UnsafeMutableBufferPointer<Int8>, scales: UnsafeMutableBufferPointer<Float>,
        zeroPoints: UnsafeMutableBufferPointer<Int8>
    ) -> TileResult

    /// Per group: range pass, then `clip` (the calibrator, called only for groups without NaN or inf, in
    /// order) gives the clipping range, then params and clamped codes.
    static func calibratedGroups(
        _ x: UnsafeBufferPointer<Float>, rows: Int, cols: Int, groupSize: Int, groups: Int, grid: CodeGrid,
        q: UnsafeMutableBufferPointer<Int8>, scales: UnsafeMutableBufferPointer<Float>,
        zeroPoints: UnsafeMutableBufferPointer<Int8>, clip: (UnsafeBufferPointer<Float>, RangeStats) -> ClipRange
    ) -> TileResult

    static func squaredError(_ x: UnsafeBufferPointer<Float>, params: QuantParams, grid: CodeGrid) -> Double

    static func quantize(
        _ x: UnsafeBufferPointer<Float>, params: QuantParams, symmetric: Bool, q: UnsafeMutableBufferPointer<Int8>
    ) -> ErrorStats

    static func dequantizeGroups(
        _ q: UnsafeBufferPointer<Int8>, rows: Int, cols: Int, groupSize: Int, groups: Int,
        scales: UnsafeBufferPointer<Float>, zeroPoints: UnsafeBufferPointer<Int8>?,
        into out: UnsafeMutableBufferPointer<Float>
    )
}
