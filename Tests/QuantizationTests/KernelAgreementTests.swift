import Testing
import Quantization
import TestSupport

/// The fast kernels against the scalar reference: codes, scale bit patterns and zero points bit for bit, error
/// sums within the tolerance of Float lane sums. Each test runs on every kernel variant (`KernelVariant`) that this
/// CPU runs; `everyVariantRuns` is skipped, saying which ones it cannot run and why.
@Suite struct KernelAgreementTests {
    @Test("Every kernel variant is tested on this machine",
          .enabled(if: skippedVariants.isEmpty, "not every variant runs here: \(skippedVariants)"))
    func everyVariantRuns() {
        #expect(runnableVariants == KernelVariant.allCases)
    }

    /// Compares two tile runs; `sums` is false for data whose squares overflow Float (the fast sums are Float).
    func expectSame(_ fast: TileRun, _ reference: TileRun, sums: Bool, _ context: String) {
        #expect(fast.q == reference.q, "codes: \(context)")
        #expect(fast.scales.map(\.bitPattern) == reference.scales.map(\.bitPattern), "scales: \(context)")
        #expect(fast.zeroPoints == reference.zeroPoints, "zero points: \(context)")
        #expect(fast.result.nonFinite == reference.result.nonFinite, "non-finite: \(context)")
        let f = fast.result.stats, r = reference.result.stats
        #expect(f.count == r.count && f.clipped == r.clipped, "count/clipped: \(context)")
        guard sums else { return }
        #expect(close(f.sumSquaredError, r.sumSquaredError), "sse: \(context)")
        #expect(close(f.sumSquaredSignal, r.sumSquaredSignal), "sss: \(context)")
        if fast.result.nonFinite == 0 {
            #expect(f.maxAbsError.bitPattern == r.maxAbsError.bitPattern, "max error: \(context)")
        }
    }

    /// `quantizeGroups` agrees bit for bit on random shapes, group sizes and kinds of rows.
    @Test(arguments: runnableVariants) func quantizeGroupsAgreesBitForBitOnRandomShapesGroupSizesAndRows(_ variant: KernelVariant) {
        var rng = SeededRandom(seed: 1)
        for trial in 0..<120 {
            let rows = Int.random(in: 1...7, using: &rng)
            let cols = trial < 10 ? trial + 1 : Int.random(in: 1...300, using: &rng)
            var x: [Float] = []
            var kinds: [RowKind] = []
            for _ in 0..<rows {
                let kind = RowKind.allCases.randomElement(using: &rng)!
                kinds.append(kind)
                x += makeRow(kind, count: cols, using: &rng)
            }
            for groupSize in [1, 3, 16, 17, 32, 128, cols, cols + 7, Int.max] {
                for symmetric in [true, false] {
                    let context = "rows \(rows) cols \(cols) group \(groupSize) sym \(symmetric) kinds \(kinds)"
                    let fast = runTile(fastGroups(variant), x, rows: rows, cols: cols, groupSize: groupSize,
                                       symmetric: symmetric)
                    let reference = runTile(referenceGroups, x, rows: rows, cols: cols, groupSize: groupSize,
                                            symmetric: symmetric)
                    expectSame(fast, reference, sums: !kinds.contains(.huge), context)
                }
            }
        }
    }

    /// `quantizeGroups` agrees on rows long enough to flush the lane sums and to span several batches of groups
    /// (the fast kernel's batches hold 2048 values; a short group ends each row), with one row per channel.
    @Test(arguments: runnableVariants) func quantizeGroupsAgreesOnRowsLongEnoughToFlushTheLaneSums(_ variant: KernelVariant) {
        var rng = SeededRandom(seed: 2)
        let rows = 3, cols = 9_001
        let x = makeRow(.outliers, count: rows * cols, using: &rng)
        for groupSize in [1, 17, 128, 4096, cols] {
            for symmetric in [true, false] {
                let fast = runTile(fastGroups(variant), x, rows: rows, cols: cols, groupSize: groupSize,
                                   symmetric: symmetric)
                let reference = runTile(referenceGroups, x, rows: rows, cols: cols, groupSize: groupSize,
                                        symmetric: symmetric)
                expectSame(fast, reference, sums: true, "group \(groupSize) sym \(symmetric)")
            }
        }
    }

