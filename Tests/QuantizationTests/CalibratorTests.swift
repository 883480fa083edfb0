import Testing
import Quantization
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Heavy-tailed values: Laplace with scale `b` (|x| = -b ln u).
func laplace(_ count: Int, b: Float = 0.02, using rng: inout SeededRandom) -> [Float] {
    (0..<count).map { _ in
        let u = Float.random(in: Float.leastNormalMagnitude..<1, using: &rng)
        return (Bool.random(using: &rng) ? b : -b) * -logf(u)
    }
}

/// Sum of squared errors of `x` over `range` on `grid`, by the scalar reference (Double sums).
func referenceError(_ x: [Float], _ range: ClipRange, _ grid: CodeGrid) -> Double {
    x.withUnsafeBufferPointer { ReferenceKernels.measure($0, params: grid.params(range), grid: grid).sumSquaredError }
}

/// The range `calibrator` gives for all of `x` as one group.
func calibrate(_ calibrator: any Calibrator, _ x: [Float], _ grid: CodeGrid) -> ClipRange {
    x.withUnsafeBufferPointer { calibrator.range($0, observed: ReferenceKernels.range($0), grid: grid) }
}

@Suite struct CalibratorTests {
    static let all: [any Calibrator] = [AbsmaxCalibrator(), PercentileCalibrator(), MSECalibrator(),
                                        EntropyCalibrator(), AutoCalibrator()]

    /// absmax gives the observed range; percentile interpolates order statistics like numpy.
    @Test func absmaxGivesTheObservedRangeAndPercentileInterpolatesLikeNumpy() {
        var rng = SeededRandom(seed: 10)
        let x: [Float] = (0...1000).map { Float($0) * 0.01 - 2 }.shuffled(using: &rng)
        let sym = CodeGrid(symmetric: true), asym = CodeGrid(symmetric: false)
        #expect(calibrate(AbsmaxCalibrator(), x, sym) == ClipRange(lo: -8, hi: 8))
        #expect(calibrate(AbsmaxCalibrator(), x, asym) == ClipRange(lo: -2, hi: 8))
        // Sorted values are -2, -1.99, ..., 8 (1001 of them): the 99th percentile sits at position 990 exactly,
        // the 1st at position 10; the 99.95th halfway between positions 999 and 1000.
        let r = calibrate(PercentileCalibrator(percentile: 99), x, asym)
        #expect(abs(r.hi - 7.9) < 1e-5 && abs(r.lo - -1.9) < 1e-5)
        let h = calibrate(PercentileCalibrator(percentile: 99.95), x, asym)
        #expect(abs(h.hi - 7.995) < 1e-5)
        // |x| sorted: 0, 0.01, 0.01, ..., the 50th percentile of |x| is the median magnitude.
        let magnitudes = x.map { abs($0) }.sorted()
        let m = calibrate(PercentileCalibrator(percentile: 50), x, sym)
        #expect(m == ClipRange(lo: -magnitudes[500], hi: magnitudes[500]))
        #expect(calibrate(PercentileCalibrator(percentile: 100), x, asym) == ClipRange(lo: -2, hi: 8))
    }

    /// mse: no coarse grid point has less error than the range it picks (reference error in Double).
    @Test(arguments: [8, 4])
    func mseHasNoCoarseGridPointWithLessErrorThanTheRangeItPicks(bits: Int) {
        var rng = SeededRandom(seed: 11)
        for symmetric in [true, false] {
            let grid = CodeGrid(bits: bits, symmetric: symmetric)
            for trial in 0..<6 {
                let x = trial % 2 == 0 ? laplace(3000, using: &rng) : makeRow(.outliers, count: 2000, using: &rng)
                let chosen = referenceError(x, calibrate(MSECalibrator(), x, grid), grid)
                let full = x.withUnsafeBufferPointer {
                    ClipRange.full(ReferenceKernels.range($0), symmetric: symmetric)
                }
                for k in 0..<20 {
                    let e = referenceError(x, full.scaled(1 - 0.05 * Double(k)), grid)
                    #expect(chosen <= e * (1 + 1e-5), "bits \(bits) sym \(symmetric) trial \(trial) alpha step \(k)")
                }
            }
        }
    }

