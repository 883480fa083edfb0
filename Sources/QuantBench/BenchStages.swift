import Console
import Dispatch
import FoundationEssentials
import QuantEngine
import QuantSystem
import Quantization
import SafeTensors
import Synchronization
import SystemPackage
import Zstd

/// One thread's seconds for each step of the engine's work on one file, each step timed alone: CPU seconds of the
/// thread (core-seconds, whatever else ran on the machine), and wall seconds for what also waits on the disk.
struct StageSeconds: Codable, Sendable {
    var read = 0.0
    var quantize = 0.0
    var compress = 0.0
    var hashInput = 0.0
    var hashOutput = 0.0
    /// The writes (without fsync) and the fsync's own CPU.
    var write = 0.0
    /// Wall seconds of the writes, without fsync.
    var writeWall = 0.0
    /// Wall seconds of the one fsync at the end of the file.
    var fsyncWall = 0.0

    /// Each figure the smaller of the two.
    func best(_ o: StageSeconds) -> StageSeconds {
        StageSeconds(read: min(read, o.read), quantize: min(quantize, o.quantize), compress: min(compress, o.compress),
                     hashInput: min(hashInput, o.hashInput), hashOutput: min(hashOutput, o.hashOutput),
                     write: min(write, o.write), writeWall: min(writeWall, o.writeWall),
                     fsyncWall: min(fsyncWall, o.fsyncWall))
    }

    /// What one file costs on its longest serial path: the engine runs a file's input hash on one thread and its
    /// ordered writer (which hashes the output as it writes) on another, side by side, and fsyncs at the end.
    var serialChain: Double { max(hashInput, hashOutput + writeWall) + fsyncWall }
}

/// One thread's pass over a safetensors file in the engine's order and work units: the header, then each tensor
/// in units of about 4 MiB (whole rows of the quantized ones). Per unit: read it (pread, as the engine's workers
/// do), hash it (SHA-256, the input stream), quantize it with the engine's kernel (`Kernels.quantizeGroups` with the
/// manifest's scheme, no calibrator: absmax, then the pack-quantized layout where the scheme has it), compress it
/// (one zstd frame at the engine's level), hash the frame (the output stream) and write it (`OutputFile`, O_DIRECT
/// where the filesystem allows, as the engine writes); fsync once at the end. Each step is timed alone around its
/// call with the thread's CPU clock, so that each figure is that step's core time, with the unit's bytes as hot as
/// the engine has them; the writes and the fsync are also timed on the wall clock.
final class StagePass {
    /// The engine's work unit (`Planner.unitBytes`).
    static let unitBytes = 4 << 20
    /// The file written in the bench folder, removed after each pass.
    static let outputName = "stage-write.tmp"

    private let file: SafeTensorsFile
    private let out: OutputFile
    private var compressor: ZstdCompressor
    private var inputHash = StreamHash.fresh()
    private var outputHash = StreamHash.fresh()
    private var time = StageSeconds()
    private var frame: [UInt8] = []
    private let input: UnsafeMutableRawBufferPointer
    private let floats: UnsafeMutableBufferPointer<Float>
    private let codes: UnsafeMutableBufferPointer<Int8>
    private let packed: UnsafeMutableRawBufferPointer

    /// Measures `path`, quantizing the tensors named in `schemes` with their scheme and compressing the others as
    /// they are, as the engine did for the manifest they come from.
    static func run(_ path: String, schemes: [String: Manifest.Scheme], level: Int, output: String)
        throws(BenchError) -> StageSeconds
    {
        let pass = try StagePass(path, level: level, output: output)
        defer { try? FileSystem.unlink(FilePath(output)) }
        try pass.header()
        for tensor in pass.file.header.tensorsByOffset {
            if let scheme = schemes[tensor.name] { try pass.quantize(tensor, scheme) } else { try pass.copy(tensor) }
        }
        try pass.finish()
        return pass.time
    }

