import QuantSystem
import Crypto
import Dispatch
import FoundationEssentials
import Quantization
import SafeTensors
import Zstd

/// What the pipeline measured for one quantized tensor.
struct TensorOutcome: Sendable {
    var stats: ErrorStats
}

/// What the pipeline produced for one file.
struct FileOutcome: Sendable {
    var frames: [Manifest.Frame]
    var outputSize: Int
    var outputSHA256: String
    var inputSHA256: String
    var inputSize: Int
    /// Source bytes read with O_DIRECT, around the page cache, because they were not in it.
    var uncachedBytes: Int
    /// Indexed like `FilePlan.tensors`; nil for tensors left alone.
    var tensorStats: [ErrorStats?]
}

/// Per quantized tensor, while its units are in flight: scales written by the tiles, the tiles'
/// error figures (merged in tile order, so the result does not depend on the thread count).
private final class TensorState: @unchecked Sendable {
    // @unchecked: tiles write disjoint slices of `scales`, `zeroPoints` and `tileStats`; `params` and the
    // counters are read and written under the pipeline's monitor.
    let scales: UnsafeMutableBufferPointer<Float>
    let zeroPoints: UnsafeMutableBufferPointer<Int8>
    let tileStats: UnsafeMutableBufferPointer<ErrorStats>
    var params: QuantParams?
    /// How the per-tensor calibration fared (per-tensor granularity; the tiles count their own groups).
    var calibration = CalibrationCounts()
    var tilesLeft: Int

    init(layout: QuantLayout, tiles: Int) {
        scales = .allocate(capacity: layout.scaleCount)
        scales.initialize(repeating: 0)
        zeroPoints = .allocate(capacity: layout.symmetric ? 0 : layout.scaleCount)
        zeroPoints.initialize(repeating: 0)
        tileStats = .allocate(capacity: tiles)
        tileStats.initialize(repeating: .zero)
        tilesLeft = tiles
    }

    deinit {
        scales.deallocate()
        zeroPoints.deallocate()
        tileStats.deallocate()
    }

    var stats: ErrorStats {
        var total = tileStats.reduce(into: ErrorStats.zero) { $0.merge($1) }
        total.calibration.merge(calibration)
        return total
    }
}

/// Worker-private scratch: decoded floats and int8 codes of the current tile.
private struct WorkerScratch: ~Copyable {
    var floats = ScratchBuffer()
    var codes = ScratchBuffer()
    var raw = ScratchBuffer()
    /// Codes in the packed layout, when the tensor is written `pack-quantized`.
    var packed = ScratchBuffer()
}

/// Runs one file's plan: a reader claims units in order (bounded window, shared budget) and reads ahead those
/// whose bytes are not in the page cache; workers take the claimed units in order, read the others, quantize
/// and compress them; the calling thread writes frames in order and a hasher hashes the input as the bytes
/// stream through.
final class Pipeline: @unchecked Sendable {
    // @unchecked: mutable state is behind `monitor`; see each field.
    private let plan: FilePlan
    private let file: SafeTensorsFile
    private let level: Int
    private let threads: Int
    private let window: Int
    private let budget: ByteBudget?
    private let cancel: CancellationFlag?

    private let monitor = Monitor()
    /// Serialises claiming a unit with taking its bytes from the shared budget, so budget is always held by
    /// the lowest unwritten units and the writer can always make progress.
    private let claimLock = Monitor()
    private var next = 0
    private var written = 0
    /// Claimed units, handed from the reader to the workers: `staged[i]` for `taken <= i < next`.
    private var staged: [UnitBuffers?]
    private var taken = 0
    private var readersLeft = Pipeline.readers
    private var uncachedBytes = 0
    /// O_DIRECT reads for the units whose bytes are not in the page cache (nil: every read is buffered).
    private let uncached: UncachedReads?
    private var failure: EngineError?
    private var done: [UnitBuffers?]
    private var pool: [UnitBuffers] = []
    private var states: [Int: TensorState] = [:]
    private var finalStats: [ErrorStats?]

