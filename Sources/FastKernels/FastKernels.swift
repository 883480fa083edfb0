#if !_endian(little)
#error("The kernels read little-endian tensor data with native loads")
#endif

import CPrefetch
import QuantizationCore

/// The fast kernels: SIMD16 lanes, several accumulators, magic-number rounding (see SWIFT-PERFORMANCE.md for why
/// these idioms and no others). Each one agrees bit for bit with its twin in `ReferenceKernels`.
///
/// This file is compiled once per instruction-set level (KernelsBaseline, KernelsV3, KernelsV4 link to it; see
/// Package.swift), each module with its own `-march`, and `Kernels` in Quantization calls the build the CPU runs.
/// The contracts are those of `Kernels`, which checks the sizes first: nothing here checks them again. Nothing
/// here is `@inlinable`, so that no loop is compiled again in a client built with other flags.
package enum FastKernels: KernelBuild {
    package static func decode(
        _ src: UnsafeRawPointer, format: FloatFormat, count: Int, into dst: UnsafeMutablePointer<Float>
    ) {
        // Plain loops over branch-free element code: LLVM vectorises each of them.
        switch format {
        case .f32:
            UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)
        case .bf16:
            for i in 0..<count {
                dst[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
            }
        case .f16:
            for i in 0..<count {
                dst[i] = Float(bitPattern: halfToFloatBits(UInt32(src.loadUnaligned(fromByteOffset: 2 * i,
                                                                                     as: UInt16.self))))
            }
        case .f64:
            for i in 0..<count {
                dst[i] = Float(Double(bitPattern: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
            }
        }
    }

    package static func range(_ x: UnsafeBufferPointer<Float>) -> RangeStats {
        guard let base = x.baseAddress else { return .empty }
        var stats = RangeStats.empty
        var start = 0
        // Chunks bound the work of the rare scalar recount when a chunk holds NaN or inf.
        while start < x.count {
            let n = Swift.min(4096, x.count - start)
            var unused = Floats()
            stats.merge(groupRange(base + start, n, &unused, withSignal: false))
            start += n
        }
        return stats
    }

    /// Groups go in batches of about `batchValues` values (in L1), in three passes per batch: ranges, then
    /// params, then codes. Each pass is a loop of independent steps, so the core overlaps one group's divisions
    /// (scale, then its inverse) with the next group's work instead of waiting on them group after group.
    package static func quantizeGroups(
        _ x: UnsafeBufferPointer<Float>, rows: Int, cols: Int, groupSize: Int, groups: Int, grid: CodeGrid,
        q: UnsafeMutableBufferPointer<Int8>, scales: UnsafeMutableBufferPointer<Float>,
        zeroPoints: UnsafeMutableBufferPointer<Int8>
    ) -> TileResult {
        guard let xs = x.baseAddress, let qs = q.baseAddress, let ss = scales.baseAddress, groups > 0 else {
            return TileResult(stats: .zero, nonFinite: 0)
        }
        let symmetric = grid.symmetric
        let format = grid.scaleFormat
        let batch = Swift.min(groups, Swift.max(1, batchValues / groupSize))
        var errors = LaneErrors()
        var nonFinite = 0
        withUnsafeTemporaryAllocation(of: RangeStats.self, capacity: batch) { ranges in
            withUnsafeTemporaryAllocation(of: Codebook.self, capacity: batch) { books in
                guard let ranges = ranges.baseAddress, let books = books.baseAddress else { return }
                for r in 0..<rows {
                    let row = xs + r * cols, codes = qs + r * cols
                    var first = 0
                    while first < groups {
                        let count = Swift.min(batch, groups - first)
                        // Calibration step: the group's range gives its params (min/max calibration). Other
                        // calibrators take `calibratedGroups`, which keeps this loop as it is.
                        for k in 0..<count {
                            let c = (first + k) * groupSize
                            let n = Swift.min(groupSize, cols - c)
                            if symmetric {
                                let (absmax, bad) = groupAbsmax(row + c, n, &errors.squaredSignal)
                                ranges[k] = RangeStats(min: -absmax, max: absmax, nonFinite: bad)
                            } else {
                                ranges[k] = groupRange(row + c, n, &errors.squaredSignal, withSignal: true)
                            }
                        }
                        for k in 0..<count {
                            let g = r * groups + first + k
                            let range = ranges[k]
                            nonFinite += range.nonFinite
                            let params: QuantParams = symmetric
                                ? .symmetric(absmax: range.max, bits: 8, format: format)
                                : .asymmetric(min: range.min, max: range.max, bits: 8, format: format)
                            ss[g] = params.scale
                            if !symmetric { zeroPoints[g] = params.zeroPoint }
                            (books + k).initialize(to: Codebook(params, symmetric: symmetric))
                        }
                        // The next batch's values follow this one's in memory: while coding this batch, each
                        // value's line `span` ahead is fetched (none in the tile's last batches).
                        let base = r * cols + first * groupSize
                        let span = Swift.min(count * groupSize, cols - first * groupSize)
                        let prefetch = base + 2 * span <= x.count
                        for k in 0..<count {
                            let c = (first + k) * groupSize
                            let n = Swift.min(groupSize, cols - c)
                            let range = ranges[k], book = books[k]
                            // When neither end of the range can round outside the codes, nothing in the group
                            // is clipped: the apply step can skip its clamps and clip count (which a calibrator
                            // that clips needs).
                            let inverse = book.inverseScale
                            if range.nonFinite == 0 && range.min * inverse > book.clipTo
                                && range.max * inverse < book.clipFrom {
                                apply(row + c, codes + c, n, book, &errors, UnclippedGroup.self,
                                      ahead: prefetch ? UnsafeRawPointer(row + c + span) : nil)
                            } else {
                                apply(row + c, codes + c, n, book, &errors, ClippingGroup.self,
                                      ahead: prefetch ? UnsafeRawPointer(row + c + span) : nil)
                            }
                        }
                        first += count
                    }
                    errors.flush()
                }
            }
        }
        return TileResult(stats: errors.total, nonFinite: nonFinite)
    }

    /// Values per batch of groups in `quantizeGroups`: 8 KiB of fp32, well inside L1.
    static var batchValues: Int { 2048 }

    /// The calibrated twin of the fused loop: range pass, calibrator (`clip`), params, clamped apply.
    package static func calibratedGroups(
        _ x: UnsafeBufferPointer<Float>, rows: Int, cols: Int, groupSize: Int, groups: Int, grid: CodeGrid,
        q: UnsafeMutableBufferPointer<Int8>, scales: UnsafeMutableBufferPointer<Float>,
        zeroPoints: UnsafeMutableBufferPointer<Int8>, clip: (UnsafeBufferPointer<Float>, RangeStats) -> ClipRange
    ) -> TileResult {
        guard let xs = x.baseAddress, let qs = q.baseAddress else { return TileResult(stats: .zero, nonFinite: 0) }
        var errors = LaneErrors()
        var nonFinite = 0
        for r in 0..<rows {
            var c = 0
            var g = r * groups
            while c < cols {
                let n = Swift.min(groupSize, cols - c)
                let p = xs + (r * cols + c)
                let range = groupRange(p, n, &errors.squaredSignal, withSignal: true)
                nonFinite += range.nonFinite
                let clipRange = range.nonFinite == 0
                    ? clip(UnsafeBufferPointer(start: p, count: n), range) : .full(range, symmetric: grid.symmetric)
                let params = grid.params(clipRange)
                scales[g] = params.scale
                if !grid.symmetric { zeroPoints[g] = params.zeroPoint }
                apply(p, qs + (r * cols + c), n, Codebook(params, grid: grid), &errors, ClippingGroup.self)
                c += n
                g += 1
            }
            errors.flush()
        }
        return TileResult(stats: errors.total, nonFinite: nonFinite)
    }

    /// Float lane sums, moved into Double every 4096 values.
    package static func squaredError(_ x: UnsafeBufferPointer<Float>, params: QuantParams, grid: CodeGrid) -> Double {
        guard let xs = x.baseAddress else { return 0 }
        let book = Codebook(params, grid: grid)
        let raw = UnsafeRawPointer(xs)
        let inverse = Floats(repeating: book.inverseScale), scale = Floats(repeating: book.scale)
        let lowest = Floats(repeating: book.lowest), highest = Floats(repeating: book.highest)
        let magic = Floats(repeating: roundingMagic)
        var total = 0.0
        var start = 0
        while start < x.count {
            let n = Swift.min(LaneErrors.flushEvery, x.count - start)
            var s0 = Floats(), s1 = Floats()
            var i = 0
            while i &+ 32 <= n {
                let x0 = raw.loadUnaligned(fromByteOffset: 4 &* (start &+ i), as: Floats.self)
                let x1 = raw.loadUnaligned(fromByteOffset: 4 &* (start &+ i) &+ 64, as: Floats.self)
                var v0 = x0 * inverse, v1 = x1 * inverse
                v0 = highest.replacing(with: v0, where: v0 .< highest)
                v0 = lowest.replacing(with: v0, where: v0 .> lowest)
                v1 = highest.replacing(with: v1, where: v1 .< highest)
                v1 = lowest.replacing(with: v1, where: v1 .> lowest)
                let e0 = x0 - ((v0 + magic) - magic) * scale
                let e1 = x1 - ((v1 + magic) - magic) * scale
                s0 += e0 * e0
                s1 += e1 * e1
                i &+= 32
            }
            s0 += s1
            var tail: Float = 0
            while i < n {
                let xv = xs[start &+ i]
                var v = xv * book.inverseScale
                v = v < book.highest ? v : book.highest
                v = v > book.lowest ? v : book.lowest
                let e = xv - ((v + roundingMagic) - roundingMagic) * book.scale
                tail += e * e
                i &+= 1
            }
            var sum = Double(tail)
            for lane in 0..<16 { sum += Double(s0[lane]) }
            total += sum
            start += n
        }
        return total
    }

    package static func quantize(
        _ x: UnsafeBufferPointer<Float>, params: QuantParams, symmetric: Bool, q: UnsafeMutableBufferPointer<Int8>
    ) -> ErrorStats {
        guard let xs = x.baseAddress, let qs = q.baseAddress else { return .zero }
        let book = Codebook(params, symmetric: symmetric)
        var errors = LaneErrors()
        apply(xs, qs, x.count, book, &errors, FixedParams.self)
        errors.flush()
        return errors.total
    }

    package static func dequantizeGroups(
        _ q: UnsafeBufferPointer<Int8>, rows: Int, cols: Int, groupSize: Int, groups: Int,
        scales: UnsafeBufferPointer<Float>, zeroPoints: UnsafeBufferPointer<Int8>?,
        into out: UnsafeMutableBufferPointer<Float>
    ) {
        guard let qs = q.baseAddress, let os = out.baseAddress else { return }
        for r in 0..<rows {
            var c = 0
            var g = r * groups
            while c < cols {
                let n = Swift.min(groupSize, cols - c)
                let scale = scales[g]
                let zp = Int32(zeroPoints?[g] ?? 0)
                let qp = qs + (r * cols + c)
                let op = os + (r * cols + c)
                // Exact integer to float conversion, then one multiply: the same value as the reference.
                for i in 0..<n { op[i] = scale * Float(Int32(qp[i]) &- zp) }
                c += n
                g += 1
            }
        }
    }
}

typealias Floats = SIMD16<Float>
/// Bit patterns as signed integers: |x| patterns are non-negative, so signed compares (native on every x86
/// vector level, unlike unsigned ones before AVX-512) order them.
typealias Words = SIMD16<Int32>

@inline(always)
func bitsOf(_ v: Floats) -> Words { unsafeBitCast(v, to: Words.self) }

@inline(always)
func floatsOf(_ v: Words) -> Floats { unsafeBitCast(v, to: Floats.self) }

/// `x.bitPattern`, which the optimiser leaves as a call in these long functions (seen in the scalar tails).
@inline(always)
func floatBits(_ x: Float) -> UInt32 { unsafeBitCast(x, to: UInt32.self) }

/// 1.5 * 2^23: adding it to |v| < 2^22 rounds v half to even, leaving round(v) in the low mantissa bits.
let roundingMagic: Float = 12_582_912.0

/// Bit pattern of |x| at and above which x is infinite or NaN.
let nonFiniteBits: Int32 = 0x7f80_0000

/// IEEE half (in the low 16 bits) to float bits, without branches: rebias the exponent; inf/NaN get the top
/// exponent; subnormals are renormalised by a float subtraction of 2^-14.
@inline(always)
func halfToFloatBits(_ h: UInt32) -> UInt32 {
    let magnitude = (h & 0x7fff) << 13
    let normal = magnitude &+ (112 << 23)
    let special = normal &+ (112 << 23)
    let subnormal = floatBits(Float(bitPattern: magnitude &+ (113 << 23)) - Float(bitPattern: 113 << 23))
    let exponent = magnitude & 0x0f80_0000
    let bits = exponent == 0x0f80_0000 ? special : (exponent == 0 ? subnormal : normal)
    return bits | (h & 0x8000) << 16
}

/// The low byte of each lane of `w`, stored at `q + offset`: sixteen byte stores from a copy of `w`, which LLVM
/// folds into one truncating store (`vpmovdb` on AVX-512, two ands and packs on AVX2). The stdlib's
/// `SIMD16<UInt8>(truncatingIfNeeded:)` lowers to a dozen shuffles on AVX-512, all on the one shuffle port of an
/// Intel core: that loop ran at 10 GB/s where this one runs at 33 (scripts/ab-kernels.sh, README).
@inline(always)
func storeLowBytes(_ w: Words, _ q: UnsafeMutableRawPointer, _ offset: Int) {
    var lanes = w
    withUnsafeBytes(of: &lanes) { bytes in
        for k in 0..<16 {
            q.storeBytes(of: bytes.load(fromByteOffset: 4 &* k, as: UInt8.self), toByteOffset: offset &+ k,
                         as: UInt8.self)
        }
    }
}

/// Largest lane of `v` (integer max is associative, so LLVM turns this loop into a vector reduction).
@inline(always)
func maxLane(_ v: Words) -> Int32 {
    var m = v[0]
    for lane in 1..<16 { m = Swift.max(m, v[lane]) }
    return m
}

/// Smallest lane of `v` (no NaN lanes). Floats compare like their bits mapped to ordered integers, and an integer
/// reduction vectorises where a Float one, bound to IEEE order, does not.
@inline(always)
func minLane(_ v: Floats) -> Float {
    let key = orderedKeys(v)
    var m = key[0]
    for lane in 1..<16 { m = Swift.min(m, key[lane]) }
    return floatOfKey(m)
}

/// Largest lane of `v` (no NaN lanes).
@inline(always)
func maxLane(_ v: Floats) -> Float {
    let key = orderedKeys(v)
    var m = key[0]
    for lane in 1..<16 { m = Swift.max(m, key[lane]) }
    return floatOfKey(m)
}

/// Signed integers that order like the floats: negative floats get their magnitude bits flipped.
@inline(always)
func orderedKeys(_ v: Floats) -> SIMD16<Int32> {
    let bits = unsafeBitCast(v, to: SIMD16<Int32>.self)
    return bits ^ ((bits &>> 31) & 0x7fff_ffff)
}

/// The float whose `orderedKeys` image is `key`.
@inline(always)
func floatOfKey(_ key: Int32) -> Float {
    Float(bitPattern: UInt32(bitPattern: key ^ ((key &>> 31) & 0x7fff_ffff)))
}

/// Absmax of the finite values among `n` at `p`, and how many were not finite; adds x^2 to `signal`. One pass on
/// bit patterns; a scalar recount only when a NaN or inf shows up.
@inline(always)
func groupAbsmax(_ p: UnsafePointer<Float>, _ n: Int, _ signal: inout Floats) -> (absmax: Float, nonFinite: Int) {
    let raw = UnsafeRawPointer(p)
    let mask = Words(repeating: 0x7fff_ffff)
    var m0 = Words(), m1 = Words(), m2 = Words(), m3 = Words()
    var s0 = signal, s1 = Floats(), s2 = Floats(), s3 = Floats()
    var i = 0
    while i &+ 64 <= n {
        let x0 = raw.loadUnaligned(fromByteOffset: 4 &* i, as: Floats.self)
        let x1 = raw.loadUnaligned(fromByteOffset: 4 &* i &+ 64, as: Floats.self)
        let x2 = raw.loadUnaligned(fromByteOffset: 4 &* i &+ 128, as: Floats.self)
        let x3 = raw.loadUnaligned(fromByteOffset: 4 &* i &+ 192, as: Floats.self)
        let a0 = bitsOf(x0) & mask, a1 = bitsOf(x1) & mask, a2 = bitsOf(x2) & mask, a3 = bitsOf(x3) & mask
        m0 = m0.replacing(with: a0, where: a0 .> m0)
        m1 = m1.replacing(with: a1, where: a1 .> m1)
        m2 = m2.replacing(with: a2, where: a2 .> m2)
        m3 = m3.replacing(with: a3, where: a3 .> m3)
        s0 += x0 * x0
        s1 += x1 * x1
        s2 += x2 * x2
        s3 += x3 * x3
        i &+= 64
    }
    while i &+ 16 <= n {
        let x0 = raw.loadUnaligned(fromByteOffset: 4 &* i, as: Floats.self)
        let a0 = bitsOf(x0) & mask
        m0 = m0.replacing(with: a0, where: a0 .> m0)
        s0 += x0 * x0
        i &+= 16
    }
    m0 = m0.replacing(with: m1, where: m1 .> m0)
    m2 = m2.replacing(with: m3, where: m3 .> m2)
    m0 = m0.replacing(with: m2, where: m2 .> m0)
    var m = maxLane(m0)
    while i < n {
        m = Swift.max(m, Int32(bitPattern: floatBits(p[i]) & 0x7fff_ffff))
        s0[0] += p[i] * p[i]
        i &+= 1
    }
    signal = (s0 + s1) + (s2 + s3)
    if m >= nonFiniteBits {
        let range = ReferenceKernels.range(UnsafeBufferPointer(start: p, count: n))
        return (range.absmax, range.nonFinite)
    }
    return (Float(bitPattern: UInt32(m)), 0)
}

/// min, max over the finite values among `n` at `p`, and the non-finite count; adds x^2 to `signal` when
/// `withSignal`. Float compares skip NaN; the largest magnitude bit pattern tells whether any value was not
/// finite, and only then a scalar pass recounts.
@inline(always)
func groupRange(_ p: UnsafePointer<Float>, _ n: Int, _ signal: inout Floats, withSignal: Bool) -> RangeStats {
    let raw = UnsafeRawPointer(p)
    let mask = Words(repeating: 0x7fff_ffff)
    var lo0 = Floats(repeating: .infinity), lo1 = lo0
    var hi0 = Floats(repeating: -.infinity), hi1 = hi0
    var m0 = Words(), m1 = Words()
    var s0 = signal, s1 = Floats()
    var i = 0
    while i &+ 32 <= n {
        let x0 = raw.loadUnaligned(fromByteOffset: 4 &* i, as: Floats.self)
        let x1 = raw.loadUnaligned(fromByteOffset: 4 &* i &+ 64, as: Floats.self)
        lo0 = lo0.replacing(with: x0, where: x0 .< lo0)
        lo1 = lo1.replacing(with: x1, where: x1 .< lo1)
        hi0 = hi0.replacing(with: x0, where: x0 .> hi0)
        hi1 = hi1.replacing(with: x1, where: x1 .> hi1)
        let a0 = bitsOf(x0) & mask, a1 = bitsOf(x1) & mask
        m0 = m0.replacing(with: a0, where: a0 .> m0)
        m1 = m1.replacing(with: a1, where: a1 .> m1)
        if withSignal {
            s0 += x0 * x0
            s1 += x1 * x1
        }
        i &+= 32
    }
    while i &+ 16 <= n {
        let x0 = raw.loadUnaligned(fromByteOffset: 4 &* i, as: Floats.self)
        lo0 = lo0.replacing(with: x0, where: x0 .< lo0)
        hi0 = hi0.replacing(with: x0, where: x0 .> hi0)
        let a0 = bitsOf(x0) & mask
        m0 = m0.replacing(with: a0, where: a0 .> m0)
        if withSignal { s0 += x0 * x0 }
        i &+= 16
    }
    lo0 = lo0.replacing(with: lo1, where: lo1 .< lo0)
    hi0 = hi0.replacing(with: hi1, where: hi1 .> hi0)
    m0 = m0.replacing(with: m1, where: m1 .> m0)
    var m = maxLane(m0)
    var lo = minLane(lo0), hi = maxLane(hi0)
    while i < n {
        let v = p[i]
        lo = Swift.min(lo, v)
        hi = Swift.max(hi, v)
        m = Swift.max(m, Int32(bitPattern: floatBits(v) & 0x7fff_ffff))
        if withSignal { s0[0] += v * v }
        i &+= 1
    }
    if withSignal { signal = s0 + s1 }
    if m >= nonFiniteBits { return ReferenceKernels.range(UnsafeBufferPointer(start: p, count: n)) }
    return RangeStats(min: lo, max: hi, nonFinite: 0)
}

/// Error sums per lane in Float, moved into Double at least every `flushEvery` values.
struct LaneErrors {
    static let flushEvery = 4096
    var squaredError = Floats()
    var squaredSignal = Floats()
    /// Bit patterns of |error|: for non-negative floats they order like the values.
    var maxError = Words()
    var clipped = Words()
    var pending = 0
    var total = ErrorStats.zero

    init() {}

    mutating func flush() {
        var sse = 0.0, sss = 0.0, clips = 0
        for lane in 0..<16 {
            sse += Double(squaredError[lane])
            sss += Double(squaredSignal[lane])
            clips += Int(clipped[lane])
        }
        total.merge(ErrorStats(count: pending, sumSquaredError: sse, sumSquaredSignal: sss,
                               maxAbsError: Float(bitPattern: UInt32(maxLane(maxError))), clipped: clips))
        self = LaneErrors(total: total)
    }

    init(total: ErrorStats) { self.total = total }
}

/// What the apply step must do besides coding: a type rather than Bool arguments, so that each variant is
/// compiled as its own loop (the optimiser merges calls that differ only in Bool arguments into one loop that
/// tests them per vector).
protocol ApplyMode {
    /// Clamp into the codes and count clipped values; unneeded when the range proves that nothing clips.
    static var clamped: Bool { get }
    /// Sum x^2 here; groups sum it in their range pass instead.
    static var signal: Bool { get }
}

/// Per-tensor params, fixed beforehand: anything may clip.
enum FixedParams: ApplyMode {
    static var clamped: Bool { true }
    static var signal: Bool { true }
}

/// A group whose range may round outside the codes (non-finite values, ties at the edge).
enum ClippingGroup: ApplyMode {
    static var clamped: Bool { true }
    static var signal: Bool { false }
}

/// A group whose range cannot round outside the codes: no clamp, no clipping.
enum UnclippedGroup: ApplyMode {
    static var clamped: Bool { false }
    static var signal: Bool { false }
}

/// Whether codes get a zero point added: a type, like `ApplyMode`, so that each is its own loop (a zero zero
/// point, which every symmetric code has, saves one integer add per vector).
protocol ZeroPointMode {
    static var shifted: Bool { get }
}

enum NoZeroPoint: ZeroPointMode {
    static var shifted: Bool { false }
}

enum WithZeroPoint: ZeroPointMode {
    static var shifted: Bool { true }
}

/// The apply step: codes for `n` values at `x` into `q`, with the error sums of the same pass.
@inline(always)
func apply<Mode: ApplyMode>(_ x: UnsafePointer<Float>, _ q: UnsafeMutablePointer<Int8>, _ n: Int, _ book: Codebook,
                            _ errors: inout LaneErrors, _ mode: Mode.Type, ahead: UnsafeRawPointer? = nil) {
    var start = 0
    while start < n {
        let chunk = Swift.min(LaneErrors.flushEvery - errors.pending, n - start)
        if book.zeroPoint == 0 {
            applyRun(x + start, q + start, chunk, book, &errors, Mode.self, NoZeroPoint.self,
                     ahead: ahead.map { $0 + 4 * start })
        } else {
            applyRun(x + start, q + start, chunk, book, &errors, Mode.self, WithZeroPoint.self,
                     ahead: ahead.map { $0 + 4 * start })
        }
        if errors.pending >= LaneErrors.flushEvery { errors.flush() }
        start += chunk
    }
}

/// Codes for `n` values with dequantization in registers. v = x * (1 / scale) is clamped in float to
/// [lowest, highest] (NaN lands on highest), rounded by the magic number, and the zero point is added to the
/// integer bits. Without `clamped` the caller knows that no v rounds outside the codes (so no clamp changes
/// anything and nothing is clipped); without `signal` it sums x^2 itself.
@inline(always)
func applyRun<Mode: ApplyMode, Shift: ZeroPointMode>(
    _ x: UnsafePointer<Float>, _ q: UnsafeMutablePointer<Int8>, _ n: Int, _ book: Codebook,
    _ errors: inout LaneErrors, _ mode: Mode.Type, _ shift: Shift.Type, ahead: UnsafeRawPointer?
) {
    let clamped = Mode.clamped, signal = Mode.signal, shifted = Shift.shifted
    let xr = UnsafeRawPointer(x), qr = UnsafeMutableRawPointer(q)
    let inverse = Floats(repeating: book.inverseScale), scale = Floats(repeating: book.scale)
    let lowest = Floats(repeating: book.lowest), highest = Floats(repeating: book.highest)
    let clipFrom = Floats(repeating: book.clipFrom), clipTo = Floats(repeating: book.clipTo)
    let magic = Floats(repeating: roundingMagic)
    let zeroPoint = Words(repeating: book.zeroPoint)
    let mask = Words(repeating: 0x7fff_ffff)
    /// One vector of codes, into one set of sums. Without clamps, two sets take turns, so that the sums' add
    /// chains (4 cycles each) do not bound the loop; the clamped loop is long enough without (and LLVM turns an
    /// unrolled clip count into lane shuffles).
    @inline(always)
    func vector(_ i: Int, _ sse: inout Floats, _ sss: inout Floats, _ maxError: inout Words, _ clipped: inout Words) {
        let xv = xr.loadUnaligned(fromByteOffset: 4 &* i, as: Floats.self)
        var v = xv * inverse
        if clamped {
            clipped = clipped.replacing(with: clipped &+ 1, where: (v .>= clipFrom) .| (v .<= clipTo))
            v = highest.replacing(with: v, where: v .< highest)
            v = lowest.replacing(with: v, where: v .> lowest)
        }
        let rounded = bitsOf(v + magic)
        storeLowBytes(shifted ? rounded &+ zeroPoint : rounded, qr, i)
        // The error of what a reader dequantizes: scale * code rounded to Float, then x minus it.
        let error = xv - (floatsOf(rounded) - magic) * scale
        sse += error * error
        if signal { sss += xv * xv }
        let e = bitsOf(error) & mask
        maxError = maxError.replacing(with: e, where: e .> maxError)
    }
    var sse = errors.squaredError, sss = errors.squaredSignal
    var maxError = errors.maxError, clipped = errors.clipped
    var sse1 = Floats(), sss1 = Floats(), maxError1 = Words()
    var i = 0
    // With `ahead`, one line of the next batch is fetched per line coded: its reads overlap this pass's work.
    if clamped {
        while i &+ 16 <= n {
            if let ahead { quantd_prefetch(ahead + 4 &* i) }
            vector(i, &sse, &sss, &maxError, &clipped)
            i &+= 16
        }
    } else {
        while i &+ 32 <= n {
            if let ahead {
                quantd_prefetch(ahead + 4 &* i)
                quantd_prefetch(ahead + (4 &* i &+ 64))
            }
            vector(i, &sse, &sss, &maxError, &clipped)
            vector(i &+ 16, &sse1, &sss1, &maxError1, &clipped)
            i &+= 32
        }
        if i &+ 16 <= n {
            vector(i, &sse, &sss, &maxError, &clipped)
            i &+= 16
        }
        sse += sse1
        sss += sss1
        maxError = maxError.replacing(with: maxError1, where: maxError1 .> maxError)
    }
    // Tail: the same operations on single values, summed into lane 0.
    while i < n {
        let xv = x[i]
        var v = xv * book.inverseScale
        if clamped {
            if v >= book.clipFrom || v <= book.clipTo { clipped[0] &+= 1 }
            v = v < book.highest ? v : book.highest
            v = v > book.lowest ? v : book.lowest
        }
        let rounded = floatBits(v + roundingMagic)
        q[i] = Int8(truncatingIfNeeded: rounded &+ UInt32(bitPattern: book.zeroPoint))
        let error = xv - (Float(bitPattern: rounded) - roundingMagic) * book.scale
        sse[0] += error * error
        if signal { sss[0] += xv * xv }
        maxError[0] = Swift.max(maxError[0], Int32(bitPattern: floatBits(error) & 0x7fff_ffff))
        i &+= 1
    }
    errors.squaredError = sse
    errors.squaredSignal = sss
    errors.maxError = maxError
    errors.clipped = clipped
    errors.pending &+= n
}