    @Test func entropyAgreesWithAPortOfTensorRTsKLSearchOnRandomHistograms() {
        var rng = SeededRandom(seed: 12)
        for trial in 0..<12 {
            var histogram = [Int](repeating: 0, count: EntropyCalibrator.bins)
            // A decaying bulk and a sparse tail, with empty bins in between.
            for b in 0..<EntropyCalibrator.bins {
                let bulk = Double(4000) * exp(-Double(b) / Double(20 + 15 * trial))
                histogram[b] = Int(bulk * Double.random(in: 0.5...1.5, using: &rng))
                if b > 300 && Int.random(in: 0..<40, using: &rng) == 0 { histogram[b] += 1 }
            }
            histogram[EntropyCalibrator.bins - 1] = 1
            for levels in [128, 8] {
                #expect(EntropyCalibrator.bestBinCount(histogram, levels: levels)
                        == denseKLSearch(histogram, levels: levels), "trial \(trial) levels \(levels)")
            }
        }
    }

    @Test func entropyClipsASparseFarTailButNotAUniformHistogram() {
        let uniform = [Int](repeating: 10, count: EntropyCalibrator.bins)
        #expect(EntropyCalibrator.bestBinCount(uniform, levels: 128) == 2048)
        var tailed = [Int](repeating: 0, count: EntropyCalibrator.bins)
        for b in 0..<256 { tailed[b] = 1000 - 3 * b }
        for b in stride(from: 1200, to: 2048, by: 200) { tailed[b] = 1 }
        tailed[2047] = 1
        let kept = EntropyCalibrator.bestBinCount(tailed, levels: 128)
        #expect(kept >= 256 && kept < 1200, "kept \(kept) bins")
        // From values: an exponential bulk (mean 40) and three far values up to 2048 (bins of width 1): the
        // threshold is kept * 2048 / 2048, below the far values.
        var rng = SeededRandom(seed: 20)
        var x: [Float] = (0..<5000).map { _ in -40 * logf(Float.random(in: 0.001..<1, using: &rng)) }
        x += [1200.5, -1600.5, 2048]
        let r = calibrate(EntropyCalibrator(), x, CodeGrid(symmetric: true))
        #expect(r.hi < 1200 && r.hi >= 128 && r.lo == -r.hi, "\(r)")
    }

    /// auto: never more error than any of its candidates, at 8 and 4 bits.
    @Test func autoHasNeverMoreErrorThanAnyOfItsCandidates() {
        var rng = SeededRandom(seed: 13)
        let auto = AutoCalibrator()
        for bits in [8, 4] {
            for symmetric in [true, false] {
                let grid = CodeGrid(bits: bits, symmetric: symmetric)
                for count in [128, 3000] {
                    let x = laplace(count, using: &rng)
                    let chosen = referenceError(x, calibrate(auto, x, grid), grid)
                    let tried = count >= EntropyCalibrator.bins ? auto.candidates + auto.largeGroupCandidates
                        : auto.candidates
                    for c in tried {
                        let e = referenceError(x, calibrate(c, x, grid), grid)
                        #expect(chosen <= e * (1 + 1e-5), "\(c.name) bits \(bits) sym \(symmetric) n \(count)")
                    }
                }
            }
        }
    }

    @Test func at8BitsMSEAndAutoAreNeverWorseThanAbsmaxOnAnyKindOfRow() {
        var rng = SeededRandom(seed: 14)
        for symmetric in [true, false] {
            let grid = CodeGrid(symmetric: symmetric)
            for kind in RowKind.allCases where kind != .huge {
                for count in [64, 500] {
                    let x = makeRow(kind, count: count, using: &rng)
                    let absmax = referenceError(x, calibrate(AbsmaxCalibrator(), x, grid), grid)
                    for c: any Calibrator in [MSECalibrator(), AutoCalibrator()] {
                        let e = referenceError(x, calibrate(c, x, grid), grid)
                        #expect(e <= absmax * (1 + 1e-5) + 1e-30, "\(c.name) \(kind) sym \(symmetric) n \(count)")
                    }
                }
            }
        }
    }

    @Test func at4BitsOnHeavyTailedDataPercentileAndMSEBeatAbsmaxClearly() {
        var rng = SeededRandom(seed: 15)
        for symmetric in [true, false] {
            let grid = CodeGrid(bits: 4, symmetric: symmetric)
            let x = laplace(16384, using: &rng)
            let absmax = referenceError(x, calibrate(AbsmaxCalibrator(), x, grid), grid)
            let percentile = referenceError(x, calibrate(PercentileCalibrator(percentile: 99.9), x, grid), grid)
            let mse = referenceError(x, calibrate(MSECalibrator(), x, grid), grid)
            #expect(percentile < 0.75 * absmax, "percentile \(percentile) absmax \(absmax) sym \(symmetric)")
            #expect(mse < 0.5 * absmax, "mse \(mse) absmax \(absmax) sym \(symmetric)")
        }
    }

    @Test func asymmetricBeatsSymmetricOnOneSidedDataForEveryCalibrator() {
        var rng = SeededRandom(seed: 16)
        let x = makeRow(.positiveOnly, count: 4096, using: &rng)
        for c in Self.all {
            let sym = referenceError(x, calibrate(c, x, CodeGrid(symmetric: true)), CodeGrid(symmetric: true))
            let asym = referenceError(x, calibrate(c, x, CodeGrid(symmetric: false)), CodeGrid(symmetric: false))
            #expect(asym < 0.5 * sym, "\(c.name): asymmetric \(asym), symmetric \(sym)")
        }
    }

    @Test(arguments: runnableVariants) func squaredErrorAgreesWithTheReferenceAtEveryBitWidthAndOnClippingParams(_ variant: KernelVariant) {
        var rng = SeededRandom(seed: 17)
        for bits in [2, 4, 8] {
            for symmetric in [true, false] {
                let grid = CodeGrid(bits: bits, symmetric: symmetric)
                for count in [1, 15, 33, 4097, 9000] {
                    let x = laplace(count, using: &rng)
                    for alpha in [1.0, 0.5, 0.1] {
                        let full = x.withUnsafeBufferPointer {
                            ClipRange.full(ReferenceKernels.range($0), symmetric: symmetric)
                        }
                        let params = grid.params(full.scaled(alpha))
                        let fast = x.withUnsafeBufferPointer {
                            Kernels.squaredError($0, params: params, grid: grid, variant: variant)
                        }
                        let reference = x.withUnsafeBufferPointer {
                            ReferenceKernels.measure($0, params: params, grid: grid).sumSquaredError
                        }
                        #expect(close(fast, reference), "bits \(bits) sym \(symmetric) n \(count) alpha \(alpha)")
                    }
                }
            }
        }
    }

    /// The calibrated group kernel agrees with its reference twin bit for bit, for every calibrator and format.
    @Test(arguments: runnableVariants) func calibratedGroupKernelAgreesWithItsReferenceBitForBit(_ variant: KernelVariant) {
        var rng = SeededRandom(seed: 18)
        for trial in 0..<8 {
            let rows = Int.random(in: 1...4, using: &rng), cols = Int.random(in: 1...700, using: &rng)
            var x: [Float] = []
            for _ in 0..<rows {
                let kind = [RowKind.gaussianish, .outliers, .positiveOnly, .ties, .mixed].randomElement(using: &rng)!
                x += makeRow(kind, count: cols, using: &rng)
            }
            if trial == 7 { x[0] = .nan }
            for c in Self.all {
                for format in ScaleFormat.allCases {
                    for symmetric in [true, false] {
                        for groupSize in [16, 128, cols] {
                            let grid = CodeGrid(symmetric: symmetric, scaleFormat: format)
                            let fast = runCalibrated(fastCalibrated(variant), x, rows, cols, groupSize, grid, c)
                            let reference = runCalibrated(ReferenceKernels.quantizeGroups, x, rows, cols, groupSize,
                                                          grid, c)
                            let context = "\(c.name) \(format) sym \(symmetric) group \(groupSize) trial \(trial)"
                            #expect(fast.q == reference.q, "codes: \(context)")
                            #expect(fast.scales.map(\.bitPattern) == reference.scales.map(\.bitPattern), "\(context)")
                            #expect(fast.zeroPoints == reference.zeroPoints, "zero points: \(context)")
                            #expect(fast.result.stats.clipped == reference.result.stats.clipped, "\(context)")
                            #expect(fast.result.nonFinite == reference.result.nonFinite, "\(context)")
                            if trial != 7 {
                                #expect(close(fast.result.stats.sumSquaredError,
                                              reference.result.stats.sumSquaredError), "sse: \(context)")
                            }
                        }
                    }
                }
            }
        }
    }

    /// f16 and bf16 scales: stored exactly, never below the f32 scale, and values come back within scale/2.
    @Test func halfPrecisionScalesAreExactNeverBelowF32AndKeepValuesWithinHalfAScale() {
        var rng = SeededRandom(seed: 19)
        for format in [ScaleFormat.f16, .bf16] {
            for kind in [RowKind.gaussianish, .outliers, .tiny, .positiveOnly, .negativeOnly, .huge] {
                let x = makeRow(kind, count: 300, using: &rng)
                for symmetric in [true, false] {
                    let grid = CodeGrid(symmetric: symmetric, scaleFormat: format)
                    let run = runCalibrated(fastCalibrated(), x, 1, 300, 300, grid, nil)
                    let scale = run.scales[0]
                    #expect(format.roundUp(scale) == scale, "\(format) \(kind): scale \(scale) not representable")
                    let f32 = x.withUnsafeBufferPointer {
                        CodeGrid(symmetric: symmetric).params(.full(ReferenceKernels.range($0), symmetric: symmetric))
                    }
                    let capped = scale == format.roundUp(.greatestFiniteMagnitude)
                    #expect(scale >= f32.scale || capped, "\(format) \(kind): \(scale) below \(f32.scale)")
                    guard !capped else { continue }
                    let zp = symmetric ? 0 : Int(run.zeroPoints[0])
                    for (v, q) in zip(x, run.q) {
                        let error = abs(Double(v) - Double(scale) * Double(Int(q) - zp))
                        #expect(error <= Double(scale) * 0.5 * (1 + 1e-6), "\(format) \(kind) sym \(symmetric)")
                    }
                }
            }
        }
        #expect(ScaleFormat.f16.roundUp(1e-9) == Float(Float16.leastNonzeroMagnitude))
        #expect(ScaleFormat.f16.roundUp(1e6) == 65504)
        #expect(ScaleFormat.bf16.roundUp(1.0000001) == Float(bitPattern: 0x3f81_0000))
        #expect(ScaleFormat.bf16.roundUp(.greatestFiniteMagnitude) == Float(bitPattern: 0x7f7f_0000))
    }
}