    /// Where a resumed file starts (nil: at its beginning).
    private let start: Resumable?
    /// Checkpoints after a unit that ends a tensor, at least `every` source bytes apart (`ResumeJournal`).
    private let checkpoints: (every: Int, save: (FileCheckpoint) throws(EngineError) -> Void)?
    /// The units after which a checkpoint is taken (a function of the plan: the writer and the hasher both know).
    private let checkpointUnits: Set<Int>
    /// The input hash's state after each unit of `checkpointUnits`, saved by the hasher for the checkpointer
    /// (none for swift-crypto's hash).
    private var inputStates: [Int: SHA256Midstate] = [:]
    /// Where checkpoints are fsynced and journaled, one after another, off the writer's thread (`checkpoint`).
    private let checkpointer = DispatchQueue(label: "quantd.checkpointer")
    private let checkpointing = DispatchGroup()

    init(plan: FilePlan, file: SafeTensorsFile, level: Int, threads: Int, budget: ByteBudget?,
         cancel: CancellationFlag?, from start: Resumable? = nil,
         checkpoints: (every: Int, save: (FileCheckpoint) throws(EngineError) -> Void)? = nil) {
        self.start = start
        self.checkpoints = checkpoints
        checkpointUnits = checkpoints.map { Self.checkpointUnits(plan, every: $0.every, from: start?.checkpoint) } ?? []
        self.plan = plan
        self.file = file
        self.level = level
        self.threads = max(1, min(threads, plan.units.count))
        self.window = 2 * self.threads + 2 + Self.readers
        self.budget = budget
        self.cancel = cancel
        done = Array(repeating: nil, count: plan.units.count)
        staged = Array(repeating: nil, count: plan.units.count)
        finalStats = Array(repeating: nil, count: plan.tensors.count)
        uncached = Self.directReads
            ? UncachedReads(descriptor: file.descriptorNumber, size: file.fileSize, path: file.path) : nil
        if let c = start?.checkpoint {
            (next, written, emitted, hashed, taken) = (c.unit, c.unit, c.unit, c.unit, c.unit)
            for (t, figures) in c.stats { finalStats[t] = figures.stats }
        }
    }

    /// Runs to completion, writing the compressed stream to `output`.
    func run(output: OutputFile, progress: (_ tensorsDone: Int, _ bytesDone: Int) -> Void) throws(EngineError)
        -> FileOutcome
    {
        let group = DispatchGroup()
        // One serial queue per worker and one for the hasher: serial queues overcommit, so each gets a thread of
        // its own. On the global concurrent queue these loops, which block (window, budget, per-tensor waits),
        // would share a pool only as wide as the cores.
        for i in 0..<Self.readers {
            DispatchQueue(label: "quantd.reader.\(i)").async(group: group) { [self] in readAhead() }
        }
        for i in 0..<threads {
            DispatchQueue(label: "quantd.worker.\(i)").async(group: group) { [self] in work() }
        }
        DispatchQueue(label: "quantd.hasher").async(group: group) { [self] in hashInput() }
        var outcome: FileOutcome
        do throws(EngineError) {
            outcome = try write(output, progress: progress)
        } catch {
            fail(error)
            group.wait()
            checkpointing.wait()
            releaseUnwritten()
            throw monitor.withLock { failure ?? error }
        }
        group.wait()
        checkpointing.wait()
        if let failure = monitor.withLock({ failure }) {
            releaseUnwritten()
            throw failure
        }
        outcome.tensorStats = finalStats
        outcome.uncachedBytes = monitor.withLock { uncachedBytes }
        return outcome
    }

    /// After a failure: give back the budget of units that were claimed but never taken, or finished but never
    /// written.
    private func releaseUnwritten() {
        let held = monitor.withLock { done.indices.filter { done[$0] != nil || staged[$0] != nil } }
        for index in held { budget?.release(plan.units[index].budgetBytes) }
    }

    private func fail(_ error: EngineError) {
        monitor.withLock {
            if failure == nil { failure = error }
            monitor.broadcast()
        }
    }

    // MARK: Workers

    private func work() {
        var compressor: ZstdCompressor
        do {
            compressor = try ZstdCompressor(level: level, checksum: true)
        } catch {
            fail(EngineError(.io, file: plan.outputName, reason: "zstd: \(error)", stage: "compress"))
            return
        }
        var scratch = WorkerScratch()
        while let (index, buffers) = take() {
            do throws(EngineError) {
                try process(plan.units[index], buffers: buffers, compressor: &compressor, scratch: &scratch)
            } catch {
                budget?.release(plan.units[index].budgetBytes)
                fail(error)
                return
            }
            monitor.withLock {
                done[index] = buffers
                monitor.broadcast()
            }
        }
    }

