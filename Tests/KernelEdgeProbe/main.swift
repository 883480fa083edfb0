import Quantization
#if canImport(Glibc)
import Glibc
#endif

// Calls one public entry of Quantization with the wrong sizes (the case named by the first argument), for
// KernelEdgeTests. Built in release, where Quantization is `-Ounchecked`, it shows that the checks at the
// module's edge still stop the program with their message. `valid` makes the same calls with right sizes.

/// The first `n` elements of a buffer.
func first<T>(_ b: UnsafeMutableBufferPointer<T>, _ n: Int) -> UnsafeMutableBufferPointer<T> {
    UnsafeMutableBufferPointer(rebasing: b[0..<n])
}

/// Makes the calls of case `name`; false when there is no such case.
func probe(_ name: String) -> Bool {
    let x = UnsafeMutableBufferPointer<Float>.allocate(capacity: 64)
    let q = UnsafeMutableBufferPointer<Int8>.allocate(capacity: 64)
    let scales = UnsafeMutableBufferPointer<Float>.allocate(capacity: 16)
    let zeros = UnsafeMutableBufferPointer<Int8>.allocate(capacity: 16)
    let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 16)
    for i in 0..<64 { x[i] = Float(i % 13) - 6 }
    q.initialize(repeating: 0)
    scales.initialize(repeating: 0)
    zeros.initialize(repeating: 0)

    /// An 8-column tile in groups of 4 (2 scales a row), symmetric, with the given element and scale counts.
    func tile(rows: Int = 8, x xCount: Int = 64, q qCount: Int = 64, scales scaleCount: Int = 16) {
        _ = Kernels.quantizeGroups(UnsafeBufferPointer(first(x, xCount)), rows: rows, cols: 8, groupSize: 4,
                                   symmetric: true, q: first(q, qCount), scales: first(scales, scaleCount),
                                   zeroPoints: first(zeros, 0))
    }

    switch name {
    case "valid":
        tile()
        _ = Kernels.quantize(UnsafeBufferPointer(x), params: .symmetric(absmax: 6), symmetric: true, q: q)
        Kernels.dequantizeGroups(UnsafeBufferPointer(q), rows: 8, cols: 8, groupSize: 8,
                                 scales: UnsafeBufferPointer(first(scales, 8)), zeroPoints: nil, into: x)
        PackedCodes.pack(UnsafeBufferPointer(q), rows: 8, cols: 8, into: bytes)
        PackedCodes.unpack(UnsafeRawBufferPointer(bytes), rows: 8, cols: 8, into: q)
        var values = Array(x)
        _ = PercentileCalibrator.quantile(&values, 0.5)
        _ = EntropyCalibrator.bestBinCount([Int](repeating: 1, count: EntropyCalibrator.bins), levels: 128)
    case "tile-codes":
        tile(q: 63)
    case "tile-scales":
        tile(scales: 15)
    case "tile-overflow":
        // 2^62 rows of 8 columns: rows * cols overflows (to 0, were it left to wrap, as x and q hold).
        tile(rows: 1 << 62, x: 0, q: 0, scales: 0)
    case "per-tensor":
        _ = Kernels.quantize(UnsafeBufferPointer(x), params: .symmetric(absmax: 6), symmetric: true, q: first(q, 32))
    case "dequantize":
        Kernels.dequantizeGroups(UnsafeBufferPointer(q), rows: 8, cols: 8, groupSize: 8,
                                 scales: UnsafeBufferPointer(first(scales, 8)), zeroPoints: nil, into: first(x, 32))
    case "pack":
        PackedCodes.pack(UnsafeBufferPointer(q), rows: 8, cols: 10, into: bytes)
    case "unpack":
        PackedCodes.unpack(UnsafeRawBufferPointer(bytes), rows: 8, cols: 8, into: first(q, 60))
    case "quantile":
        var none: [Float] = []
        _ = PercentileCalibrator.quantile(&none, 0.5)
    case "histogram":
        _ = EntropyCalibrator.bestBinCount([1, 2, 3], levels: 128)
    default:
        return false
    }
    return true
}

guard probe(CommandLine.arguments.dropFirst().first ?? "") else {
    print("usage: KernelEdgeProbe valid|tile-codes|tile-scales|tile-overflow|per-tensor|dequantize|pack|unpack|"
        + "quantile|histogram")
    exit(64)
}
print("returned")
