import Testing
import Quantization
import TestSupport

/// The conventions themselves: params, rounding, round trip error, and the error figures.
@Suite struct SemanticsTests {
    /// Params: scale absmax/127 or range/255, zero kept exact, degenerate ranges safe.
    @Test func paramsScaleByAbsmaxOrRangeKeepZeroExactAndSurviveDegenerateRanges() {
        #expect(QuantParams.symmetric(absmax: 0) == QuantParams(scale: 1, zeroPoint: 0))
        #expect(QuantParams.symmetric(absmax: 12.7) == QuantParams(scale: 12.7 / 127, zeroPoint: 0))
        #expect(QuantParams.symmetric(absmax: .nan) == QuantParams(scale: 1, zeroPoint: 0))
        #expect(QuantParams.symmetric(absmax: .infinity).scale.isFinite)
        #expect(QuantParams.symmetric(absmax: .leastNonzeroMagnitude).scale == .leastNormalMagnitude)
        #expect(QuantParams.asymmetric(min: 0, max: 0) == QuantParams(scale: 1, zeroPoint: 0))
        #expect(QuantParams.asymmetric(min: .infinity, max: -.infinity) == QuantParams(scale: 1, zeroPoint: 0))
        // [-32, 31.75]: scale 0.25, zero point 0. A positive-only range starts at 0: zero point -128.
        #expect(QuantParams.asymmetric(min: -32, max: 31.75) == QuantParams(scale: 0.25, zeroPoint: 0))
        #expect(QuantParams.asymmetric(min: 2, max: 51) == QuantParams(scale: 0.2, zeroPoint: -128))
        #expect(QuantParams.asymmetric(min: -51, max: -2) == QuantParams(scale: 0.2, zeroPoint: 127))
        // The widest range does not overflow.
        let widest = QuantParams.asymmetric(min: -.greatestFiniteMagnitude, max: .greatestFiniteMagnitude)
        #expect(widest.scale.isFinite && widest.zeroPoint == 0)
    }