    @Test(arguments: runnableVariants) func nonFiniteValuesAreCountedIgnoredByTheRangeAndCodedTheSameByBothKernels(_ variant: KernelVariant) {
        var rng = SeededRandom(seed: 3)
        let rows = 4, cols = 77
        var x = makeRow(.gaussianish, count: rows * cols, using: &rng)
        let specials: [Float] = [.nan, .infinity, -.infinity, -.nan, Float(bitPattern: 0x7fc0_0001)]
        var positions: [Int] = []
        for (k, value) in specials.enumerated() {
            let i = k * 61 + 5
            x[i] = value
            positions.append(i)
        }
        for groupSize in [1, 16, 32, cols] {
            for symmetric in [true, false] {
                let fast = runTile(fastGroups(variant), x, rows: rows, cols: cols, groupSize: groupSize,
                                   symmetric: symmetric)
                let reference = runTile(referenceGroups, x, rows: rows, cols: cols, groupSize: groupSize,
                                        symmetric: symmetric)
                expectSame(fast, reference, sums: true, "group \(groupSize) sym \(symmetric)")
                #expect(fast.result.nonFinite == specials.count)
                // The range ignores them: every scale is finite and comes from the finite values.
                #expect(fast.scales.allSatisfy { $0.isFinite && $0 > 0 })
            }
        }
        var range = x.withUnsafeBufferPointer { Kernels.range($0, variant: variant) }
        #expect(range.nonFinite == specials.count && range.min.isFinite && range.max.isFinite)
        range = x.withUnsafeBufferPointer { ReferenceKernels.range($0) }
        #expect(range.nonFinite == specials.count)
    }

    @Test(arguments: runnableVariants) func perTensorQuantizeAgreesIncludingClippingParamsAndTiesAtTheEdge(_ variant: KernelVariant) {
        var rng = SeededRandom(seed: 4)
        for trial in 0..<60 {
            let count = Int.random(in: 0...700, using: &rng)
            let kind = RowKind.allCases.randomElement(using: &rng)!
            let x = makeRow(kind, count: count, using: &rng)
            let range = x.withUnsafeBufferPointer { ReferenceKernels.range($0) }
            let shrink: Float = trial % 3 == 0 ? 0.4 : 1
            var cases: [(QuantParams, Bool)] = [
                (.symmetric(absmax: range.absmax * shrink), true),
                (.asymmetric(min: range.min * shrink, max: range.max * shrink), false),
            ]
            if kind == .ties {
                // Scale 0.25 puts values on .5 ties; a zero point shifts the clipping edges onto some of them,
                // at both parities.
                let zeroPoint = Int8.random(in: -128...127, using: &rng)
                cases += [(QuantParams(scale: 0.25, zeroPoint: 0), true),
                          (QuantParams(scale: 0.25, zeroPoint: zeroPoint), false),
                          (QuantParams(scale: 0.25, zeroPoint: zeroPoint &+ 1), false)]
            }
            for (params, symmetric) in cases {
                var qFast = [Int8](repeating: 0, count: count), qReference = qFast
                let fast = x.withUnsafeBufferPointer { xs in
                    qFast.withUnsafeMutableBufferPointer {
                        Kernels.quantize(xs, params: params, symmetric: symmetric, q: $0, variant: variant)
                    }
                }
                let reference = x.withUnsafeBufferPointer { xs in
                    qReference.withUnsafeMutableBufferPointer {
                        ReferenceKernels.quantize(xs, params: params, symmetric: symmetric, q: $0)
                    }
                }
                let context = "\(kind) count \(count) \(params) sym \(symmetric)"
                #expect(qFast == qReference, "\(context)")
                #expect(fast.count == reference.count && fast.clipped == reference.clipped, "\(context)")
                if kind != .huge {
                    #expect(close(fast.sumSquaredError, reference.sumSquaredError), "\(context)")
                    #expect(close(fast.sumSquaredSignal, reference.sumSquaredSignal), "\(context)")
                    #expect(fast.maxAbsError == reference.maxAbsError, "\(context)")
                }
            }
        }
    }