typealias CalibratedKernel = (
    UnsafeBufferPointer<Float>, Int, Int, Int, CodeGrid, (any Calibrator)?, UnsafeMutableBufferPointer<Int8>,
    UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Int8>
) -> TileResult

/// The fast calibrated group kernel of `variant` (the selected one by default).
func fastCalibrated(_ variant: KernelVariant = .selected) -> CalibratedKernel {
    {
        Kernels.quantizeGroups($0, rows: $1, cols: $2, groupSize: $3, grid: $4, calibrator: $5, q: $6, scales: $7,
                               zeroPoints: $8, variant: variant)
    }
}

func runCalibrated(_ kernel: CalibratedKernel, _ x: [Float], _ rows: Int, _ cols: Int, _ groupSize: Int,
                   _ grid: CodeGrid, _ calibrator: (any Calibrator)?) -> TileRun {
    let groups = rows * groupsPerRow(cols: cols, groupSize: groupSize)
    var q = [Int8](repeating: 99, count: x.count)
    var scales = [Float](repeating: .nan, count: groups)
    var zeroPoints = [Int8](repeating: 99, count: grid.symmetric ? 0 : groups)
    let result = x.withUnsafeBufferPointer { xs in
        q.withUnsafeMutableBufferPointer { qs in
            scales.withUnsafeMutableBufferPointer { ss in
                zeroPoints.withUnsafeMutableBufferPointer { zs in
                    kernel(xs, rows, cols, groupSize, grid, calibrator, qs, ss, zs)
                }
            }
        }
    }
    return TileRun(q: q, scales: scales, zeroPoints: zeroPoints, result: result)
}

