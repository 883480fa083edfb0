/// Plain scalar kernels that state each rule as directly as possible. They define the results the fast
/// `Kernels` must reproduce bit for bit (codes, scales, zero points, decoded values), and they sum errors in
/// Double so that the fast kernels' Float lane sums can be checked against them.
///
/// Declared here with `range`, which every build of the fast kernels falls back on when a group holds NaN or
/// inf; the other reference kernels are in Quantization (Sources/Quantization/ReferenceKernels.swift).
public enum ReferenceKernels {
    /// min, max over finite values and the count of non-finite ones.
    public static func range(_ x: UnsafeBufferPointer<Float>) -> RangeStats {
        var stats = RangeStats.empty
        for v in x {
            if v.isFinite {
                stats.min = Swift.min(stats.min, v)
                stats.max = Swift.max(stats.max, v)
            } else {
                stats.nonFinite += 1
            }
        }
        return stats
    }
}
