import Quantization
import SafeTensors
#if canImport(Glibc)
import Glibc
#endif

/// `quantd dequantize`: rebuilds float32 tensors from an output folder (scale * (q - zero_point)) for
/// evaluation. Tensors left alone are copied as they are; the scale and zero-point tensors are dropped.
public enum Dequantizer {
    /// Writes one `.safetensors` per output file: to `destination` itself when the folder holds one, else into
    /// the folder `destination` under each shard's name. Returns the paths written.
    public static func run(folder: String, to destination: String, force: Bool = false) throws(EngineError) -> [String] {
        let manifest = try Manifest.read(folder: folder)
        let streams = manifest.outputs.filter { !$0.frames.isEmpty }
        guard !streams.isEmpty else {
            throw EngineError(.badInput, file: folder, reason: "the manifest lists no .zst output", stage: "dequantize")
        }
        var targets: [(Manifest.OutputFile, String)] = []
        if streams.count == 1 {
            targets = [(streams[0], destination)]
        } else {
            try FileSystem.makeDirectories(destination, stage: "dequantize")
            targets = streams.map { ($0, destination + "/" + ($0.source ?? String($0.file.dropLast(4)))) }
        }
        for (_, path) in targets where FileSystem.kind(path) != .missing && !force {
            throw EngineError(.cannotCreateOutput, file: path, reason: "already exists (pass --force to replace it)",
                              stage: "dequantize")
        }
        for (output, path) in targets {
            try write(folder + "/" + output.file, output: output, manifest: manifest, to: path, force: force)
        }
        return targets.map(\.1)
    }

    private static func write(_ zst: String, output: Manifest.OutputFile, manifest: Manifest, to path: String,
                              force: Bool) throws(EngineError) {
        var records: [String: Manifest.TensorRecord] = [:]
        for r in manifest.tensors where r.file == output.source && r.decision == "quantized" { records[r.name] = r }
        let temp = "\(Path.directory(of: path))/.\(Path.base(of: path)).tmp-\(getpid())"
        FileSystem.removeTree(temp)
        let file = try OutputFile(creating: temp, stage: "dequantize")
        var state = State(records: records, file: file)
        var events = StreamReader.Events()
        events.header = { try state.header($0) }
        events.data = { t, offset, bytes in try state.data(t, offset, bytes) }
        do {
            _ = try StreamReader.read(zst, rawSize: output.rawSize, events: events)
            try file.sync()
            if force && FileSystem.kind(path) == .file { unlink(path) }
            try FileSystem.renameNoReplace(temp, path, stage: "dequantize")
        } catch let e as EngineError {
            unlink(temp)
            throw e
        } catch {
            unlink(temp)
            throw EngineError(.badInput, file: zst, reason: "\(error)", stage: "dequantize")
        }
    }