    /// The next claimed unit, in order; nil when there is nothing left or the job failed.
    private func take() -> (Int, UnitBuffers)? {
        monitor.withLock { () -> (Int, UnitBuffers)? in
            // A unit is claimed (`next` moves past it) before it is staged: its reads come in between.
            while failure == nil {
                if taken < staged.count, let buffers = staged[taken] {
                    staged[taken] = nil
                    taken += 1
                    return (taken - 1, buffers)
                }
                if readersLeft == 0 { return nil }
                monitor.wait()
            }
            return nil
        }
    }

    // MARK: Reader

    /// QUANTD_READS=buffered turns the O_DIRECT reads off (for A/B measurements).
    static let directReads = ProcessInfo.processInfo.environment["QUANTD_READS"] != "buffered"
    /// Readers, each with one unit's O_DIRECT read in flight at most: one 4 MiB read at a time gets 0.8 GB/s
    /// from a disk that gives 1.3 to buffered reads with the kernel's read-ahead (dd, here).
    static let readers = 4

    /// Claims units in order, with the other readers, and stages them for the workers. The bytes of a unit that are not in the page
    /// cache are read here, with O_DIRECT, while the workers are busy with the units before it: so a cold
    /// input is read under the work, up to the window ahead, and costs no page-cache copy. Units in the cache
    /// are left to the workers to read (in parallel, through the cache).
    private func readAhead() {
        while let (index, buffers) = claim() {
            do throws(EngineError) {
                try preload(plan.units[index], into: buffers)
            } catch {
                budget?.release(plan.units[index].budgetBytes)
                fail(error)
                break
            }
            monitor.withLock {
                staged[index] = buffers
                if buffers.preloaded { uncachedBytes += buffers.inputCount }
                monitor.broadcast()
            }
        }
        monitor.withLock {
            readersLeft -= 1
            monitor.broadcast()
        }
    }

    /// The source bytes of a unit, relative to the data buffer, with the element width they are viewed with.
    private func sourceRange(_ unit: Unit) -> (range: Range<Int>, width: Int)? {
        switch unit.kind {
        case .copy(let t, let range):
            let start = plan.tensors[t].info.dataRange.lowerBound + range.lowerBound
            return (start..<(start + range.count), 1)
        case .tile(let t, let rows, _):
            let p = plan.tensors[t]
            let width = p.info.dtype.bitsPerElement / 8
            let start = p.info.dataRange.lowerBound + rows.lowerBound * p.layout!.cols * width
            return (start..<(start + unit.inputBytes), width)
        case .header, .calibrate, .scales, .zeroPoints, .shape:
            return nil
        }
    }

    /// Reads the unit's bytes with O_DIRECT if any of them is not in the page cache (and they sit at an
    /// address their element type allows: the kernels view F32 bytes in place).
    private func preload(_ unit: Unit, into buffers: UnitBuffers) throws(EngineError) {
        guard let uncached, let (range, width) = sourceRange(unit), !range.isEmpty else { return }
        let absolute = (file.header.dataStart + range.lowerBound)..<(file.header.dataStart + range.upperBound)
        guard absolute.lowerBound % width == 0, !uncached.isCached(absolute) else { return }
        let room = buffers.input.reserve(UncachedReads.span(absolute))
        buffers.inputStart = try Files.run("read") { () throws(SystemError) in try uncached.read(absolute, into: room) }
        buffers.inputCount = range.count
        buffers.preloaded = true
    }

    /// The next unit in order and buffers for it, once the window and the budget allow; nil when there is
    /// nothing left or the job failed.
    private func claim() -> (Int, UnitBuffers)? {
        claimLock.withLock { () -> (Int, UnitBuffers)? in
            let index = monitor.withLock { () -> Int? in
                while failure == nil && next < plan.units.count && next - written >= window {
                    monitor.wait()
                }
                if failure == nil && cancel?.isCancelled == true {
                    failure = EngineError(.cancelled, file: plan.sourcePath, reason: "cancelled", stage: "quantize")
                    monitor.broadcast()
                }
                return failure == nil && next < plan.units.count ? next : nil
            }
            guard let index else { return nil }
            budget?.acquire(plan.units[index].budgetBytes)
            return monitor.withLock {
                next = index + 1
                return (index, pool.popLast() ?? UnitBuffers())
            }
            // The unit is not staged yet: workers wait for `staged[index]`, which readAhead sets.
        }
    }

