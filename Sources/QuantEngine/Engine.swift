import Dispatch
import FoundationEssentials
import Quantization
import SafeTensors
import Synchronization
import QuantSystem
import SystemPackage

/// The version written into every manifest and output header.
public let quantdVersion = "0.1.0"

/// Set from outside to make a running job stop at the next work unit, leaving nothing behind.
public final class CancellationFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    private let parent: CancellationFlag?
    /// A flag that is also cancelled when `parent` is (a job's files share one, under the caller's).
    public init(parent: CancellationFlag? = nil) { self.parent = parent }
    public func cancel() { flag.store(true, ordering: .relaxed) }
    public var isCancelled: Bool { flag.load(ordering: .relaxed) || parent?.isCancelled == true }
}

public enum Engine {
    /// Quantize `input` (a `.safetensors` file, or a folder of shards with an optional
    /// `model.safetensors.index.json` and `config.json`) into the folder `output`.
    ///
    /// The folder is staged beside `output` as `.NAME.tmp-*`, fsynced and renamed into place
    /// only when complete; on failure nothing is left behind. An existing `output` is refused
    /// unless `force`. Symlinks are never followed (resolve them before calling, if you mean them).
    ///
    /// `stagingTag` names the claimant in the staging folder (`.NAME.tmp-TAG-RANDOM`; default: the pid), so that
    /// a daemon restarting beside others removes only its own stale staging. With `maxUnitBytes`, a work unit
    /// that needs more bytes at once (a tensor row, or a header; the daemon passes its whole memory budget) is
    /// refused as a bad input before anything is written; without it such a unit is granted the budget alone.
    /// `sourceName` is the name a single-file input had when it was dropped (the daemon's claim renames it): it names
    /// the output `NAME.zst` and the manifest's source. The shards of a folder keep their own names.
    ///
    /// With `resume`, a staging folder of `output` that an interrupted run left (nobody holds its lock) is taken
    /// over: the files its journal proves finished are kept without reading their sources again, a large file is
    /// taken up at its last checkpoint, the rest are done (`ResumeJournal`), and `resumed` is told what was kept. A failure that may pass (transient, or a
    /// cancellation) then leaves the staging folder and its journal for the next attempt; any other removes it.
    /// The output is byte for byte that of an uninterrupted run.
    public static func quantize(
        input: String,
        output: String,
        options: QuantizeOptions,
        force: Bool = false,
        limits: HeaderLimits = HeaderLimits(),
        budget: ByteBudget? = nil,
        cancel: CancellationFlag? = nil,
        stagingTag: String? = nil,
        maxUnitBytes: Int? = nil,
        sourceName: String? = nil,
        resume: ResumePolicy? = nil,
        resumed: (@Sendable (ResumeReport) -> Void)? = nil,
        progress: (@Sendable (Progress) -> Void)? = nil
    ) throws(EngineError) -> Manifest {
        let clock = ContinuousClock()
        let t0 = clock.now
        let startedAt = Date.now
        try options.validate()
        var selection = try Selection(include: options.include, exclude: options.exclude)

        let final = try StagedFolder.destination(output, force: force)

        let source = try Source.open(input, limits: limits)
        selection.linearOnly = source.isModelFolder
        var plans: [FilePlan] = []
        for file in source.files {
            let keep = options.keepNonFinite ? try nonFiniteCandidates(file, selection: selection) : []
            let guarded = try SensitivityGuard.decide(file, selection: selection, options: options, keep: keep)
            plans.append(Planner.plan(file: file, selection: selection, options: options, keep: keep,
                                      guarded: guarded, name: source.isFolder ? nil : sourceName))
        }
        if let maxUnitBytes { try checkUnits(plans, fit: maxUnitBytes) }
        let t1 = clock.now

        let folder = try StagedFolder(final: final, tag: stagingTag, force: force, resume: resume != nil)
        let staging = folder.path
        do throws(EngineError) {
            let threads = options.threads > 0 ? options.threads : Engine.cores
            let tracker = ProgressTracker(plans: plans, files: source.files, report: progress, clock: clock, start: t0)
            let (files, plans) = (source.files, plans)
            var journal: ResumeJournal?
            var found = ResumeJournal.Found()
            // Taken before any byte is read: what the journal records of each source is the file as it was read.
            let identities = try files.map(Self.identity)
            if resume != nil {
                (journal, found) = try ResumeJournal.open(
                    staging: staging, adopted: folder.adopted, job: .init(options: options),
                    outputs: plans.map(\.outputName), sources: files.map(\.path), identities: identities)
                for (k, finished) in found.finished {
                    tracker.update(file: k, tensors: plans[k].tensors.count, bytes: finished.source.size)
                }
            }
            // File `k`, from its checkpoint `from` (nil: from its start).
            let runFile = { @Sendable [journal] (k: Int, from: Resumable?, workers: Int, cancel: CancellationFlag)
                throws(EngineError) -> (ResumeJournal.Finished, Int) in
                let (file, plan) = (files[k], plans[k])
                let path = staging + "/" + plan.outputName
                let out: OutputFile
                if let c = from?.checkpoint {
                    out = try Files.run("resume") { () throws(SystemError) in
                        try OutputFile(resuming: FilePath(path), durable: c.durable, tail: Array(c.tail), direct: true)
                    }
                } else {
                    out = try OutputFile.create(path, stage: "write", direct: true)
                }
                var checkpoints: (every: Int, save: (FileCheckpoint) throws(EngineError) -> Void)?
                if let journal, let resume, file.fileSize >= resume.frameResumeBytes {
                    checkpoints = (resume.checkpointBytes, { (c: FileCheckpoint) throws(EngineError) in
                        try journal.record(checkpoint: c, index: k, identity: identities[k], output: plan.outputName)
                    })
                }
                let pipeline = Pipeline(plan: plan, file: file, level: options.level, threads: workers, budget: budget,
                                        cancel: cancel, from: from, checkpoints: checkpoints)
                let outcome = try pipeline.run(output: out) { tensors, bytes in
                    tracker.update(file: k, tensors: tensors, bytes: bytes)
                }
                try out.sync(stage: "commit")
                guard outcome.inputSize == file.fileSize else {
                    throw EngineError(.badInput, file: file.path,
                                      reason: "changed while being read (\(outcome.inputSize) bytes hashed, "
                                        + "\(file.fileSize) expected)", stage: "quantize")
                }
                let finished = ResumeJournal.Finished(
                    index: k, identity: identities[k],
                    source: Manifest.SourceFile(file: plan.sourceName, size: file.fileSize, sha256: outcome.inputSHA256),
                    output: Manifest.OutputFile(file: plan.outputName, source: plan.sourceName,
                                                size: outcome.outputSize, sha256: outcome.outputSHA256,
                                                rawSize: plan.outputRawSize, frames: outcome.frames),
                    records: Self.records(plan, stats: outcome.tensorStats, options: options))
                try journal?.record(finished)
                return (finished, outcome.uncachedBytes)
            }
            // The finished files kept, and the outputs of those taken up at a checkpoint (up to it), are hashed
            // again from disk beside the work (reading them back is I/O the work does not wait for); one that does
            // not check out is done again from its start after the others. Nothing goes into the manifest unproven.
            let adopted = folder.adopted
            let names = plans.map(\.outputName)
            let verified = KeptFiles(journal: journal, found: found, outputs: names, cancel: cancel) { [found] bad in
                if adopted { resumed?(found.report(outputs: names, bad: bad)) }
            }
            var kept = found.finished
            var todo = plans.indices.filter { kept[$0] == nil }
            var done: [(ResumeJournal.Finished, Int)]
            do throws(EngineError) {
                done = try FileRuns.run(count: todo.count, threads: threads, cancel: cancel) { [todo, found] j, workers,
                    cancel throws(EngineError) in try runFile(todo[j], found.partial[todo[j]], workers, cancel)
                }
            } catch {
                verified.abandon()
                throw error
            }
            let bad = try verified.wait()
            if !bad.isEmpty {
                let redo = bad.keys.sorted()
                try journal?.forget(redo, outputs: names)
                for k in redo { kept[k] = nil }
                done += try FileRuns.run(count: redo.count, threads: threads, cancel: cancel) { j, workers, cancel
                    throws(EngineError) in try runFile(redo[j], nil, workers, cancel)
                }
                todo += redo
            }
            for (j, (finished, _)) in done.enumerated() { kept[todo[j]] = finished }
            let perFile = plans.indices.map { kept[$0]! }
            try journal?.remove()
            var sources = perFile.map(\.source)
            var outputs = perFile.map(\.output)
            let records = perFile.flatMap(\.records)
            tracker.finish()
            let t2 = clock.now

            for side in try SideFiles.write(source: source, plans: plans, options: options, records: records,
                                            into: staging) {
                sources.append(side.source)
                outputs.append(side.output)
            }
            for file in try SideFiles.carry(source, into: staging) {
                sources.append(file.source)
                outputs.append(file.output)
            }
            var manifest = Manifest(
                schemaVersion: Manifest.schemaVersion, quantdVersion: quantdVersion, config: options,
                startedAt: startedAt.ISO8601Format(), finishedAt: "", sources: sources, outputs: outputs,
                tensors: records, totals: Self.totals(records, outputs: outputs),
                timings: .init(planSeconds: (t1 - t0).seconds, quantizeSeconds: (t2 - t1).seconds,
                               commitSeconds: 0, totalSeconds: 0,
                               uncachedReadBytes: done.reduce(0) { $0 + $1.1 }))
            manifest.finishedAt = Date.now.ISO8601Format()
            manifest.timings.commitSeconds = (clock.now - t2).seconds
            manifest.timings.totalSeconds = (clock.now - t0).seconds
            try writeManifest(manifest, into: staging)
            try folder.commit()
            return manifest
        } catch {
            if resume != nil && (error.isTransient || error.kind == .cancelled) { folder.release() } else { folder.discard() }
            throw error
        }
    }

