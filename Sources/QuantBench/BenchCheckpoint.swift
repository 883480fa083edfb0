import Dispatch
import QuantSystem
import SafeTensors
import Synchronization
import SystemPackage

/// A deterministic LLaMA-shaped fp32 checkpoint for the benchmark, written with pwrite from worker threads.
///
/// Blocks repeat the shapes of a LLaMA-7B decoder layer (q, k, v, o [4096, 4096]; gate, up [11008, 4096];
/// down [4096, 11008]; two 1-D norms [4096]); tensors are added in that order while each brings the total
/// closer to the requested size. Weights are Gaussian-ish (sum of four uniforms), std 0.02, with one value in
/// 1024 twelve times larger; each value is a hash of (seed, tensor, index), so any chunk is written alone.
struct BenchCheckpoint {
    struct Tensor {
        var name: String
        var shape: [Int]
        var isNorm: Bool { shape.count == 1 }
        var elements: Int { shape.reduce(1, *) }
    }

    /// Bumped whenever the generated values or layout change, so an old file is not reused.
    static let generatorVersion = 1

    let tensors: [Tensor]
    let header: [UInt8]
    let dataRanges: [Range<Int>]
    let seed: UInt64

    var fileSize: Int { header.count + (dataRanges.last?.upperBound ?? 0) }
    var weightBytes: Int { zip(tensors, dataRanges).reduce(0) { $0 + ($1.0.isNorm ? 0 : $1.1.count) } }

    init(targetBytes: Int, seed: UInt64) {
        let hidden = 4096, intermediate = 11008
        var tensors: [Tensor] = []
        var total = 0
        var layer = 0
        building: while true {
            let p = "model.layers.\(layer)."
            let block: [Tensor] = [
                Tensor(name: p + "input_layernorm.weight", shape: [hidden]),
                Tensor(name: p + "self_attn.q_proj.weight", shape: [hidden, hidden]),
                Tensor(name: p + "self_attn.k_proj.weight", shape: [hidden, hidden]),
                Tensor(name: p + "self_attn.v_proj.weight", shape: [hidden, hidden]),
                Tensor(name: p + "self_attn.o_proj.weight", shape: [hidden, hidden]),
                Tensor(name: p + "post_attention_layernorm.weight", shape: [hidden]),
                Tensor(name: p + "mlp.gate_proj.weight", shape: [intermediate, hidden]),
                Tensor(name: p + "mlp.up_proj.weight", shape: [intermediate, hidden]),
                Tensor(name: p + "mlp.down_proj.weight", shape: [hidden, intermediate]),
            ]
            for t in block {
                let bytes = t.elements * 4
                // Keep adding while the total gets closer to the target (always take the first big tensor).
                if total + bytes > targetBytes && total + bytes - targetBytes >= targetBytes - total
                    && tensors.contains(where: { !$0.isNorm }) {
                    break building
                }
                tensors.append(t)
                total += bytes
            }
            layer += 1
        }
        let metadata = [("format", "pt"), ("generator", "quantd bench v\(Self.generatorVersion), seed \(seed)")]
        let encoded = HeaderWriter.encode(metadata: metadata.map { (key: $0.0, value: $0.1) },
                                          tensors: tensors.map { ($0.name, DType.F32, $0.shape) })
        self.tensors = tensors
        self.header = encoded.bytes
        self.dataRanges = encoded.tensors.map(\.dataRange)
        self.seed = seed
    }

    /// Path of the file for this size and seed in `dir`.
    func path(in dir: String, label: String) -> String {
        "\(dir)/llama-fp32-\(label)-seed\(seed)-v\(Self.generatorVersion).safetensors"
    }

    /// Whether `path` already holds this checkpoint: same size and the same header bytes.
    func matches(_ path: String) -> Bool {
        guard let fd = try? FileDescriptor.openFile(FilePath(path), .readOnly) else { return false }
        defer { try? fd.close() }
        guard let status = try? fd.status(path: nil), Int(status.size) == fileSize else { return false }
        var existing = [UInt8](repeating: 0, count: header.count)
        let read = existing.withUnsafeMutableBytes { try? fd.readFully(into: $0, at: 0, path: nil) }
        return read == existing.count && existing == header
    }

