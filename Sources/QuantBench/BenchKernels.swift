import Crypto
import Dispatch
import Quantization
import QuantEngine
import QuantSystem
import Synchronization
import Zstd

/// One in-process throughput figure: GB/s of input (fp32 for the kernels) over the best of several runs.
struct KernelFigure: Codable, Sendable {
    var name: String
    /// Rows of 4096 values: `KernelBench.rows` (from memory), `KernelBench.unitRows` (one engine unit, in cache) or
    /// `KernelBench.l2Rows` (1 MiB, in L2).
    var rows: Int
    var threads: Int
    var bytes: Int
    var bestSeconds: Double
    var gbPerSecond: Double
}

/// Kernel throughput on a 4096 x 4096 fp32 matrix (64 MiB, larger than the caches), no files involved: each
/// kernel on one thread, then with rows split evenly over `threads` threads by DispatchQueue.concurrentPerform.
/// Then the same kernels on its first 256 rows, one engine unit (4 MiB, `Planner.unitBytes`), run again and again
/// so that it stays in the caches, as a unit that a worker has just read is when the kernel runs, and on its first
/// 64 rows (1 MiB, in L2): the first figures are bound by the memory of the machine as much as by the kernels, the
/// second ones by the cache the unit fits in (L3 on cores with 2 MiB of L2), the third ones by the kernels.
/// Also the two other per-byte costs of a job, measured the same way: sha256 (swift-crypto, as the engine
/// hashes) and libzstd at the engine's level and at level 1 on the int8 codes.
enum KernelBench {
    static let rows = 4096
    static let cols = 4096
    static let unitRows = Planner.unitBytes / (cols * 4)
    /// 1 MiB of input: in the L2 cache of current x86 cores (1-2 MiB each), where the kernels run at their compute
    /// speed; a 4 MiB unit is served from L3 on such cores.
    static let l2Rows = (1 << 20) / (cols * 4)

    static func run(threads: Int, repeats: Int, level: Int) throws(BenchError) -> [KernelFigure] {
        let count = rows * cols
        let x = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
        let q = UnsafeMutableBufferPointer<Int8>.allocate(capacity: count)
        let groups128 = (cols + 127) / 128
        let scales = UnsafeMutableBufferPointer<Float>.allocate(capacity: rows * groups128)
        let zeros = UnsafeMutableBufferPointer<Int8>.allocate(capacity: rows * groups128)
        defer { x.deallocate(); q.deallocate(); scales.deallocate(); zeros.deallocate() }
        // Touch every page first, so that no figure pays for page faults.
        BenchCheckpoint.fill(x, tensor: 1, first: 0, norm: false, seed: 7)
        q.initialize(repeating: 0)
        scales.initialize(repeating: 0)
        zeros.initialize(repeating: 0)
        let params = QuantParams.symmetric(absmax: Kernels.range(UnsafeBufferPointer(x)).absmax)

        /// The kernel over rows `r` (a row slice of every buffer).
        typealias Slice = (_ r: Range<Int>) -> Void
        func input(_ r: Range<Int>) -> UnsafeBufferPointer<Float> {
            UnsafeBufferPointer(rebasing: x[(r.lowerBound * cols)..<(r.upperBound * cols)])
        }
        func codes(_ r: Range<Int>) -> UnsafeMutableBufferPointer<Int8> {
            UnsafeMutableBufferPointer(rebasing: q[(r.lowerBound * cols)..<(r.upperBound * cols)])
        }
        func groups(_ size: Int, symmetric: Bool) -> Slice {
            { r in
                let g = (cols + size - 1) / size
                let z = symmetric ? UnsafeMutableBufferPointer(rebasing: zeros[0..<0])
                    : UnsafeMutableBufferPointer(rebasing: zeros[(r.lowerBound * g)..<(r.upperBound * g)])
                _ = Kernels.quantizeGroups(
                    input(r), rows: r.count, cols: cols, groupSize: size, symmetric: symmetric, q: codes(r),
                    scales: UnsafeMutableBufferPointer(rebasing: scales[(r.lowerBound * g)..<(r.upperBound * g)]),
                    zeroPoints: z)
            }
        }
        let kernels: [(String, Slice)] = [
            ("range (min, max)", { r in _ = Kernels.range(input(r)) }),
            ("per tensor, symmetric (apply only)", { r in
                _ = Kernels.quantize(input(r), params: params, symmetric: true, q: codes(r))
            }),
            ("per channel, symmetric (absmax)", groups(cols, symmetric: true)),
            ("per channel, asymmetric", groups(cols, symmetric: false)),
            ("group 128, symmetric", groups(128, symmetric: true)),
            ("group 128, asymmetric", groups(128, symmetric: false)),
        ]
        var figures: [KernelFigure] = []
        let threadCounts = threads > 1 ? [1, threads] : [1]
        // Smaller inputs run as many more rounds as they are shorter.
        for r in [rows, unitRows, l2Rows] {
            let runs = repeats * (rows / r)
            for (name, kernel) in kernels {
                for t in threadCounts {
                    let best = bestTime(runs) { split(r, over: t, kernel) }
                    figures.append(KernelFigure(name: name, rows: r, threads: t, bytes: r * cols * 4,
                                                bestSeconds: best, gbPerSecond: Double(r * cols * 4) / best / 1e9))
                }
            }
        }

        // The per-channel codes are what the engine compresses; hash the fp32 input as it does.
        groups(cols, symmetric: true)(0..<rows)
        let input = UnsafeRawBufferPointer(x)
        let hashBest = bestTime(repeats) {
            var hash = SHA256()
            hash.update(bufferPointer: input)
            _ = hash.finalize()
        }
        figures.append(KernelFigure(name: "sha256 (swift-crypto) of fp32 input", rows: rows, threads: 1,
                                    bytes: count * 4, bestSeconds: hashBest,
                                    gbPerSecond: Double(count * 4) / hashBest / 1e9))
        // quantd's own SHA-256, the input's (whose state a checkpoint saves), where the CPU has the SHA extensions.
        if var hash = ResumableSHA256() {
            let fresh = hash
            let best = bestTime(repeats) {
                hash = fresh
                hash.update(bufferPointer: input)
                _ = hash.finalize()
            }
            figures.append(KernelFigure(name: "sha256 (quantd's, SHA extensions) of fp32 input", rows: rows,
                                        threads: 1, bytes: count * 4, bestSeconds: best,
                                        gbPerSecond: Double(count * 4) / best / 1e9))
        }
        // Level 1 beside the engine's level: on int8 codes it compresses about as well, for much less time.
        for lvl in level == 1 ? [1] : [level, 1] {
            for t in threadCounts {
                let best = try zstdTime(q, threads: t, repeats: repeats, level: lvl)
                figures.append(KernelFigure(name: "zstd -\(lvl) of int8 codes, 1 MiB frames", rows: rows,
                                            threads: t, bytes: count, bestSeconds: best,
                                            gbPerSecond: Double(count) / best / 1e9))
            }
        }
        return figures
    }