    /// A source file's identity for the journal: what says it is still the file that was read.
    private static func identity(_ file: SafeTensorsFile) throws(EngineError) -> ResumeJournal.Identity {
        let entry = try Files.run("resume", missing: .missingInput) { () throws(SystemError) in
            try FileSystem.entry(FilePath(file.path))
        }
        return .init(size: entry.size, mtimeNanoseconds: entry.mtimeNanoseconds, inode: entry.inode)
    }

    /// Refuses a plan holding a unit larger than `capacity` (the caller's memory budget): its buffers would be
    /// allocated whatever the budget says.
    private static func checkUnits(_ plans: [FilePlan], fit capacity: Int) throws(EngineError) {
        for plan in plans {
            for unit in plan.units where unit.budgetBytes > capacity {
                var tensor: String?
                var what = "the header"
                if case .tile(let t, _, _) = unit.kind { (tensor, what) = (plan.tensors[t].info.name, "one row") }
                if case .copy(let t, _) = unit.kind { (tensor, what) = (plan.tensors[t].info.name, "one piece") }
                throw EngineError(.badInput, file: plan.sourcePath, tensor: tensor,
                                  reason: "\(what) needs \(unit.budgetBytes) bytes at once, more than the whole "
                                    + "memory budget of \(capacity) bytes", stage: "plan")
            }
        }
    }