    /// Writes the checkpoint to `path` (through `path.partial`, renamed when complete and synced, so that a
    /// later run never reuses a half-written file and its dirty pages do not flush during the timed runs).
    func write(to path: String, threads: Int) throws(BenchError) {
        let partial = FilePath(path + ".partial")
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.openFile(partial, .writeOnly, options: [.create, .truncate],
                                             permissions: TextFile.mode)
        } catch {
            throw BenchError(error)
        }
        defer { try? fd.close() }

        // Chunks of at most 4 MiB inside one tensor, claimed in order by the workers.
        let chunkElements = 1 << 20
        let chunks = tensors.enumerated().flatMap { t, tensor in
            stride(from: 0, to: tensor.elements, by: chunkElements).map { first in
                (tensor: t, first: first, count: min(chunkElements, tensor.elements - first))
            }
        }
        let nextChunk = Atomic<Int>(0)
        let failure = Mutex<SystemError?>(nil)
        let dataStart = header.count
        do throws(SystemError) {
            try fd.resize(to: fileSize, path: partial)
            try header.withUnsafeBytes { raw in
                Result { () throws(SystemError) in try fd.writeFully(raw, at: 0, path: partial) }
            }.get()
            DispatchQueue.concurrentPerform(iterations: max(1, threads)) { _ in
                let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: chunkElements)
                defer { buffer.deallocate() }
                while true {
                    let k = nextChunk.add(1, ordering: .relaxed).oldValue
                    guard k < chunks.count, failure.withLock({ $0 == nil }) else { return }
                    let c = chunks[k]
                    let out = UnsafeMutableBufferPointer(rebasing: buffer[0..<c.count])
                    Self.fill(out, tensor: c.tensor, first: c.first, norm: tensors[c.tensor].isNorm, seed: seed)
                    let offset = dataStart + dataRanges[c.tensor].lowerBound + c.first * 4
                    do throws(SystemError) {
                        try fd.writeFully(UnsafeRawBufferPointer(out), at: offset, path: partial)
                    } catch {
                        failure.withLock { $0 = $0 ?? error }
                    }
                }
            }
            if let error = failure.withLock({ $0 }) { throw error }
            try fd.sync(path: partial)
            try FileSystem.rename(partial, FilePath(path))
        } catch {
            throw BenchError(error)
        }
    }

    /// Values `first ..< first + out.count` of tensor `tensor`.
    static func fill(_ out: UnsafeMutableBufferPointer<Float>, tensor: Int, first: Int, norm: Bool, seed: UInt64) {
        let base = mix(seed &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(tensor) &* 0xC2B2_AE3D_27D4_EB4F)
        // Sum of four uniforms on 0...4095: mean 8190, std 4096 / sqrt(3).
        let unit: Float = 1 / 2364.8
        let std: Float = norm ? 0.05 : 0.02
        let center: Float = norm ? 1 : 0
        for i in 0..<out.count {
            let h = mix(base &+ UInt64(first &+ i))
            let sum = Int32(truncatingIfNeeded: h & 0xfff) &+ Int32(truncatingIfNeeded: (h >> 12) & 0xfff)
                &+ Int32(truncatingIfNeeded: (h >> 24) & 0xfff) &+ Int32(truncatingIfNeeded: (h >> 36) & 0xfff)
            let v = Float(sum &- 8190) * unit * std
            let outlier = !norm && (h >> 48) & 1023 == 0
            out[i] = center + (outlier ? v * 12 : v)
        }
    }

    /// A 64-bit mixer (two multiplies, three shifts): good enough for weights, cheap enough for 5 GB.
    @inline(__always)
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x ^ (x >> 31)
        z = z &* 0x7FB5_D329_728E_A185
        z ^= z >> 27
        z = z &* 0x81DA_DEF4_BC2D_D44D
        return z ^ (z >> 33)
    }
}
