import Quantization
import SafeTensors
import QuantSystem

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
        for output in streams {
            for name in [output.file] + (output.source.map { [$0] } ?? []) where !CarriedFiles.staysInside(name) {
                throw EngineError(.badInput, file: folder + "/manifest.json",
                                  reason: "names '\(name)', a path outside the folder", stage: "dequantize")
            }
        }
        var targets: [(Manifest.OutputFile, String)] = []
        if streams.count == 1 {
            targets = [(streams[0], destination)]
        } else {
            try Files.makeDirectories(destination, stage: "dequantize")
            targets = streams.map { ($0, destination + "/" + ($0.source ?? String($0.file.dropLast(4)))) }
        }
        for (_, path) in targets where Files.kind(path) != .missing && !force {
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
        let temp = "\(Path.directory(of: path))/.\(Path.base(of: path)).tmp-\(FileSystem.processID)"
        Files.removeTree(temp)
        let file = try OutputFile.create(temp, stage: "dequantize")
        var state = State(records: records, file: file)
        var events = StreamReader.Events()
        events.header = { try state.header($0) }
        events.data = { t, offset, bytes in try state.data(t, offset, bytes) }
        do {
            _ = try StreamReader.read(zst, rawSize: output.rawSize, events: events)
            try file.sync(stage: "commit")
            if force && Files.kind(path) == .file { Files.removeFile(path) }
            try Files.renameNoReplace(temp, path, stage: "dequantize")
        } catch let e as EngineError {
            Files.removeFile(temp)
            throw e
        } catch {
            Files.removeFile(temp)
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

    /// What a stored tensor is to the quantized tensor it belongs to.
    private enum Role {
        case codes, packedCodes, scales, zeroPoints, shape
    }

    /// Collects a quantized tensor with its scales (and zero points), which follow it in the stream,
    /// then writes its float32 values.
    private struct State {
        let file: OutputFile
        /// Stored tensor name -> the record it belongs to, its layout and its role.
        let roles: [String: (record: Manifest.TensorRecord, layout: QuantLayout, role: Role)]
        var codes: [Int8] = []
        var scales: [Float] = []
        var zeroPoints: [Int8] = []
        var raw: [UInt8] = []
        var pending: (record: Manifest.TensorRecord, layout: QuantLayout)?

        init(records: [String: Manifest.TensorRecord], file: OutputFile) {
            self.file = file
            var roles: [String: (record: Manifest.TensorRecord, layout: QuantLayout, role: Role)] = [:]
            for r in records.values {
                guard let s = r.scheme else { continue }
                let l = QuantLayout(shape: r.shape, scheme: s)
                roles[l.format == .packQuantized ? r.name + "_packed" : r.name] =
                    (r, l, l.format == .packQuantized ? .packedCodes : .codes)
                roles[r.name + "_scale"] = (r, l, .scales)
                roles[r.name + "_zero_point"] = (r, l, .zeroPoints)
                if l.format == .packQuantized { roles[r.name + "_shape"] = (r, l, .shape) }
            }
            self.roles = roles
        }

        func header(_ h: Header) throws {
            var tensors: [(name: String, dtype: DType, shape: [Int])] = []
            for t in h.tensorsByOffset {
                guard let (record, _, role) = roles[t.name] else {
                    tensors.append((t.name, t.dtype, t.shape))
                    continue
                }
                if role == .codes || role == .packedCodes { tensors.append((record.name, .F32, record.shape)) }
            }
            let dropped: Set<String> = ["quantization_format", "quantization_scheme", "quantd_version"]
            let (bytes, _) = HeaderWriter.encode(metadata: h.metadata.filter { !dropped.contains($0.key) },
                                                 tensors: tensors)
            try file.write(bytes, stage: "write")
        }

        mutating func data(_ t: TensorInfo, _ offset: Int, _ bytes: UnsafeRawBufferPointer) throws {
            guard let (record, layout, role) = roles[t.name] else {
                guard pending == nil else {
                    throw EngineError(.badInput, file: file.path.string, tensor: t.name,
                                      reason: "arrives before the scales of '\(pending!.record.name)'", stage: "dequantize")
                }
                try file.write(bytes, stage: "write")
                return
            }
            switch role {
            case .shape:
                return
            case .codes:
                if offset == 0 { codes.removeAll(keepingCapacity: true) }
                codes.append(contentsOf: bytes.bindMemory(to: Int8.self))
                pending = (record, layout)
                return
            case .packedCodes:
                if offset == 0 { raw.removeAll(keepingCapacity: true) }
                raw.append(contentsOf: bytes)
                pending = (record, layout)
                if raw.count == layout.rows * layout.storedRowBytes {
                    codes = [Int8](repeating: 0, count: layout.rows * layout.cols)
                    raw.withUnsafeBytes { p in
                        codes.withUnsafeMutableBufferPointer {
                            PackedCodes.unpack(p, rows: layout.rows, cols: layout.cols, into: $0)
                        }
                    }
                }
                return
            case .scales:
                if offset == 0 { scales.removeAll(keepingCapacity: true) }
                let width = t.dtype == .F32 ? 4 : 2
                for i in 0..<(bytes.count / width) { scales.append(Dequantizer.scale(bytes, i, t.dtype)) }
            case .zeroPoints:
                if offset == 0 { zeroPoints.removeAll(keepingCapacity: true) }
                zeroPoints.append(contentsOf: bytes.bindMemory(to: Int8.self))
            }
            guard pending?.record.name == record.name else {
                throw EngineError(.badInput, file: file.path.string, tensor: t.name,
                                  reason: "arrives before the codes of '\(record.name)'", stage: "dequantize")
            }
            let complete = scales.count == layout.scaleCount
                && (layout.symmetric || zeroPoints.count == layout.scaleCount)
                && codes.count == record.shape.reduce(1, *)
            if complete {
                try flush(layout)
                pending = nil
                codes.removeAll(keepingCapacity: true)
                scales.removeAll(keepingCapacity: true)
                zeroPoints.removeAll(keepingCapacity: true)
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
                    try file.write(UnsafeRawBufferPointer(slice), stage: "write")
                }
                row += n
            }
        }
    }
}