    /// Cores this process may run on.
    public static var cores: Int { FileSystem.cores }

    private static func writeManifest(_ manifest: Manifest, into staging: String) throws(EngineError) {
        let path = staging + "/manifest.json"
        let bytes: [UInt8]
        do { bytes = try manifest.encoded() } catch {
            throw EngineError(.io, file: path, reason: "cannot encode the manifest: \(error)", stage: "commit")
        }
        let out = try OutputFile.create(path, stage: "commit")
        try out.write(bytes, stage: "commit")
        try out.sync(stage: "commit")
    }

    /// Candidates holding NaN or Inf, found by a scan before planning (only with --keep-nonfinite).
    private static func nonFiniteCandidates(_ file: SafeTensorsFile, selection: Selection) throws(EngineError)
        -> Set<String>
    {
        let candidates = file.header.tensors.filter {
            if case .quantize = selection.decide($0) { return true }
            return false
        }
        let found = Mutex<(names: Set<String>, error: EngineError?)>(([], nil))
        DispatchQueue.concurrentPerform(iterations: candidates.count) { i in
            var raw = ScratchBuffer()
            var floats = ScratchBuffer()
            do throws(EngineError) {
                let stats = try TensorScan.range(candidates[i], file: file, raw: &raw, floats: &floats)
                if stats.nonFinite > 0 { found.withLock { _ = $0.names.insert(candidates[i].name) } }
            } catch {
                found.withLock { $0.error = $0.error ?? error }
            }
        }
        let result = found.withLock { $0 }
        if let e = result.error { throw e }
        return result.names
    }