/// TensorRT's search as its Python reference writes it, on dense arrays: for each candidate i, P is the first i
/// bins with the rest folded into bin i - 1; Q merges the unfolded bins into `levels` chunks
/// (np.linspace(0, i, levels + 1)) and spreads each chunk's sum over its non-empty bins; KL(P || Q) after
/// normalising both, infinite where Q is 0 and P is not. Candidates as the calibrator's (every 16 bins from
/// `levels`); the last minimum wins (within rounding).
func denseKLSearch(_ histogram: [Int], levels: Int) -> Int {
    let bins = histogram.count
    var candidates = Array(stride(from: levels, through: bins, by: 16))
    if candidates.last != bins { candidates.append(bins) }
    var best = Double.infinity, bestI = bins
    for i in candidates {
        let original = histogram[0..<i].map(Double.init)
        var p = original
        p[i - 1] += Double(histogram[i...].reduce(0, +))
        var q = [Double](repeating: 0, count: i)
        var chunkSum = [Double](repeating: 0, count: levels), chunkCount = [Double](repeating: 0, count: levels)
        let space = (0...levels).map { Double($0) * Double(i) / Double(levels) }
        func chunk(_ b: Int) -> Int {
            var j = 0
            while j + 1 < space.count && space[j + 1] <= Double(b) { j += 1 }
            return j
        }
        for b in 0..<i where original[b] > 0 {
            chunkSum[chunk(b)] += original[b]
            chunkCount[chunk(b)] += 1
        }
        for b in 0..<i where original[b] > 0 { q[b] = chunkSum[chunk(b)] / chunkCount[chunk(b)] }
        let pt = p.reduce(0, +), qt = q.reduce(0, +)
        var kl = 0.0
        for b in 0..<i where p[b] > 0 {
            kl += q[b] > 0 ? (p[b] / pt) * log((p[b] / pt) / (q[b] / qt)) : .infinity
        }
        guard kl.isFinite else { continue }
        // Same scale as the calibrator's figure (KL times the count), so that ties compare alike.
        kl *= pt
        if kl <= best + 1e-9 * Swift.max(1, abs(best)) {
            bestI = i
            best = Swift.min(best, kl)
        }
    }
    return bestI
}

@Suite struct SelectionTests {
    /// Percentile selection gives the order statistics of a full sort, ties and duplicates included.
    @Test func percentileSelectionGivesTheOrderStatisticsOfAFullSort() {
        var rng = SeededRandom(seed: 30)
        for trial in 0..<200 {
            let n = trial < 5 ? trial + 1 : Int.random(in: 1...600, using: &rng)
            let values: [Float] = (0..<n).map { _ in
                trial % 3 == 0 ? Float(Int.random(in: -3...3, using: &rng)) : Float.random(in: -5...5, using: &rng)
            }
            let sorted = values.sorted()
            for q in [0.0, 0.001, 0.25, 0.5, 0.9, 0.9999, 1.0] {
                var copy = values
                let position = q * Double(n - 1)
                let i = Int(position.rounded(.down)), f = position - Double(i)
                let expected = i + 1 < n && f > 0
                    ? Float(Double(sorted[i]) + (Double(sorted[i + 1]) - Double(sorted[i])) * f) : sorted[i]
                #expect(PercentileCalibrator.quantile(&copy, q) == expected, "n \(n) q \(q) trial \(trial)")
            }
        }
    }
}
