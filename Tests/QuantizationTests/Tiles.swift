import Quantization
import TestSupport

/// The kinds of rows that stress the kernels.
enum RowKind: CaseIterable {
    case gaussianish, outliers, allZero, constantPositive, constantNegative, negativeOnly, positiveOnly, tiny, ties
    case huge, mixed
}

/// Fills `count` values of one kind.
func makeRow(_ kind: RowKind, count: Int, using rng: inout SeededRandom) -> [Float] {
    func uniform() -> Float { Float.random(in: -1...1, using: &rng) }
    switch kind {
    case .gaussianish:
        return (0..<count).map { _ in (uniform() + uniform() + uniform()) * 0.05 }
    case .outliers:
        return (0..<count).map { _ in Int.random(in: 0..<50, using: &rng) == 0 ? uniform() * 300 : uniform() * 0.1 }
    case .allZero:
        return (0..<count).map { _ in Bool.random(using: &rng) ? 0 : -0.0 }
    case .constantPositive:
        return Array(repeating: 0.731, count: count)
    case .constantNegative:
        return Array(repeating: -2.5e-3, count: count)
    case .negativeOnly:
        return (0..<count).map { _ in -Float.random(in: 0.01...3, using: &rng) }
    case .positiveOnly:
        return (0..<count).map { _ in Float.random(in: 0.5...7, using: &rng) }
    case .tiny:
        // Subnormals and the smallest normals.
        return (0..<count).map { _ in
            Float(Int.random(in: -1000...1000, using: &rng)) * .leastNonzeroMagnitude
        }
    case .ties:
        // With 31.75 (or -32 and 31.75) in the group the scale is exactly 0.25, and every other value lands on
        // a .5 tie after scaling.
        return (0..<count).map { i in
            if i == 0 { return 31.75 }
            if i == 1 { return -32 }
            return (Float(Int.random(in: -127...126, using: &rng)) + 0.5) * 0.25
        }
    case .huge:
        return (0..<count).map { _ in uniform() * 3e38 }
    case .mixed:
        let kinds: [RowKind] = [.gaussianish, .outliers, .ties, .tiny, .positiveOnly]
        return (0..<count).map { _ in makeRow(kinds.randomElement(using: &rng)!, count: 1, using: &rng)[0] }
    }
}

/// Outputs of one tile run.
struct TileRun {
    var q: [Int8]
    var scales: [Float]
    var zeroPoints: [Int8]
    var result: TileResult
}

typealias GroupKernel = @Sendable (
    UnsafeBufferPointer<Float>, Int, Int, Int, Bool, UnsafeMutableBufferPointer<Int8>,
    UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Int8>
) -> TileResult

/// The fast kernels of `variant` (the selected one by default).
func fastGroups(_ variant: KernelVariant = .selected) -> GroupKernel {
    { x, rows, cols, groupSize, symmetric, q, scales, zeroPoints in
        Kernels.quantizeGroups(x, rows: rows, cols: cols, groupSize: groupSize, symmetric: symmetric, q: q,
                               scales: scales, zeroPoints: zeroPoints, variant: variant)
    }
}
let referenceGroups: GroupKernel =
    ReferenceKernels.quantizeGroups(_:rows:cols:groupSize:symmetric:q:scales:zeroPoints:)

/// The kernel variants this CPU runs: each agreement test runs on every one of them.
let runnableVariants = KernelVariant.allCases.filter(\.isSupported)

/// The variants this CPU cannot run and what it lacks for each; empty when it runs them all.
let skippedVariants = KernelVariant.allCases.filter { !$0.isSupported }
    .map { "\($0): this CPU lacks \($0.missingFeatures.joined(separator: ", "))" }.joined(separator: "; ")

func groupsPerRow(cols: Int, groupSize: Int) -> Int { cols == 0 ? 0 : (cols - 1) / groupSize + 1 }

func runTile(
    _ kernel: GroupKernel, _ x: [Float], rows: Int, cols: Int, groupSize: Int, symmetric: Bool
) -> TileRun {
    let groups = rows * groupsPerRow(cols: cols, groupSize: groupSize)
    var q = [Int8](repeating: 99, count: x.count)
    var scales = [Float](repeating: .nan, count: groups)
    var zeroPoints = [Int8](repeating: 99, count: symmetric ? 0 : groups)
    let result = x.withUnsafeBufferPointer { xs in
        q.withUnsafeMutableBufferPointer { qs in
            scales.withUnsafeMutableBufferPointer { ss in
                zeroPoints.withUnsafeMutableBufferPointer { zs in
                    kernel(xs, rows, cols, groupSize, symmetric, qs, ss, zs)
                }
            }
        }
    }
    return TileRun(q: q, scales: scales, zeroPoints: zeroPoints, result: result)
}

/// Equal within a relative tolerance (plus a tiny absolute one for sums of underflowing squares); NaN only
/// matches NaN.
func close(_ a: Double, _ b: Double, relative: Double = 1e-4) -> Bool {
    if a.isNaN || b.isNaN { return a.isNaN && b.isNaN }
    if a.isInfinite || b.isInfinite { return a == b }
    return abs(a - b) <= relative * Swift.max(abs(a), abs(b)) + 1e-30
}