    private init(_ path: String, level: Int, output: String) throws(BenchError) {
        do { file = try SafeTensorsFile(path: path) } catch { throw BenchError(error.description) }
        do { compressor = try ZstdCompressor(level: level, checksum: true) } catch {
            throw BenchError("zstd: \(error)")
        }
        do { out = try OutputFile(creating: FilePath(output), direct: true) } catch { throw BenchError(error) }
        // The largest unit: 4 MiB, or one row, or the header.
        let rowBytes = file.header.tensors.map { $0.shape.count >= 2 ? $0.byteCount / max($0.shape[0], 1) : 0 }
        let bytes = max(Self.unitBytes, file.header.dataStart, rowBytes.max() ?? 0)
        input = .allocate(byteCount: bytes, alignment: 64)
        // At most bytes / 2 elements (16-bit floats), padded to 4 columns a row when packed.
        floats = .allocate(capacity: bytes / 2)
        codes = .allocate(capacity: bytes / 2)
        packed = .allocate(byteCount: 2 * bytes, alignment: 64)
    }

    deinit {
        input.deallocate()
        floats.deallocate()
        codes.deallocate()
        packed.deallocate()
    }

    /// The header unit: the engine compresses the header it writes; the input's, of about the same size, here.
    private func header() throws(BenchError) {
        let raw = UnsafeMutableRawBufferPointer(rebasing: input[0..<file.header.dataStart])
        try timed(\.read) { () throws(BenchError) in
            do throws(SafeTensorsError) { try file.read(absoluteOffset: 0, into: raw) } catch {
                throw BenchError(error.description)
            }
        }
        hash(raw)
        try emit(UnsafeRawBufferPointer(raw))
    }

    /// A tensor left as it is: read, hashed and compressed in 4 MiB pieces.
    private func copy(_ tensor: TensorInfo) throws(BenchError) {
        var start = 0
        while start < tensor.byteCount {
            let end = min(tensor.byteCount, start + Self.unitBytes)
            let raw = try read(tensor, start..<end)
            try emit(UnsafeRawBufferPointer(raw))
            start = end
        }
    }

    private func quantize(_ tensor: TensorInfo, _ scheme: Manifest.Scheme) throws(BenchError) {
        guard scheme.granularity != .tensor else {
            throw BenchError("\(tensor.name): --stages measures group and per-channel scales, not per-tensor")
        }
        let format = try Self.floatFormat(tensor)
        let rows = tensor.shape.count >= 2 ? tensor.shape[0] : 1
        let cols = rows == 0 ? 0 : tensor.elementCount / rows
        let groupSize = scheme.granularity == .group ? scheme.groupSize ?? cols : max(cols, 1)
        let groups = (cols + groupSize - 1) / max(groupSize, 1)
        let grid = CodeGrid(symmetric: scheme.symmetric, scaleFormat: Self.scaleFormat(scheme.scaleDtype))
        let scales = UnsafeMutableBufferPointer<Float>.allocate(capacity: rows * groups)
        let zeroPoints = UnsafeMutableBufferPointer<Int8>.allocate(capacity: scheme.symmetric ? 0 : rows * groups)
        defer { scales.deallocate(); zeroPoints.deallocate() }
        let width = tensor.dtype.bitsPerElement / 8
        let rowsPerUnit = max(1, Self.unitBytes / max(cols * width, 1))
        let pack = scheme.format == .packQuantized
        var row = 0
        while row < rows {
            let end = min(rows, row + rowsPerUnit)
            let count = (end - row) * cols
            let raw = try read(tensor, (row * cols * width)..<(end * cols * width))
            let g = (row * groups)..<(end * groups)
            let unit = timed(\.quantize) { () -> UnsafeRawBufferPointer in
                let x: UnsafeBufferPointer<Float>
                if format == .f32 {
                    x = UnsafeBufferPointer(raw.bindMemory(to: Float.self))
                } else {
                    Kernels.decode(raw.baseAddress!, format: format, count: count, into: floats.baseAddress!)
                    x = UnsafeBufferPointer(rebasing: floats[0..<count])
                }
                let q = UnsafeMutableBufferPointer(rebasing: codes[0..<count])
                _ = Kernels.quantizeGroups(
                    x, rows: end - row, cols: cols, groupSize: groupSize, grid: grid, calibrator: nil, q: q,
                    scales: UnsafeMutableBufferPointer(rebasing: scales[g]),
                    zeroPoints: UnsafeMutableBufferPointer(rebasing: zeroPoints[scheme.symmetric ? 0..<0 : g]))
                guard pack else { return UnsafeRawBufferPointer(q) }
                let bytes = UnsafeMutableRawBufferPointer(
                    rebasing: packed[0..<((end - row) * PackedCodes.paddedCols(cols))])
                PackedCodes.pack(UnsafeBufferPointer(q), rows: end - row, cols: cols, into: bytes)
                return UnsafeRawBufferPointer(bytes)
            }
            try emit(unit)
            row = end
        }
        let stored = UnsafeMutableRawBufferPointer.allocate(
            byteCount: scales.count * grid.scaleFormat.bytesPerElement, alignment: 64)
        defer { stored.deallocate() }
        timed(\.quantize) {
            if let base = stored.baseAddress { grid.scaleFormat.encode(UnsafeBufferPointer(scales), into: base) }
        }
        try emit(UnsafeRawBufferPointer(stored))
        if !scheme.symmetric { try emit(UnsafeRawBufferPointer(zeroPoints)) }
        if pack {
            try tensor.shape.map { Int64($0).littleEndian }.withUnsafeBytes { raw in
                Result { () throws(BenchError) in try emit(raw) }
            }.get()
        }
    }

