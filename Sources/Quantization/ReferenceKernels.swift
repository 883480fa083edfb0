import QuantizationCore

/// The reference kernels (declared in QuantizationCore with `range`, which the fast kernels fall back on).
extension ReferenceKernels {
    /// Decodes `count` little-endian values of `format` at `src` (unaligned allowed) into `dst`, one byte at a
    /// time and by value arithmetic rather than bit tricks.
    public static func decode(
        _ src: UnsafeRawPointer, format: FloatFormat, count: Int, into dst: UnsafeMutablePointer<Float>
    ) {
        check(count >= 0, "negative count")
        let width = format.bytesPerElement
        for i in 0..<count {
            var raw: UInt64 = 0
            for b in 0..<width {
                raw |= UInt64(src.load(fromByteOffset: i * width + b, as: UInt8.self)) << (8 * b)
            }
            switch format {
            case .f32: dst[i] = Float(bitPattern: UInt32(raw))
            case .bf16: dst[i] = Float(bitPattern: UInt32(raw) << 16)
            case .f64: dst[i] = Float(Double(bitPattern: raw))
            case .f16: dst[i] = halfValue(UInt16(raw))
            }
        }
    }

    /// IEEE binary16 by its definition: (-1)^s * 2^(e - 15) * 1.m, subnormals 2^-14 * 0.m; inf and NaN keep
    /// their payload in the top mantissa bits.
    static func halfValue(_ h: UInt16) -> Float {
        let negative = h >> 15 != 0
        let exponent = Int(h >> 10) & 0x1f
        let mantissa = UInt32(h & 0x3ff)
        if exponent == 0x1f {
            return Float(bitPattern: (negative ? 0x8000_0000 : 0) | 0x7f80_0000 | mantissa << 13)
        }
        let magnitude = exponent == 0
            ? Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
            : Float(1024 + mantissa) * Float(sign: .plus, exponent: exponent - 25, significand: 1)
        return negative ? -magnitude : magnitude
    }

    /// Same contract as `Kernels.quantizeGroups`.
    public static func quantizeGroups(
        _ x: UnsafeBufferPointer<Float>, rows: Int, cols: Int, groupSize: Int, symmetric: Bool,
        q: UnsafeMutableBufferPointer<Int8>, scales: UnsafeMutableBufferPointer<Float>,
        zeroPoints: UnsafeMutableBufferPointer<Int8>
    ) -> TileResult {
        quantizeGroups(x, rows: rows, cols: cols, groupSize: groupSize, grid: CodeGrid(symmetric: symmetric),
                       calibrator: nil, q: q, scales: scales, zeroPoints: zeroPoints)
    }

    /// Same contract as `Kernels.quantizeGroups` with a grid and a calibrator: per group, range, then the
    /// calibrator's clipping range (min/max without one, or when the group holds NaN or Inf), then codes.
    public static func quantizeGroups(
        _ x: UnsafeBufferPointer<Float>, rows: Int, cols: Int, groupSize: Int, grid: CodeGrid,
        calibrator: (any Calibrator)?, q: UnsafeMutableBufferPointer<Int8>, scales: UnsafeMutableBufferPointer<Float>,
        zeroPoints: UnsafeMutableBufferPointer<Int8>
    ) -> TileResult {
        check(grid.bits == 8, "the kernels write 8-bit codes")
        let symmetric = grid.symmetric
        let groups = checkTile(x.count, rows: rows, cols: cols, groupSize: groupSize, symmetric: symmetric,
                               q: q.count, scales: scales.count, zeroPoints: zeroPoints.count)
        var errors = ErrorAccumulator()
        var nonFinite = 0
        var calibration = CalibrationCounts()
        for r in 0..<rows {
            for g in 0..<groups {
                let start = r * cols + g * groupSize
                let end = start + Swift.min(groupSize, cols - g * groupSize)
                let group = UnsafeBufferPointer(rebasing: x[start..<end])
                let range = range(group)
                nonFinite += range.nonFinite
                var clip = ClipRange.full(range, symmetric: symmetric)
                if let calibrator, range.nonFinite == 0 {
                    let guarded = CalibrationGuard.range(calibrator, group, observed: range, grid: grid)
                    clip = guarded.range
                    calibration.count(guarded.outcome)
                }
                let params = grid.params(clip)
                scales[r * groups + g] = params.scale
                if !symmetric { zeroPoints[r * groups + g] = params.zeroPoint }
                let book = Codebook(params, grid: grid)
                for i in start..<end { q[i] = errors.add(x[i], book) }
            }
        }
        var stats = errors.stats
        stats.calibration = calibration
        return TileResult(stats: stats, nonFinite: nonFinite)
    }