    private func state(_ tensor: Int) -> TensorState {
        monitor.withLock {
            if let s = states[tensor] { return s }
            let s = TensorState(layout: plan.tensors[tensor].layout!, tiles: plan.tilesPerTensor[tensor])
            states[tensor] = s
            return s
        }
    }

    /// Waits until `ready` holds for the tensor's state (or the job failed).
    private func waitFor(_ s: TensorState, _ ready: (TensorState) -> Bool) throws(EngineError) {
        try monitor.withLock { () throws(EngineError) in
            while failure == nil && !ready(s) { monitor.wait() }
            if let failure { throw failure }
        }
    }

    private func process(_ unit: Unit, buffers: UnitBuffers, compressor: inout ZstdCompressor,
                         scratch: inout WorkerScratch) throws(EngineError) {
        switch unit.kind {
        case .header:
            let raw = buffers.input.reserve(plan.inputHeaderBytes)
            try read(absolute: 0, into: raw)
            buffers.inputCount = raw.count
            try plan.outputHeader.withUnsafeBytes { b in
                Result { () throws(EngineError) in try compress(b, into: buffers, with: &compressor) }
            }.get()

        case .copy(let t, let range):
            let raw = try input(unit, plan.tensors[t].info, range, into: buffers)
            try compress(UnsafeRawBufferPointer(raw), into: buffers, with: &compressor)

        case .calibrate(let t):
            let p = plan.tensors[t]
            let s = state(t)
            let params: QuantParams
            if let calibrator = plan.calibrator {
                // A calibrator sees the whole tensor at once: it is read and decoded here, in full.
                let x = try TensorQuantizer.floats(p.info, file: file)
                let range = x.withUnsafeBufferPointer { Kernels.range($0) }
                if range.nonFinite > 0 { throw nonFinite(p, count: range.nonFinite) }
                (params, s.calibration) = x.withUnsafeBufferPointer {
                    TensorQuantizer.tensorParams($0, range: range, layout: p.layout!, calibrator: calibrator)
                }
            } else {
                let range = try scan(p, scratch: &scratch)
                if range.nonFinite > 0 { throw nonFinite(p, count: range.nonFinite) }
                params = p.layout!.grid.params(.full(range, symmetric: p.layout!.symmetric))
            }
            s.scales[0] = params.scale
            if !p.layout!.symmetric { s.zeroPoints[0] = params.zeroPoint }
            monitor.withLock {
                s.params = params
                monitor.broadcast()
            }

        case .tile(let t, let rows, let tile):
            let p = plan.tensors[t]
            let l = p.layout!
            let s = state(t)
            let width = p.info.dtype.bitsPerElement / 8
            let count = rows.count * l.cols
            let start = rows.lowerBound * l.cols * width
            let raw = try input(unit, p.info, start..<(start + count * width), into: buffers)
            let x = floats(raw, dtype: p.info.dtype, count: count, scratch: &scratch)
            let q = scratch.codes.reserve(count).bindMemory(to: Int8.self)
            let stats: ErrorStats
            if l.granularity == .tensor {
                try waitFor(s) { $0.params != nil }
                let params = monitor.withLock { s.params! }
                stats = Kernels.quantize(x, params: params, symmetric: l.symmetric, q: q)
            } else {
                let g = l.groupsPerRow
                let scales = UnsafeMutableBufferPointer(rebasing: s.scales[(rows.lowerBound * g)..<(rows.upperBound * g)])
                let zeros = l.symmetric
                    ? UnsafeMutableBufferPointer(rebasing: s.zeroPoints[0..<0])
                    : UnsafeMutableBufferPointer(rebasing: s.zeroPoints[(rows.lowerBound * g)..<(rows.upperBound * g)])
                let result = TensorQuantizer.groups(x, rows: rows.count, layout: l, calibrator: plan.calibrator, q: q,
                                                    scales: scales, zeroPoints: zeros)
                if result.nonFinite > 0 {
                    throw nonFinite(p, count: try scan(p, scratch: &scratch).nonFinite)
                }
                stats = result.stats
            }
            s.tileStats[tile] = stats
            switch l.format {
            case .intQuantized:
                try compress(UnsafeRawBufferPointer(q), into: buffers, with: &compressor)
            case .packQuantized:
                let packed = scratch.packed.reserve(rows.count * l.storedRowBytes)
                PackedCodes.pack(UnsafeBufferPointer(q), rows: rows.count, cols: l.cols, into: packed)
                try compress(UnsafeRawBufferPointer(packed), into: buffers, with: &compressor)
            }
            monitor.withLock {
                s.tilesLeft -= 1
                monitor.broadcast()
            }

        case .scales(let t):
            let s = state(t)
            try waitFor(s) { $0.tilesLeft == 0 }
            let format = plan.tensors[t].layout!.scaleDtype.format
            let stored = scratch.codes.reserve(s.scales.count * format.bytesPerElement)
            if let base = stored.baseAddress { format.encode(UnsafeBufferPointer(s.scales), into: base) }
            try compress(UnsafeRawBufferPointer(stored), into: buffers, with: &compressor)

        case .zeroPoints(let t):
            let s = state(t)
            try waitFor(s) { $0.tilesLeft == 0 }
            try compress(UnsafeRawBufferPointer(s.zeroPoints), into: buffers, with: &compressor)

        case .shape(let t):
            let shape = plan.tensors[t].info.shape.map { Int64($0).littleEndian }
            try shape.withUnsafeBytes { b in
                Result { () throws(EngineError) in try compress(b, into: buffers, with: &compressor) }
            }.get()
        }
    }