    static func records(_ plan: FilePlan, stats: [ErrorStats?], options: QuantizeOptions) -> [Manifest.TensorRecord] {
        plan.tensors.enumerated().map { i, p in
            let info = p.info
            guard let l = p.layout, let s = stats[i] else {
                return .init(name: info.name, file: plan.sourceName, shape: info.shape, sourceDtype: info.dtype.rawValue,
                             storedDtype: info.dtype.rawValue, decision: "kept", reason: p.reason, scheme: nil,
                             error: nil, sensitivity: p.sensitivity, sourceBytes: info.byteCount,
                             storedBytes: info.byteCount)
            }
            let scheme = Manifest.Scheme(
                bits: 8, format: l.format, granularity: l.granularity,
                groupSize: l.granularity == .group ? l.groupSize : nil, symmetric: l.symmetric,
                calibrator: options.calibration, scaleDtype: l.scaleStorage,
                inputActivations: l.inputActivations,
                calibrationFallback: Self.fallback(s.calibration, calibrator: plan.calibrator))
            let figures = Manifest.ErrorFigures(relativeRmse: s.relativeRMSE, sqnrDb: s.sqnrDB.isFinite ? s.sqnrDB : nil,
                                                maxAbsError: Double(s.maxAbsError), clippedFraction: s.clippedFraction)
            return .init(name: info.name, file: plan.sourceName, shape: info.shape, sourceDtype: info.dtype.rawValue,
                         storedDtype: l.format == .packQuantized ? "I32" : "I8", decision: "quantized",
                         reason: p.reason, scheme: scheme, error: figures,
                         sensitivity: p.sensitivity, sourceBytes: info.byteCount,
                         storedBytes: l.storedBytes(shape: info.shape))
        }
    }

    /// What the manifest says of groups that got absmax's range instead of the calibrator's; nil when none did.
    static func fallback(_ c: CalibrationCounts, calibrator: (any Calibrator)?) -> Manifest.CalibrationFallback? {
        guard let calibrator, c.tooFew + c.worse > 0 else { return nil }
        var why: [String] = []
        if c.tooFew > 0 {
            why.append("\(c.tooFew) with fewer than the \(calibrator.minimumValues) values \(calibrator.name) needs")
        }
        if c.worse > 0 {
            why.append("\(c.worse) where its range gave more than \(CalibrationGuard.tolerance) times absmax's "
                + "squared error")
        }
        return .init(groups: c.tooFew + c.worse, of: c.groups, tooFew: c.tooFew, worse: c.worse,
                     reason: "absmax used for " + why.joined(separator: "; "))
    }

    static func totals(_ records: [Manifest.TensorRecord], outputs: [Manifest.OutputFile]) -> Manifest.Totals {
        let quantized = records.filter { $0.decision == "quantized" }
        let sourceBytes = records.reduce(0) { $0 + $1.sourceBytes }
        let compressed = outputs.reduce(0) { $0 + $1.size }
        let weights = quantized.reduce(0) { $0 + $1.shape.reduce(1, *) }
        // Codes, scales and zero points; not the few bytes of a packed tensor's `_shape`.
        let payload = quantized.reduce(0) {
            $0 + $1.storedBytes - ($1.scheme?.format == .packQuantized ? 8 * $1.shape.count : 0)
        }
        let worst = quantized.min { ($0.error?.sqnrDb ?? .infinity) < ($1.error?.sqnrDb ?? .infinity) }
        let sqnrs = quantized.map { $0.error?.sqnrDb ?? .infinity }.sorted()
        let middle = sqnrs.isEmpty ? Double.infinity : sqnrs.count % 2 == 1 ? sqnrs[sqnrs.count / 2]
            : (sqnrs[sqnrs.count / 2 - 1] + sqnrs[sqnrs.count / 2]) / 2
        return .init(tensors: records.count, quantized: quantized.count, kept: records.count - quantized.count,
                     sourceBytes: sourceBytes, outputRawBytes: outputs.reduce(0) { $0 + $1.rawSize },
                     compressedBytes: compressed,
                     compressionRatio: compressed > 0 ? Double(sourceBytes) / Double(compressed) : 0,
                     bitsPerQuantizedWeight: weights > 0 ? Double(payload * 8) / Double(weights) : nil,
                     worstTensor: worst?.name, worstSqnrDb: worst?.error?.sqnrDb,
                     medianSqnrDb: middle.isFinite ? middle : nil)
    }
}