    private func finish() throws(BenchError) {
        timed(\.hashInput) { _ = inputHash.finalize() }
        timed(\.hashOutput) { _ = outputHash.finalize() }
        try timed(\.write, wall: \.fsyncWall) { () throws(BenchError) in
            do throws(SystemError) { try out.sync() } catch { throw BenchError(error) }
        }
    }

    /// Reads bytes `range` of the tensor into the input buffer, and hashes them.
    private func read(_ tensor: TensorInfo, _ range: Range<Int>) throws(BenchError) -> UnsafeMutableRawBufferPointer {
        let raw = UnsafeMutableRawBufferPointer(rebasing: input[0..<range.count])
        let start = tensor.dataRange.lowerBound + range.lowerBound
        try timed(\.read) { () throws(BenchError) in
            do throws(SafeTensorsError) { try file.read(dataRange: start..<(start + range.count), into: raw) } catch {
                throw BenchError(error.description)
            }
        }
        hash(raw)
        return raw
    }

    private func hash(_ raw: UnsafeMutableRawBufferPointer) {
        timed(\.hashInput) { inputHash.update(bufferPointer: UnsafeRawBufferPointer(raw)) }
    }

    /// Compresses `bytes` as one frame, hashes the frame and writes it.
    private func emit(_ bytes: UnsafeRawBufferPointer) throws(BenchError) {
        frame.removeAll(keepingCapacity: true)
        try timed(\.compress) { () throws(BenchError) in
            do throws(ZstdError) { _ = try compressor.compressFrame(bytes, appendingTo: &frame) } catch {
                throw BenchError("zstd: \(error)")
            }
        }
        frame.withUnsafeBytes { raw in timed(\.hashOutput) { outputHash.update(bufferPointer: raw) } }
        try timed(\.write, wall: \.writeWall) { () throws(BenchError) in
            do throws(SystemError) { try out.write(frame) } catch { throw BenchError(error) }
        }
    }

    /// Runs `body`, adding the thread's CPU time to `stage` and, with `wall`, the wall time to `wall`.
    @inline(__always)
    private func timed<T, E: Error>(_ stage: WritableKeyPath<StageSeconds, Double>,
                                    wall: WritableKeyPath<StageSeconds, Double>? = nil, _ body: () throws(E) -> T)
        throws(E) -> T
    {
        let cpu = FileSystem.threadCPUSeconds()
        let start = wall == nil ? 0 : FileSystem.monotonicSeconds()
        defer {
            time[keyPath: stage] += FileSystem.threadCPUSeconds() - cpu
            if let wall { time[keyPath: wall] += FileSystem.monotonicSeconds() - start }
        }
        return try body()
    }

    private static func floatFormat(_ tensor: TensorInfo) throws(BenchError) -> FloatFormat {
        switch tensor.dtype {
        case .F32: .f32
        case .F16: .f16
        case .BF16: .bf16
        case .F64: .f64
        default: throw BenchError("\(tensor.name): \(tensor.dtype) is not a float type the engine quantizes")
        }
    }

    private static func scaleFormat(_ dtype: DType) -> ScaleFormat {
        switch dtype {
        case .F16: .f16
        case .BF16: .bf16
        default: .f32
        }
    }
}

/// The files of a checkpoint: a .safetensors file, or the .safetensors files of a folder (by name).
struct StageInput {
    var path: String
    var files: [(path: String, name: String, bytes: Int)]
    var bytes: Int { files.reduce(0) { $0 + $1.bytes } }