    /// The tile as Float32: F32 is used in place, other float types are decoded into scratch.
    private func floats(_ raw: UnsafeMutableRawBufferPointer, dtype: DType, count: Int,
                        scratch: inout WorkerScratch) -> UnsafeBufferPointer<Float> {
        TensorScan.asFloats(raw, dtype: dtype, count: count, floats: &scratch.floats)
    }

    /// Range and non-finite count of a whole tensor, read tile by tile into scratch.
    private func scan(_ p: TensorPlan, scratch: inout WorkerScratch) throws(EngineError) -> RangeStats {
        try TensorScan.range(p.info, file: file, raw: &scratch.raw, floats: &scratch.floats)
    }

    private func nonFinite(_ p: TensorPlan, count: Int) -> EngineError {
        EngineError(.badInput, file: plan.sourcePath, tensor: p.info.name,
                    reason: "holds \(count) non-finite values (NaN or Inf); "
                        + "pass --keep-nonfinite to leave such tensors unquantized", stage: "quantize")
    }

    private func compress(_ bytes: UnsafeRawBufferPointer, into buffers: UnitBuffers,
                          with compressor: inout ZstdCompressor) throws(EngineError) {
        do {
            _ = try compressor.compressFrame(bytes, appendingTo: &buffers.frame)
        } catch {
            throw EngineError(.io, file: plan.outputName, reason: "zstd: \(error)", stage: "compress")
        }
    }

    /// The unit's source bytes (`range` of the tensor's data): read ahead by the reader, or read now through
    /// the page cache.
    private func input(_ unit: Unit, _ info: TensorInfo, _ range: Range<Int>, into buffers: UnitBuffers)
        throws(EngineError) -> UnsafeMutableRawBufferPointer
    {
        if buffers.preloaded { return buffers.inputBytes }
        let raw = buffers.input.reserve(range.count)
        try read(info, range, into: raw)
        buffers.inputCount = raw.count
        return raw
    }

    private func read(_ info: TensorInfo, _ range: Range<Int>, into buffer: UnsafeMutableRawBufferPointer)
        throws(EngineError)
    {
        let start = info.dataRange.lowerBound + range.lowerBound
        do { try file.read(dataRange: start..<(start + range.count), into: buffer) } catch {
            throw EngineError(error, stage: "read")
        }
    }