extension QuantizeOptions {
    /// The ranges of the numeric options: the one set, checked by `validate` and by the daemon's keys.
    public enum Ranges {
        public static let groupSize = 1...(1 << 20)
        public static let percentile = 50.0...100.0
        public static let minElements = 0...Int(Int32.max)
        /// zstd's levels, negative (fast) through 22 (ultra).
        public static let level = -7...22
        public static let threads = 0...1024
    }

    /// The one check of the options' ranges and combinations (flags and daemon keys alike); the error names the
    /// flag (`--granularity`, ...).
    public func validate() throws(EngineError) {
        func bad(_ flag: String, _ why: String) -> EngineError {
            EngineError(.usage, file: flag, reason: why, stage: "plan")
        }
        func check<T: Comparable>(_ value: T, _ range: ClosedRange<T>, _ flag: String, _ extra: String = "")
            throws(EngineError) {
            guard range.contains(value) else {
                throw bad(flag, "must be between \(range.lowerBound) and \(range.upperBound)\(extra) (got \(value))")
            }
        }
        try check(groupSize, Ranges.groupSize, "--group-size")
        try check(percentile, Ranges.percentile, "--percentile")
        guard minSQNR.map({ $0.isFinite }) ?? true else { throw bad("--min-sqnr", "must be a finite number of dB") }
        try check(minElements, Ranges.minElements, "--min-elements")
        try check(level, Ranges.level, "--level")
        try check(threads, Ranges.threads, "--threads", " (0: all cores)")
        if scheme == .w8a8 {
            guard symmetric else {
                throw bad("--asymmetric", "W8A8 weights are symmetric: int8 matrix kernels take no weight zero point")
            }
            guard granularity != .group else {
                throw bad("--granularity", "W8A8 weights are per channel or per tensor: int8 matrix kernels apply one "
                    + "scale per output row (use W8A16 for groups)")
            }
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}

/// Sums the writers' progress over the files of a job and reports it a few times a second.
private final class ProgressTracker: Sendable {
    private struct State {
        var tensors: [Int]
        var bytes: [Int]
        var last: ContinuousClock.Instant
    }
    private let state: Mutex<State>
    private let tensorsTotal: Int
    private let bytesTotal: Int
    private let report: (@Sendable (Progress) -> Void)?
    private let clock: ContinuousClock
    private let start: ContinuousClock.Instant

    init(plans: [FilePlan], files: [SafeTensorsFile], report: (@Sendable (Progress) -> Void)?,
         clock: ContinuousClock, start: ContinuousClock.Instant) {
        tensorsTotal = plans.reduce(0) { $0 + $1.tensors.count }
        bytesTotal = files.reduce(0) { $0 + $1.fileSize }
        state = Mutex(State(tensors: Array(repeating: 0, count: plans.count),
                            bytes: Array(repeating: 0, count: plans.count), last: start))
        self.report = report
        self.clock = clock
        self.start = start
    }

    func update(file: Int, tensors: Int, bytes: Int) {
        guard report != nil else { return }
        let now = clock.now
        let snapshot = state.withLock { s -> Progress? in
            s.tensors[file] = tensors
            s.bytes[file] = bytes
            guard now - s.last >= .milliseconds(250) else { return nil }
            s.last = now
            return progress(s, now)
        }
        if let snapshot { report?(snapshot) }
    }

    func finish() {
        guard let report else { return }
        report(state.withLock { progress($0, clock.now) })
    }

    private func progress(_ s: State, _ now: ContinuousClock.Instant) -> Progress {
        Progress(tensorsDone: s.tensors.reduce(0, +), tensorsTotal: tensorsTotal, bytesDone: s.bytes.reduce(0, +),
                 bytesTotal: bytesTotal, elapsedSeconds: (now - start).seconds)
    }
}