    /// Shortest wall time of `repeats` calls of `body` (after one untimed warm-up call).
    static func bestTime(_ repeats: Int, _ body: () -> Void) -> Double {
        body()
        var best = Double.infinity
        for _ in 0..<max(1, repeats) {
            let start = FileSystem.monotonicSeconds()
            body()
            best = min(best, FileSystem.monotonicSeconds() - start)
        }
        return best
    }

    /// Runs `body` on `threads` even slices of `0..<count` at once.
    static func split(_ count: Int, over threads: Int, _ body: (Range<Int>) -> Void) {
        if threads == 1 { return body(0..<count) }
        withoutActuallyEscaping(body) { escaping in
            // The slices are disjoint: each thread touches only its own rows of the buffers.
            nonisolated(unsafe) let slice = escaping
            DispatchQueue.concurrentPerform(iterations: threads) { k in
                slice((count * k / threads)..<(count * (k + 1) / threads))
            }
        }
    }

    /// Compresses the codes in frames of 1 MiB (about an engine tile), each thread its slice with its own
    /// context made beforehand, as the engine's workers keep theirs; best of `repeats`.
    private static func zstdTime(_ q: UnsafeMutableBufferPointer<Int8>, threads: Int, repeats: Int, level: Int)
        throws(BenchError) -> Double
    {
        let frame = 1 << 20
        let frames = q.count / frame
        var workers: [ZstdWorker] = []
        for _ in 0..<threads {
            do { workers.append(try ZstdWorker(level: level)) } catch { throw BenchError("zstd: \(error)") }
        }
        let raw = UnsafeRawBufferPointer(q)
        let failed = Atomic<Bool>(false)
        let best = bestTime(repeats) {
            split(threads, over: threads) { slice in
                let w = workers[slice.lowerBound]
                for f in (frames * slice.lowerBound / threads)..<(frames * slice.upperBound / threads) {
                    w.out.removeAll(keepingCapacity: true)
                    do {
                        _ = try w.compressor.compressFrame(
                            UnsafeRawBufferPointer(rebasing: raw[(f * frame)..<((f + 1) * frame)]), appendingTo: &w.out)
                    } catch {
                        failed.store(true, ordering: .relaxed)
                    }
                }
            }
        }
        if failed.load(ordering: .relaxed) { throw BenchError("zstd: a frame failed to compress") }
        return best
    }
}

/// A compression context and its output buffer, used by one thread at a time.
private final class ZstdWorker: @unchecked Sendable {
    // @unchecked: each worker belongs to one slice index, so to one thread of a concurrentPerform at a time.
    var compressor: ZstdCompressor
    var out: [UInt8] = []
    init(level: Int) throws(ZstdError) { compressor = try ZstdCompressor(level: level) }
}