    init(_ path: String) throws(BenchError) {
        self.path = path
        let names: [String]
        if FileSystem.kind(FilePath(path)) == .directory {
            do { names = try FileSystem.list(FilePath(path)).filter { $0.hasSuffix(".safetensors") } } catch {
                throw BenchError(error)
            }
            files = names.map { (path + "/" + $0, $0, BenchPath.size(path + "/" + $0)) }
        } else {
            files = [(path, BenchPath.base(path), BenchPath.size(path))]
        }
        if files.isEmpty { throw BenchError("no .safetensors file in \(path)") }
    }

    /// Seconds to pread every byte with `threads` threads (8 MiB pieces taken in turn): from the page cache, or
    /// with `direct` from the disk (O_DIRECT; nil where the filesystem refuses it).
    func readSeconds(threads: Int, direct: Bool = false) throws(BenchError) -> Double? {
        let piece = 8 << 20
        let pieces = files.indices.flatMap { f in
            stride(from: 0, to: files[f].bytes, by: piece).map { (file: f, offset: $0) }
        }
        let descriptors: [FileDescriptor]
        do throws(SystemError) {
            descriptors = try files.map { f throws(SystemError) in
                try FileDescriptor.openFile(FilePath(f.path), .readOnly)
            }
        } catch {
            throw BenchError(error)
        }
        defer { for d in descriptors { try? d.close() } }
        if direct {
            for (d, f) in zip(descriptors, files) where (try? d.setDirect(true, path: FilePath(f.path))) != true {
                return nil
            }
        }
        let next = Atomic<Int>(0)
        let failure = Mutex<SystemError?>(nil)
        let start = FileSystem.monotonicSeconds()
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: piece, alignment: 4096)
            defer { buffer.deallocate() }
            while true {
                let k = next.add(1, ordering: .relaxed).oldValue
                guard k < pieces.count else { return }
                do throws(SystemError) {
                    // One read a piece: O_DIRECT wants aligned offsets, and only a file's last piece is short.
                    _ = try descriptors[pieces[k].file].read(into: buffer, at: pieces[k].offset, path: nil)
                } catch {
                    failure.withLock { $0 = $0 ?? error }
                }
            }
        }
        let seconds = FileSystem.monotonicSeconds() - start
        if let error = failure.withLock({ $0 }) { throw BenchError(error) }
        return seconds
    }
}