    /// Constant rows: symmetric codes are ±127; asymmetric ranges include 0.
    @Test func constantRowsGiveSymmetricCodesOf127AndAsymmetricRangesThatHoldZero() {
        for (value, symmetric, code, zeroPoint) in [
            (Float(0.731), true, Int8(127), Int8(0)), (-2.5e-3, true, -127, 0),
            (0.731, false, 127, -128), (-2.5e-3, false, -128, 127), (0, true, 0, 0), (0, false, 0, 0),
        ] {
            let run = runTile(fastGroups(), Array(repeating: value, count: 19), rows: 1, cols: 19, groupSize: 8,
                              symmetric: symmetric)
            #expect(run.q.allSatisfy { $0 == code }, "\(value) \(symmetric)")
            #expect(run.zeroPoints.allSatisfy { $0 == zeroPoint })
            if value == 0 { #expect(run.scales == [1, 1, 1] && run.result.stats.sumSquaredError == 0) }
        }
    }

    @Test func roundingIsHalfToEvenAfterScaling() {
        // scale 0.25 (absmax 31.75): x / scale = 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5.
        let x: [Float] = [31.75, 0.125, 0.375, 0.625, -0.125, -0.375, -0.625, 31.625]
        for kernel in [fastGroups(), referenceGroups] {
            let run = runTile(kernel, x, rows: 1, cols: x.count, groupSize: .max, symmetric: true)
            #expect(run.scales == [0.25])
            #expect(run.q == [127, 0, 2, 2, 0, -2, -2, 126])
            #expect(run.result.stats.clipped == 0)
        }
    }

    /// Round trip: |x - dequantized| <= scale/2 for every value, on every kind of row.
    @Test func everyValueComesBackWithinHalfAScaleOnEveryKindOfRow() {
        var rng = SeededRandom(seed: 9)
        let rows = RowKind.allCases.count, cols = 133
        let x = RowKind.allCases.flatMap { makeRow($0, count: cols, using: &rng) }
        for groupSize in [1, 17, 32, cols] {
            for symmetric in [true, false] {
                let run = runTile(fastGroups(), x, rows: rows, cols: cols, groupSize: groupSize, symmetric: symmetric)
                var out = [Float](repeating: .nan, count: x.count)
                run.q.withUnsafeBufferPointer { q in
                    run.scales.withUnsafeBufferPointer { s in
                        run.zeroPoints.withUnsafeBufferPointer { z in
                            out.withUnsafeMutableBufferPointer {
                                Kernels.dequantizeGroups(q, rows: rows, cols: cols, groupSize: groupSize, scales: s,
                                                         zeroPoints: symmetric ? nil : z, into: $0)
                            }
                        }
                    }
                }
                let groups = groupsPerRow(cols: cols, groupSize: groupSize)
                var worst = 0.0
                for i in x.indices {
                    let scale = Double(run.scales[(i / cols) * groups + (i % cols) / groupSize])
                    let error = abs(Double(x[i]) - Double(out[i]))
                    // Half a step, plus the float rounding of x * (1/scale) and of the product scale * k.
                    let bound = scale / 2 * (1 + 0x1p-20) + Double(abs(x[i])) * 0x1p-22
                    worst = Swift.max(worst, error / bound)
                }
                #expect(worst <= 1, "group \(groupSize) sym \(symmetric): worst error / bound \(worst)")
            }
        }
    }

    @Test func errorStatsOfATileEqualADoubleComputationFromItsCodes() {
        var rng = SeededRandom(seed: 10)
        let rows = 6, cols = 250, groupSize = 32
        let x = makeRow(.outliers, count: rows * cols, using: &rng)
        for symmetric in [true, false] {
            let run = runTile(fastGroups(), x, rows: rows, cols: cols, groupSize: groupSize, symmetric: symmetric)
            let groups = groupsPerRow(cols: cols, groupSize: groupSize)
            var sse = 0.0, sss = 0.0, maxError = 0.0
            for i in x.indices {
                let g = (i / cols) * groups + (i % cols) / groupSize
                let zeroPoint = symmetric ? 0 : Double(run.zeroPoints[g])
                let dequantized = Double(run.scales[g]) * (Double(run.q[i]) - zeroPoint)
                let error = Double(x[i]) - dequantized
                sse += error * error
                sss += Double(x[i]) * Double(x[i])
                maxError = Swift.max(maxError, abs(error))
            }
            let stats = run.result.stats
            #expect(stats.count == x.count && stats.clipped == 0)
            #expect(close(stats.sumSquaredError, sse, relative: 1e-3) && close(stats.sumSquaredSignal, sss))
            // The kernels dequantize in Float: each product may differ from the Double one by half an ulp.
            let absmax = Double(x.map { abs($0) }.max()!)
            #expect(abs(Double(stats.maxAbsError) - maxError) <= absmax * 0x1p-23)
            #expect(close(stats.relativeRMSE, (sse / sss).squareRoot(), relative: 1e-3))
            #expect(stats.sqnrDB > 20 && stats.sqnrDB < 80)
        }
    }

    @Test func metricsOfDegenerateCasesAndOfAMerge() {
        #expect(ErrorStats.zero.relativeRMSE == 0 && ErrorStats.zero.sqnrDB == .infinity)
        #expect(ErrorStats.zero.clippedFraction == 0)
        var a = ErrorStats(count: 10, sumSquaredError: 1, sumSquaredSignal: 100, maxAbsError: 0.5, clipped: 1)
        #expect(abs(a.relativeRMSE - 0.1) < 1e-15 && abs(a.sqnrDB - 20) < 1e-12 && a.clippedFraction == 0.1)
        a.merge(ErrorStats(count: 30, sumSquaredError: 3, sumSquaredSignal: 0, maxAbsError: 2, clipped: 3))
        #expect(a == ErrorStats(count: 40, sumSquaredError: 4, sumSquaredSignal: 100, maxAbsError: 2, clipped: 4))
        let noSignal = ErrorStats(count: 1, sumSquaredError: 1, sumSquaredSignal: 0, maxAbsError: 1, clipped: 0)
        #expect(noSignal.relativeRMSE == .infinity)

        var range = RangeStats.empty
        range.merge(RangeStats(min: -3, max: 1, nonFinite: 2))
        range.merge(RangeStats(min: 0.5, max: 2, nonFinite: 1))
        #expect(range == RangeStats(min: -3, max: 2, nonFinite: 3) && range.absmax == 3)
    }
}