    private func read(absolute offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(EngineError) {
        do { try file.read(absoluteOffset: offset, into: buffer) } catch { throw EngineError(error, stage: "read") }
    }

    // MARK: Writer and hasher

    /// The two in-order consumers run side by side: the writer (the calling thread) appends frames and hashes the
    /// output; the hasher hashes the input bytes the units read. A unit goes back to the pool when both are done.
    private var emitted = 0
    private var hashed = 0
    private var inputDigest: (sha256: String, bytes: Int)?

    /// Under the monitor: gives unit `index` back once both consumers are past it. Units retire in order.
    private func retire(_ index: Int) {
        guard emitted > index, hashed > index, let buffers = done[index] else { return }
        budget?.release(plan.units[index].budgetBytes)
        buffers.reset()
        pool.append(buffers)
        done[index] = nil
        written = index + 1
        monitor.broadcast()
    }

    /// Waits for unit `index` to be done; nil when the job failed.
    private func completed(_ index: Int) -> UnitBuffers? {
        monitor.withLock {
            while failure == nil && done[index] == nil { monitor.wait() }
            return failure == nil ? done[index] : nil
        }
    }

    /// The units after which the writer takes a checkpoint: each that ends a tensor (or the header) at least
    /// `every` source bytes after the last checkpoint, but the last unit.
    static func checkpointUnits(_ plan: FilePlan, every: Int, from start: FileCheckpoint?) -> Set<Int> {
        var units = Set<Int>()
        var inputBytes = start?.inputOffset ?? 0
        var last = inputBytes
        for (index, unit) in plan.units.enumerated().dropFirst(start?.unit ?? 0) {
            inputBytes += unit.inputBytes
            if index + 1 < plan.units.count, inputBytes - last >= every,
               unit.kind.isHeader || unit.finishesTensor(in: plan) != nil {
                units.insert(index)
                last = inputBytes
            }
        }
        return units
    }

    private func hashInput() {
        // From a checkpoint: its saved state, or the source up to it hashed again when the checkpoint was taken up.
        var hash = start?.inputHash ?? StreamHash.fresh()
        var bytes = start?.checkpoint.inputOffset ?? 0
        for index in plan.units.indices.dropFirst(start?.checkpoint.unit ?? 0) {
            guard let buffers = completed(index) else { return }
            hash.update(bufferPointer: UnsafeRawBufferPointer(buffers.inputBytes))
            bytes += buffers.inputCount
            let state = checkpointUnits.contains(index) ? hash.midstate : nil
            monitor.withLock {
                hashed = index + 1
                if let state { inputStates[index] = state }
                retire(index)
                if checkpointUnits.contains(index) { monitor.broadcast() }  // the writer may wait for it
            }
        }
        let digest = (hash.finalize(), bytes)
        monitor.withLock {
            inputDigest = digest
            monitor.broadcast()
        }
    }

    private func write(_ output: OutputFile, progress: (Int, Int) -> Void) throws(EngineError) -> FileOutcome {
        var outputHash = start?.outputHash ?? StreamHash.fresh()
        var frames: [Manifest.Frame] = start?.checkpoint.frames ?? []
        frames.reserveCapacity(plan.units.count)
        var rawOffset = start?.checkpoint.rawOffset ?? 0
        var inputBytes = start?.checkpoint.inputOffset ?? 0
        var tensorsDone = start?.checkpoint.tensorsDone ?? plan.tensors.count { $0.info.byteCount == 0 }
        for (index, unit) in plan.units.enumerated().dropFirst(start?.checkpoint.unit ?? 0) {
            guard let buffers = completed(index) else { break }
            if !buffers.frame.isEmpty {
                let offset = output.written
                try output.write(buffers.frame, stage: "write")
                buffers.frame.withUnsafeBytes { outputHash.update(bufferPointer: $0) }
                frames.append(Manifest.Frame(offset: offset, compressedSize: buffers.frame.count,
                                             rawSize: unit.outputBytes, rawOffset: rawOffset,
                                             tensor: frameLabel(unit.kind)))
                rawOffset += unit.outputBytes
            }
            inputBytes += unit.inputBytes
            if let t = unit.finishesTensor(in: plan) {
                tensorsDone += 1
                if plan.tensors[t].layout != nil {
                    monitor.withLock { finalStats[t] = states.removeValue(forKey: t)?.stats }
                }
            }
            monitor.withLock {
                emitted = index + 1
                retire(index)
            }
            progress(tensorsDone, inputBytes)
            if checkpoints != nil, checkpointUnits.contains(index) {
                let (durable, tail) = try Files.run("write") { () throws(SystemError) in try output.mark() }
                let stats = monitor.withLock {
                    finalStats.enumerated().compactMap { t, s in s.map { (t, FileCheckpoint.ErrorFigures($0)) } }
                }
                checkpoint(FileCheckpoint(
                    unit: index + 1, durable: durable, tail: Data(tail), outputDigest: outputHash.finalize(),
                    outputState: outputHash.midstate,
                    inputOffset: inputBytes, inputState: nil, rawOffset: rawOffset, tensorsDone: tensorsDone,
                    frames: frames, stats: Dictionary(uniqueKeysWithValues: stats)), of: output)
            }
        }
        let digest = try monitor.withLock { () throws(EngineError) -> (sha256: String, bytes: Int) in
            while failure == nil && inputDigest == nil { monitor.wait() }
            if let failure { throw failure }
            return inputDigest!
        }
        precondition(rawOffset == plan.outputRawSize, "frames cover the planned output")
        return FileOutcome(frames: frames, outputSize: output.written, outputSHA256: outputHash.finalize(),
                           inputSHA256: digest.sha256, inputSize: digest.bytes, uncachedBytes: 0, tensorStats: [])
    }

    /// Journals `checkpoint` on the checkpointer, in order, while the writer goes on: once the hasher is past its
    /// unit (its state there goes in), the output is fsynced (which covers every byte written so far, the
    /// checkpoint's among them) and the entry saved. A checkpoint is journaled only once its bytes are durable.
    private func checkpoint(_ checkpoint: FileCheckpoint, of output: OutputFile) {
        let (descriptor, path, index) = (output.descriptor, output.path, checkpoint.unit - 1)
        checkpointer.async(group: checkpointing) { [self] in
            do throws(EngineError) {
                var checkpoint = checkpoint
                checkpoint.inputState = try monitor.withLock { () throws(EngineError) -> SHA256Midstate? in
                    while failure == nil && hashed <= index { monitor.wait() }
                    if let failure { throw failure }
                    return inputStates.removeValue(forKey: index)
                }
                try Files.run("write") { () throws(SystemError) in try descriptor.sync(path: path) }
                try checkpoints!.save(checkpoint)
            } catch {
                fail(error)
            }
        }
    }

    private func frameLabel(_ kind: UnitKind) -> String {
        switch kind {
        case .header: "__header__"
        case .copy(let t, _), .calibrate(let t): plan.tensors[t].info.name
        case .tile(let t, _, _):
            plan.tensors[t].info.name + (plan.tensors[t].layout!.format == .packQuantized ? "_packed" : "")
        case .scales(let t): plan.tensors[t].scaleName
        case .zeroPoints(let t): plan.tensors[t].zeroPointName
        case .shape(let t): plan.tensors[t].shapeName
        }
    }
}

extension UnitKind {
    var isHeader: Bool {
        if case .header = self { return true }
        return false
    }
}

extension Unit {
    /// Bytes this unit holds while in flight: what it read plus room for its frame.
    var budgetBytes: Int { inputBytes + ZstdCompressor.compressBound(outputBytes) }