extension BenchRunner {
    /// `quantd-bench --stages`: the stages alone on one thread, end to end at 1 and all threads, the serial chain,
    /// and the projection from them.
    func runStages(input path: String) throws(BenchError) -> StageReport {
        let startedAt = Date.now.ISO8601Format()
        try cleanOutputs()
        let machine = currentMachine()
        let input = try StageInput(path)
        let gb = Double(input.bytes) / 1e9
        let repeats = options.repeats

        status("reading \(path) into the page cache")
        for f in input.files { _ = try readPass(f.path) }
        var cached = Double.infinity
        var disk: Double? = .infinity
        for _ in 0..<repeats {
            cached = min(cached, try input.readSeconds(threads: threads) ?? .infinity)
            if let best = disk { disk = try input.readSeconds(threads: threads, direct: true).map { min(best, $0) } }
        }

        let endToEnd = try endToEnd(path, bytes: input.bytes)
        let manifest: Manifest
        do { manifest = try Manifest.read(folder: dir + "/out-t\(threads)") } catch {
            throw BenchError("cannot read the manifest of the run with \(threads) threads: \(error)")
        }
        var schemes: [String: [String: Manifest.Scheme]] = [:]
        for t in manifest.tensors where t.decision == "quantized" { schemes[t.file, default: [:]][t.name] = t.scheme }
        let quantizedBytes = manifest.tensors.filter { $0.decision == "quantized" }.reduce(0) { $0 + $1.sourceBytes }

        var perFile = [StageSeconds](repeating: StageSeconds(), count: input.files.count)
        for r in 0..<repeats {
            for (k, f) in input.files.enumerated() {
                status("stages alone, one thread: \(f.name) (\(r + 1) of \(repeats))")
                let seconds = try StagePass.run(f.path, schemes: schemes[f.name] ?? [:], level: manifest.config.level,
                                                output: dir + "/" + StagePass.outputName)
                perFile[k] = r == 0 ? seconds : perFile[k].best(seconds)
            }
        }
        try cleanOutputs()
        Terminal.endStatus()

        let sum = { (stage: KeyPath<StageSeconds, Double>) in perFile.reduce(0) { $0 + $1[keyPath: stage] } }
        func stage(_ name: String, _ what: String, _ seconds: Double, wall: Bool = false) -> StageReport.Stage {
            .init(name: name, what: what, clock: wall ? "wall" : "thread CPU", seconds: seconds,
                  secondsPerGB: seconds / gb, gbPerSecond: gb / seconds, inTotal: !wall)
        }
        let level = manifest.config.level
        let stages = [
            stage("read", "pread 4 MiB units, page cache hot", sum(\.read)),
            stage("quantize", "Kernels.quantizeGroups, \(manifest.config.schemeDescription)"
                + (manifest.config.scheme.format == .packQuantized ? ", packed" : ""), sum(\.quantize)),
            stage("compress", "zstd level \(level), a frame a unit", sum(\.compress)),
            stage("hash", "SHA-256 of input \(Format.fixed(sum(\.hashInput), 2)) s + of output "
                + "\(Format.fixed(sum(\.hashOutput), 2)) s", sum(\.hashInput) + sum(\.hashOutput)),
            stage("write", "OutputFile, O_DIRECT where allowed, no fsync", sum(\.write)),
            stage("write + fsync", "wall seconds, fsync once a file: waits on the disk, not in the total",
                  sum(\.writeWall) + sum(\.fsyncWall), wall: true),
        ]
        let stageTotal = stages.filter(\.inTotal).reduce(0) { $0 + $1.secondsPerGB }
        let one = endToEnd.first!
        let endToEndCPU = (one.best.userSeconds + one.best.systemSeconds) / gb
        let cores = max(stageTotal, endToEndCPU)

        let longest = perFile.indices.max { perFile[$0].serialChain < perFile[$1].serialChain }!
        let l = perFile[longest]
        let chainSeconds = manifest.timings.planSeconds + l.serialChain + manifest.timings.commitSeconds
        let chain = StageReport.SerialChain(
            file: input.files[longest].name, fileBytes: input.files[longest].bytes,
            planSeconds: manifest.timings.planSeconds, hashInputSeconds: l.hashInput, hashOutputSeconds: l.hashOutput,
            writeSeconds: l.writeWall, fsyncSeconds: l.fsyncWall, commitSeconds: manifest.timings.commitSeconds,
            fileChainSeconds: perFile.map(\.serialChain), seconds: chainSeconds, secondsPerGB: chainSeconds / gb)
        let read = StageReport.ReadBandwidth(threads: threads, pageCacheGBPerSecond: gb / cached,
                                             diskGBPerSecond: disk.map { gb / $0 })
        if disk == nil { notes.append("the filesystem refuses O_DIRECT: no disk read figure, no cold projection") }

        let measured = Dictionary(endToEnd.map { ($0.threads, $0.gbPerSecond) }, uniquingKeysWith: { a, _ in a })
        let projections = Array(Set([1, threads, 8, 16, 64])).sorted().map { n in
            StageReport.Projection(cores: n, coreSecondsPerGB: cores, chain: chain, gb: gb,
                                   diskGBPerSecond: read.diskGBPerSecond, measuredGBPerSecond: measured[n])
        }
        notes.append("a stage's seconds are the CPU seconds of one thread (CLOCK_THREAD_CPUTIME_ID) for that step "
            + "alone, summed over the files, the best of \(repeats) passes; the serial chain takes the writes and the "
            + "fsync on the wall clock")
        notes.append("the stages and the end-to-end runs read from a hot page cache (one untimed pass first); R is "
            + "this disk's O_DIRECT read, the cap of an input read cold; a hot page cache's cap (memory bandwidth) "
            + "is not measured")
        let report = StageReport(
            quantdVersion: quantdVersion, startedAt: startedAt, machine: machine, input: path,
            files: zip(input.files, perFile).map { .init(name: $0.name, bytes: $0.bytes, seconds: $1) },
            inputBytes: input.bytes, quantizedBytes: quantizedBytes, repeats: repeats, threads: threads,
            stages: stages, stageCoreSecondsPerGB: stageTotal, endToEnd: endToEnd,
            endToEndCPUSecondsPerGB: endToEndCPU, coreSecondsPerGB: cores, readBandwidth: read, serialChain: chain,
            projections: projections, formula: StageReport.formula, commands: commands, notes: notes)
        try writeJSON(report)
        return report
    }
}