    @Test(arguments: runnableVariants) func clippingCountsRoundedCodesOutsideTheRangeTiesAtTheEdgeIncluded(_ variant: KernelVariant) {
        let fast: (UnsafeBufferPointer<Float>, QuantParams, Bool, UnsafeMutableBufferPointer<Int8>) -> ErrorStats = {
            Kernels.quantize($0, params: $1, symmetric: $2, q: $3, variant: variant)
        }
        // scale 1: 127.5 rounds to 128 (clipped), 126.5 to 126, -127.5 to -128 (clipped), -127.4 to -127.
        let x: [Float] = [127.5, 126.5, -127.5, -127.4, 127.49, 1000, -.infinity, .nan]
        let expected: [Int8] = [127, 126, -127, -127, 127, 127, -127, 127]
        for kernel in [fast, ReferenceKernels.quantize] {
            var q = [Int8](repeating: 0, count: x.count)
            let stats = x.withUnsafeBufferPointer { xs in
                q.withUnsafeMutableBufferPointer {
                    kernel(xs, QuantParams(scale: 1, zeroPoint: 0), true, $0)
                }
            }
            #expect(q == expected)
            #expect(stats.clipped == 4)
        }
        // Asymmetric, zero point 1: codes [-128, 127] hold rounded values [-129, 126]; 126.5 rounds to 126
        // (kept), -129.5 to -130 (clipped), 127.5 to 128 (clipped).
        let y: [Float] = [126.5, -129.5, 127.5, -129.4]
        for kernel in [fast, ReferenceKernels.quantize] {
            var q = [Int8](repeating: 0, count: y.count)
            let stats = y.withUnsafeBufferPointer { ys in
                q.withUnsafeMutableBufferPointer { kernel(ys, QuantParams(scale: 1, zeroPoint: 1), false, $0) }
            }
            #expect(q == [127, -128, 127, -128])
            #expect(stats.clipped == 2)
        }
    }

    @Test(arguments: runnableVariants) func fastRangeAgreesWithTheReferenceOnRandomDataAndChunkEdges(_ variant: KernelVariant) {
        var rng = SeededRandom(seed: 5)
        for count in [0, 1, 15, 16, 17, 31, 33, 63, 65, 4095, 4096, 4097, 10_000] {
            var x = makeRow(.mixed, count: count, using: &rng)
            if count > 40 { x[count - 1] = .infinity }
            let fast = x.withUnsafeBufferPointer { Kernels.range($0, variant: variant) }
            let reference = x.withUnsafeBufferPointer { ReferenceKernels.range($0) }
            #expect(fast == reference, "count \(count)")
        }
        let empty = [Float]().withUnsafeBufferPointer { Kernels.range($0, variant: variant) }
        #expect(empty == .empty && empty.absmax == 0)
    }

    @Test(arguments: runnableVariants) func fastDequantizeGroupsMatchesTheReferenceBitForBit(_ variant: KernelVariant) {
        var rng = SeededRandom(seed: 6)
        let rows = 5, cols = 101
        let x = makeRow(.outliers, count: rows * cols, using: &rng)
        for groupSize in [1, 16, 33, cols] {
            for symmetric in [true, false] {
                let run = runTile(fastGroups(variant), x, rows: rows, cols: cols, groupSize: groupSize,
                                  symmetric: symmetric)
                var fast = [Float](repeating: .nan, count: x.count), reference = fast
                run.q.withUnsafeBufferPointer { q in
                    run.scales.withUnsafeBufferPointer { s in
                        run.zeroPoints.withUnsafeBufferPointer { z in
                            let zeroPoints = symmetric ? nil : z
                            fast.withUnsafeMutableBufferPointer {
                                Kernels.dequantizeGroups(q, rows: rows, cols: cols, groupSize: groupSize, scales: s,
                                                         zeroPoints: zeroPoints, into: $0, variant: variant)
                            }
                            reference.withUnsafeMutableBufferPointer {
                                ReferenceKernels.dequantizeGroups(q, rows: rows, cols: cols, groupSize: groupSize,
                                                                  scales: s, zeroPoints: zeroPoints, into: $0)
                            }
                        }
                    }
                }
                #expect(fast.map(\.bitPattern) == reference.map(\.bitPattern))
            }
        }
    }
}