    /// The tensor whose last unit this is, if any.
    func finishesTensor(in plan: FilePlan) -> Int? {
        switch kind {
        case .header, .calibrate: return nil
        case .copy(let t, let range):
            return range.upperBound == plan.tensors[t].info.byteCount ? t : nil
        case .tile: return nil
        case .scales(let t):
            let l = plan.tensors[t].layout!
            return l.symmetric && l.format != .packQuantized ? t : nil
        case .zeroPoints(let t): return plan.tensors[t].layout!.format != .packQuantized ? t : nil
        case .shape(let t): return t
        }
    }
}

extension Sequence<UInt8> {
    /// Lowercase hex, two digits a byte: how the manifest writes a SHA-256.
    var hex: String {
        var s = ""
        s.reserveCapacity(underestimatedCount * 2)
        for b in self {
            s.append(Character(Unicode.Scalar(UInt8(ascii: "0") + b >> 4 + (b >> 4 > 9 ? 39 : 0))))
            s.append(Character(Unicode.Scalar(UInt8(ascii: "0") + b & 0xF + (b & 0xF > 9 ? 39 : 0))))
        }
        return s
    }
}

extension DType {
    var floatFormat: FloatFormat {
        switch self {
        case .F16: .f16
        case .BF16: .bf16
        case .F64: .f64
        default: .f32
        }
    }
}

extension EngineError {
    /// A reader error as an engine error: malformed input is a bad input, a missing file a missing input,
    /// a failed read an I/O error.
    init(_ e: SafeTensorsError, stage: String) {
        let kind: Kind
        switch e.kind {
        case .io: kind = .io
        case .notFound: kind = .missingInput
        default: kind = .badInput
        }
        self.init(kind, file: e.file, tensor: e.tensor, reason: e.detail, errno: e.errno, stage: stage)
    }
}