    /// Same contract as `Kernels.quantize`.
    public static func quantize(
        _ x: UnsafeBufferPointer<Float>, params: QuantParams, symmetric: Bool, q: UnsafeMutableBufferPointer<Int8>
    ) -> ErrorStats {
        checkFixed(x.count, params: params, symmetric: symmetric, q: q.count)
        let book = Codebook(params, symmetric: symmetric)
        var errors = ErrorAccumulator()
        for i in x.indices { q[i] = errors.add(x[i], book) }
        return errors.stats
    }

    /// Error figures of `x` quantized with `params` on `grid`, at any bit width (the twin of
    /// `Kernels.squaredError`, with every figure; the codes are not kept).
    public static func measure(_ x: UnsafeBufferPointer<Float>, params: QuantParams, grid: CodeGrid) -> ErrorStats {
        let book = Codebook(params, grid: grid)
        var errors = ErrorAccumulator()
        for v in x { _ = errors.add(v, book) }
        return errors.stats
    }

    /// Same contract as `Kernels.dequantizeGroups`.
    public static func dequantizeGroups(
        _ q: UnsafeBufferPointer<Int8>, rows: Int, cols: Int, groupSize: Int, scales: UnsafeBufferPointer<Float>,
        zeroPoints: UnsafeBufferPointer<Int8>?, into out: UnsafeMutableBufferPointer<Float>
    ) {
        let groups = checkDequantize(q.count, rows: rows, cols: cols, groupSize: groupSize, scales: scales.count,
                                     zeroPoints: zeroPoints?.count, out: out.count)
        for r in 0..<rows {
            for c in 0..<cols {
                let g = r * groups + c / groupSize
                let zp = Int(zeroPoints?[g] ?? 0)
                out[r * cols + c] = scales[g] * Float(Int(q[r * cols + c]) - zp)
            }
        }
    }
}

/// The code of one value and its error, summed in Double.
private struct ErrorAccumulator {
    var stats = ErrorStats.zero

    /// code = clamp(round_half_even(x * (1 / scale)), lowest, highest) + zeroPoint; NaN codes as qmax.
    mutating func add(_ x: Float, _ book: Codebook) -> Int8 {
        let v = x * book.inverseScale
        var k = book.highest
        if !v.isNaN {
            let rounded = v.rounded(.toNearestOrEven)
            if rounded < book.lowest || rounded > book.highest { stats.clipped += 1 }
            k = Swift.min(Swift.max(rounded, book.lowest), book.highest)
        }
        let code = Int8(Int32(k) + book.zeroPoint)
        let dequantized = book.scale * Float(Int32(code) - book.zeroPoint)
        let error = Double(x) - Double(dequantized)
        stats.count += 1
        stats.sumSquaredError += error * error
        stats.sumSquaredSignal += Double(x) * Double(x)
        stats.maxAbsError = Swift.max(stats.maxAbsError, Float(abs(error)))
        return code
    }
}

/// Checks a tile's sizes at the public edge and returns the number of groups per row.
func checkTile(
    _ count: Int, rows: Int, cols: Int, groupSize: Int, symmetric: Bool, q: Int, scales: Int, zeroPoints: Int
) -> Int {
    check(rows >= 0 && cols >= 0 && groupSize >= 1, "bad tile shape")
    check(product(rows, cols) == count && q == count, "x and q must hold rows * cols elements")
    // groups <= cols, so rows * groups cannot overflow once rows * cols did not.
    let groups = groupsPerRow(cols: cols, groupSize: groupSize)
    check(scales == rows * groups, "scales must hold rows * groupsPerRow elements")
    check(zeroPoints == (symmetric ? 0 : rows * groups), "zeroPoints: empty when symmetric, else as scales")
    return groups
}

/// Checks per-tensor quantization arguments at the public edge.
func checkFixed(_ count: Int, params: QuantParams, symmetric: Bool, q: Int) {
    check(q == count, "q must hold as many elements as x")
    check(!symmetric || params.zeroPoint == 0, "symmetric params have zero point 0")
    check(params.scale.isFinite && params.scale >= .leastNormalMagnitude, "scale must be finite and normal")
}

/// Checks dequantization arguments at the public edge and returns the number of groups per row.
func checkDequantize(
    _ count: Int, rows: Int, cols: Int, groupSize: Int, scales: Int, zeroPoints: Int?, out: Int
) -> Int {
    check(rows >= 0 && cols >= 0 && groupSize >= 1, "bad tile shape")
    check(product(rows, cols) == count && out == count, "q and out must hold rows * cols elements")
    let groups = groupsPerRow(cols: cols, groupSize: groupSize)
    check(scales == rows * groups, "scales must hold rows * groupsPerRow elements")
    check(zeroPoints.map { $0 == scales } ?? true, "zeroPoints must match scales")
    return groups
}

/// ceil(cols / groupSize): groups along one row, the last one possibly short.
func groupsPerRow(cols: Int, groupSize: Int) -> Int { cols == 0 ? 0 : (cols - 1) / groupSize + 1 }