    /// Scale `i` of `bytes` stored as `dtype` (F32, F16 or BF16; little-endian, unaligned allowed).
    static func scale(_ bytes: UnsafeRawBufferPointer, _ i: Int, _ dtype: DType) -> Float {
        switch dtype {
        case .F16: Float(Float16(bitPattern: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        case .BF16: Float(bitPattern: UInt32(bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
        default: Float(bitPattern: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
        }
    }

    /// Collects a quantized tensor with its scales (and zero points), which follow it in the stream,
    /// then writes its float32 values.
    private struct State {
        let records: [String: Manifest.TensorRecord]
        let file: OutputFile
        var codes: [Int8] = []
        var scales: [Float] = []
        var zeroPoints: [Int8] = []
        var pending: (record: Manifest.TensorRecord, layout: QuantLayout)?

        init(records: [String: Manifest.TensorRecord], file: OutputFile) {
            self.records = records
            self.file = file
        }

        func header(_ h: Header) throws {
            var companions = Set<String>()
            for name in records.keys { companions.formUnion([name + "_scale", name + "_zero_point"]) }
            let tensors = h.tensorsByOffset.filter { !companions.contains($0.name) }.map {
                (name: $0.name, dtype: records[$0.name] == nil ? $0.dtype : DType.F32, shape: $0.shape)
            }
            let dropped: Set<String> = ["quantization_format", "quantization_scheme", "quantd_version"]
            let (bytes, _) = HeaderWriter.encode(metadata: h.metadata.filter { !dropped.contains($0.key) },
                                                 tensors: tensors)
            try file.write(bytes)
        }

        mutating func data(_ t: TensorInfo, _ offset: Int, _ bytes: UnsafeRawBufferPointer) throws {
            if let r = records[t.name], let s = r.scheme {
                let layout = QuantLayout(shape: r.shape, granularity: .init(rawValue: s.granularity) ?? .channel,
                                         groupSize: s.groupSize ?? 1, symmetric: s.symmetric)
                if offset == 0 { codes.removeAll(keepingCapacity: true) }
                codes.append(contentsOf: bytes.bindMemory(to: Int8.self))
                pending = (r, layout)
                return
            }
            guard let (record, layout) = pending else {
                try file.write(bytes)
                return
            }
            if t.name == record.name + "_scale" {
                if offset == 0 { scales.removeAll(keepingCapacity: true) }
                let width = t.dtype == .F32 ? 4 : 2
                for i in 0..<(bytes.count / width) { scales.append(Dequantizer.scale(bytes, i, t.dtype)) }
            } else if t.name == record.name + "_zero_point" {
                if offset == 0 { zeroPoints.removeAll(keepingCapacity: true) }
                zeroPoints.append(contentsOf: bytes.bindMemory(to: Int8.self))
            } else {
                throw EngineError(.badInput, file: file.path, tensor: t.name,
                                  reason: "arrives before the scales of '\(record.name)'", stage: "dequantize")
            }
            let complete = scales.count == layout.scaleCount
                && (layout.symmetric || zeroPoints.count == layout.scaleCount)
                && codes.count == record.shape.reduce(1, *)
            if complete {
                try flush(layout)
                pending = nil
            }
        }

        /// Dequantizes the pending tensor in row chunks and writes it.
        private func flush(_ layout: QuantLayout) throws {
            let rows = layout.rows, cols = layout.cols
            let groups = layout.granularity == .tensor ? 1 : layout.groupsPerRow
            let chunkRows = max(1, (1 << 20) / max(cols, 1))
            let out = UnsafeMutableBufferPointer<Float>.allocate(capacity: chunkRows * cols)
            defer { out.deallocate() }
            var row = 0
            while row < rows {
                let n = min(chunkRows, rows - row)
                let slice = UnsafeMutableBufferPointer(rebasing: out[0..<(n * cols)])
                try codes.withUnsafeBufferPointer { q in
                    let qs = UnsafeBufferPointer(rebasing: q[(row * cols)..<((row + n) * cols)])
                    let scaleRows: [Float] = layout.granularity == .tensor
                        ? Array(repeating: scales[0], count: n) : Array(scales[(row * groups)..<((row + n) * groups)])
                    let zeroRows: [Int8]? = layout.symmetric ? nil : layout.granularity == .tensor
                        ? Array(repeating: zeroPoints[0], count: n) : Array(zeroPoints[(row * groups)..<((row + n) * groups)])
                    scaleRows.withUnsafeBufferPointer { s in
                        if let zeroRows {
                            zeroRows.withUnsafeBufferPointer { z in
                                Kernels.dequantizeGroups(qs, rows: n, cols: cols, groupSize: layout.groupSize,
                                                         scales: s, zeroPoints: z, into: slice)
                            }
                        } else {
                            Kernels.dequantizeGroups(qs, rows: n, cols: cols, groupSize: layout.groupSize,
                                                     scales: s, zeroPoints: nil, into: slice)
                        }
                    }
                    try file.write(UnsafeRawBufferPointer(slice))
                }
                row += n
            }
        }
    }
}
