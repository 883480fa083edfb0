import Crypto
import Dispatch
import FoundationEssentials
import Quantization
import QuantSystem
import Synchronization
import SystemPackage

/// What a resumed job found in the staging folder an interrupted run left (`resumed` in the daemon's log).
public struct ResumeReport: Sendable {
    /// Output files kept, verified from disk, whose sources were not read again.
    public var kept: [String]
    /// Bytes of the kept files' sources.
    public var keptSourceBytes: Int
    /// Files of the job done (again), from their start or from a checkpoint (`resumedWithin`).
    public var redo: [String]
    /// Files larger than `ResumePolicy.frameResumeBytes` taken up at their last checkpoint: what of each was kept.
    public var resumedWithin: [String]
    /// Journal entries or kept files not trusted, and why; those files are redone.
    public var distrusted: [String]
}

/// How a job resumes: whole files, and inside a file at least `frameResumeBytes` long, from its last checkpoint.
public struct ResumePolicy: Sendable {
    /// Files of at least this many source bytes write checkpoints as they go. 256 MiB: a shard of a few hundred
    /// MB in flight at a kill is otherwise redone whole (4-shard 2.3 GB job killed at 70 %: 0.75-0.80 of the job's
    /// time to commit after the restart with whole shards only).
    public var frameResumeBytes: Int
    /// Source bytes between two checkpoints of such a file: about what a kill loses of each file in flight (with
    /// the window of units behind the writer). Each one fsyncs the output so far and writes a journal entry (two
    /// fsyncs more), off the writer's thread (`Pipeline.checkpoint`): at 64 MiB a 2.34 GB file's job took 0.97 of
    /// the time it took with 128 MiB in the writer (README, Resume); 32 MiB tripled the fsyncs for a few percent.
    public var checkpointBytes: Int

    public init(frameResumeBytes: Int = 256 << 20, checkpointBytes: Int = 64 << 20) {
        self.frameResumeBytes = frameResumeBytes
        self.checkpointBytes = checkpointBytes
    }
}

/// Where a file's pipeline stood after a unit that ended a tensor: enough to go on from the next unit, with the
/// same bytes, hashes, frames and figures as a run that never stopped.
struct FileCheckpoint: Codable, Sendable {
    /// The next unit to do.
    var unit: Int
    /// Output bytes on disk, and the ones after them that were still buffered (under one block: base64 in the
    /// journal, not thousands of JSON numbers).
    var durable: Int
    var tail: Data
    /// SHA-256 (hex) of the output's first `durable + tail.count` bytes, and the hash's state there (nil where
    /// the output was hashed with swift-crypto's, on a CPU without the SHA extensions: a resumed run then hashes
    /// the output again from disk up to the checkpoint before it goes on; with a state, beside the work).
    var outputDigest: String
    var outputState: SHA256Midstate?
    /// Source bytes the units before `unit` read: the file's first `inputOffset` bytes.
    var inputOffset: Int
    /// The input's SHA-256 over those bytes, as its state (nil where the input was hashed with swift-crypto's,
    /// on a CPU without the SHA extensions: a resumed run then hashes the source again up to `inputOffset`).
    var inputState: SHA256Midstate?
    var rawOffset: Int
    var tensorsDone: Int
    var frames: [Manifest.Frame]
    /// Error figures of the tensors finished so far, by plan index.
    var stats: [Int: ErrorFigures]

    /// `ErrorStats` as the journal stores it.
    struct ErrorFigures: Codable, Sendable {
        var count: Int
        var sumSquaredError: Double
        var sumSquaredSignal: Double
        var maxAbsError: Float
        var clipped: Int
        var groups: Int
        var tooFew: Int
        var worse: Int

        init(_ s: ErrorStats) {
            (count, sumSquaredError, sumSquaredSignal, maxAbsError, clipped) =
                (s.count, s.sumSquaredError, s.sumSquaredSignal, s.maxAbsError, s.clipped)
            (groups, tooFew, worse) = (s.calibration.groups, s.calibration.tooFew, s.calibration.worse)
        }

        var stats: ErrorStats {
            var s = ErrorStats(count: count, sumSquaredError: sumSquaredError, sumSquaredSignal: sumSquaredSignal,
                               maxAbsError: maxAbsError, clipped: clipped)
            (s.calibration.groups, s.calibration.tooFew, s.calibration.worse) = (groups, tooFew, worse)
            return s
        }
    }
}

/// A checkpoint taken up again: where to go on, and the output's and the input's SHA-256 so far.
struct Resumable: Sendable {
    var checkpoint: FileCheckpoint
    /// The output's SHA-256 up to the checkpoint: from the checkpoint's saved state (its digest is the
    /// checkpoint's), the output on disk up to it to be hashed again beside the work (`KeptFiles`) and the file
    /// redone when it differs; or (`outputChecked`) hashed again from disk before the work.
    var outputHash: StreamHash
    var outputChecked: Bool
    /// The input's SHA-256 over its first `checkpoint.inputOffset` bytes: from the checkpoint's saved state, or
    /// (`inputRehashed`) read again from the source.
    var inputHash: StreamHash
    var inputRehashed: Bool
}

/// What a staging folder keeps so that an interrupted job (SIGKILL, power loss, a transient error) redoes only the
/// files it had not finished: the folder `.journal/` inside the staging folder.
///
/// - `job.json`: quantd's version and the options (less `threads`, which do not change a byte). A staging folder
///   whose `job.json` is missing or differs is emptied and the job starts afresh in it.
/// - `file-<index>.json`: one per finished output file, written and fsynced after the file itself was fsynced: the
///   identity of its source (size, mtime, inode), its manifest entries (source with sha256, output with size,
///   sha256 and frames, tensor records), then a line holding the SHA-256 of those bytes, so that an entry changed by
///   one byte is not trusted.
/// - `file-<index>.partial.json`: for a file at least `ResumePolicy.frameResumeBytes` long, its last checkpoint
///   (`FileCheckpoint`), written after the output so far was fsynced, checksummed the same way. A resumed run
///   takes both hashes up from the states the checkpoint saved: the source, of the same identity, is not read
///   again up to it (as a kept file's is not); the output up to it is hashed again from disk beside the work
///   and must match the checkpoint's digest, or the file is done again from its start before anything is
///   committed. Where there are no states (swift-crypto's hash, on a CPU without the SHA extensions) it reads
///   the source and the output up to the checkpoint before going on. It cuts the output back to the checkpoint
///   and goes on from the next unit.
///
/// A finished file is reused only when its entry checks out, names the file the plan would write from the same
/// source (same identity: the source is not read again), and the output in the staging folder has the size and
/// SHA-256 the entry names, hashed again from disk (beside the work on the other files: one that does not check out
/// is redone after them, and nothing goes into the manifest unproven). Everything else in the staging folder is
/// removed before work starts. The journal is removed before the manifest is written: a committed output never holds it, and what the
/// resumed job commits is byte for byte what an uninterrupted one would.
struct ResumeJournal: Sendable {
    static let folderName = ".journal"

    /// A source file as found before planning (the name may change: the daemon's claim renames it); a change of
    /// any field means it is not the file that was read.
    struct Identity: Codable, Equatable, Sendable {
        var size: Int
        var mtimeNanoseconds: Int
        var inode: UInt64
    }

    struct Job: Codable, Equatable, Sendable {
        var quantdVersion: String
        var options: QuantizeOptions

        init(options: QuantizeOptions) {
            quantdVersion = QuantEngine.quantdVersion
            var options = options
            options.threads = 0
            self.options = options
        }
    }

    /// One finished output file, as its manifest entries will say.
    struct Finished: Codable, Sendable {
        var index: Int
        var identity: Identity
        var source: Manifest.SourceFile
        var output: Manifest.OutputFile
        var records: [Manifest.TensorRecord]
    }

    /// The last checkpoint of a file not finished.
    struct Partial: Codable, Sendable {
        var index: Int
        var identity: Identity
        var output: String
        var checkpoint: FileCheckpoint
    }

    let staging: String
    var folder: String { staging + "/" + Self.folderName }

    private func entryPath(_ index: Int) -> String { folder + "/file-\(index).json" }
    func partialPath(_ index: Int) -> String { folder + "/file-\(index).partial.json" }

    /// What `open` found that may be reused.
    struct Found: Sendable {
        /// Finished files whose journal entries check out, not yet hashed again from disk: `verify` decides.
        var finished: [Int: Finished] = [:]
        /// Checkpoints taken up (the input's hash rebuilt; the output up to each hashed from disk, here or, with
        /// the hash's saved state, by `verify`).
        var partial: [Int: Resumable] = [:]
        /// Entries not trusted so far, and why.
        var distrusted: [String] = []

        /// Checkpoints whose output up to them is still to be hashed from disk (`verify`).
        var unchecked: [Int: FileCheckpoint] { partial.filter { !$0.value.outputChecked }.mapValues(\.checkpoint) }

        /// What is kept and redone, once `verify` said which finished files and checkpoints are `bad`.
        func report(outputs: [String], bad: [Int: String]) -> ResumeReport {
            let kept = finished.keys.filter { bad[$0] == nil }.sorted()
            return ResumeReport(
                kept: kept.map { outputs[$0] }, keptSourceBytes: kept.reduce(0) { $0 + finished[$1]!.source.size },
                redo: outputs.indices.filter { finished[$0] == nil || bad[$0] != nil }.map { outputs[$0] },
                resumedWithin: partial.keys.filter { bad[$0] == nil }.sorted().map {
                    let (c, rehashed) = (partial[$0]!.checkpoint, partial[$0]!.inputRehashed)
                    return "\(outputs[$0]) from its checkpoint at frame \(c.frames.count) (\(c.inputOffset) source "
                        + "bytes done, \(c.durable + c.tail.count) output bytes kept, the source's hash so far "
                        + (rehashed ? "read again from it)" : "from the checkpoint)")
                },
                distrusted: distrusted + bad.sorted { $0.key < $1.key }.map {
                    "\(outputs[$0.key])" + (partial[$0.key] != nil ? " (checkpoint)" : "") + ": \($0.value)"
                })
        }
    }

    /// Opens the journal of `staging` for `job`, which writes `outputs` (by index) from the sources at `sources`,
    /// whose identities are `identities`. An adopted folder keeps what its journal says is finished (to be proven by
    /// `verify`, which may run beside the work on the other files) and the checkpoints it proves, verified here from
    /// disk; everything else in it is removed.
    static func open(staging: String, adopted: Bool, job: Job, outputs: [String], sources: [String],
                     identities: [Identity]) throws(EngineError) -> (ResumeJournal, Found)
    {
        let journal = ResumeJournal(staging: staging)
        guard adopted else {
            try journal.start(job)
            return (journal, Found())
        }
        var found = Found()
        var partial: [Int: Partial] = [:]
        let jobBytes = try? Files.readWholeFile(journal.folder + "/job.json", limit: 1 << 20, stage: "resume")
        let sameJob = jobBytes.flatMap { try? Self.decoder().decode(Job.self, from: Data($0)) } == job
        if sameJob {
            for (index, output) in outputs.enumerated() {
                if Files.kind(journal.entryPath(index)) == .file {
                    switch journal.entry(Finished.self, at: journal.entryPath(index)) {
                    case .success(let entry) where entry.index == index && entry.output.file == output
                        && entry.identity == identities[index]:
                        found.finished[index] = entry
                        continue
                    case .success: found.distrusted.append("\(output): its source changed since it was written")
                    case .failure(let why): found.distrusted.append("\(output): \(why)")
                    }
                }
                guard Files.kind(journal.partialPath(index)) == .file else { continue }
                switch journal.entry(Partial.self, at: journal.partialPath(index)) {
                case .success(let entry) where entry.index == index && entry.output == output
                    && entry.identity == identities[index]:
                    partial[index] = entry
                case .success: found.distrusted.append("\(output) (checkpoint): its source changed since it was written")
                case .failure(let why): found.distrusted.append("\(output) (checkpoint): \(why)")
                }
            }
        } else {
            found.distrusted.append(jobBytes == nil ? "job.json missing: started afresh"
                                    : "job.json names other options or another quantd: started afresh")
        }
        // Nothing but the candidates' outputs and their entries stays.
        let keep = Set(found.finished.values.map(\.output.file) + partial.values.map(\.output))
        for name in try Files.list(staging, stage: "resume") where name != folderName && !keep.contains(name) {
            Files.removeTree(staging + "/" + name)
        }
        if !sameJob { Files.removeTree(journal.folder) }
        let entries = Set(found.finished.keys.map { "file-\($0).json" } + partial.keys.map { "file-\($0).partial.json" })
        if Files.kind(journal.folder) == .directory {
            for name in try Files.list(journal.folder, stage: "resume") where !entries.contains(name) && name != "job.json" {
                Files.removeTree(journal.folder + "/" + name)
            }
        }
        // Each checkpoint: the output up to it must hash to the checkpoint's digest. Where the checkpoint saved
        // the output hash's state (and that state is the digest's), the work goes on from it and the bytes on disk
        // are hashed beside the work (`verify`); else they are hashed here, first. A file shorter than its
        // checkpoint is not trusted at once. The input's hash goes on from the checkpoint's saved state; without
        // one (or with one that is not a state of the input up to it) the source is read again up to it, beside
        // the output's check. All side by side.
        let fromState = partial.compactMapValues { entry -> StreamHash? in
            let c = entry.checkpoint
            guard let saved = c.inputState, saved.bytes == c.inputOffset else { return nil }
            return StreamHash.resuming(saved)
        }
        let outputFromState = partial.compactMapValues { entry -> StreamHash? in
            let c = entry.checkpoint
            guard let saved = c.outputState, saved.bytes == c.durable + c.tail.count,
                  let hash = StreamHash.resuming(saved), hash.finalize() == c.outputDigest else { return nil }
            return hash
        }
        let rehashed = Set(partial.keys.filter { fromState[$0] == nil })
        let checkedNow = Set(partial.keys.filter { outputFromState[$0] == nil })
        let checks = partial.keys.sorted().flatMap { index in
            (checkedNow.contains(index) ? [(index, true)] : []) + (rehashed.contains(index) ? [(index, false)] : [])
        }
        let checkpoints = partial.mapValues(\.checkpoint)
        let verdicts = Mutex<(bad: [Int: String], output: [Int: StreamHash], input: [Int: StreamHash])>(
            ([:], outputFromState, fromState))
        for (index, c) in checkpoints where !checkedNow.contains(index) {
            let size = (try? FileSystem.entry(FilePath(staging + "/" + outputs[index])))?.size ?? -1
            if size < c.durable {
                verdicts.withLock { $0.bad[index] = size < 0 ? "its output cannot be read" : Self.shorter(c.durable) }
            }
        }
        DispatchQueue.concurrentPerform(iterations: checks.count) { i in
            let (index, isOutput) = checks[i]
            let c = checkpoints[index]!
            do throws(EngineError) {
                if isOutput {
                    if let hash = try Self.hashOutput(staging + "/" + outputs[index], upTo: c) {
                        verdicts.withLock { $0.output[index] = hash }
                    } else {
                        verdicts.withLock { $0.bad[index] = Self.differs }
                    }
                } else {
                    var hash = StreamHash.fresh()
                    try Self.readPrefix(sources[index], count: c.inputOffset) { hash.update(bufferPointer: $0) }
                    verdicts.withLock { $0.input[index] = hash }
                }
            } catch {
                verdicts.withLock { $0.bad[index] = error.reason }
            }
        }
        let (bad, outputHashes, inputHashes) = verdicts.withLock { $0 }
        for (index, why) in bad.sorted(by: { $0.key < $1.key }) {
            found.distrusted.append("\(outputs[index]) (checkpoint): " + why)
            partial[index] = nil
            journal.discard(index, output: outputs[index])
        }
        if !sameJob { try journal.start(job) }
        try Files.sync(staging, stage: "resume")
        for (index, entry) in partial {
            found.partial[index] = Resumable(checkpoint: entry.checkpoint, outputHash: outputHashes[index]!,
                                             outputChecked: checkedNow.contains(index),
                                             inputHash: inputHashes[index]!, inputRehashed: rehashed.contains(index))
        }
        return (journal, found)
    }

    /// Hashes again from disk, side by side, the outputs of `finished` and those of `unchecked` up to their
    /// checkpoints. Returns those that do not check out (a finished file whose size or SHA-256 differs from the
    /// journal's, a checkpointed one whose output up to its checkpoint differs, or one that cannot be read), with
    /// why; it removes nothing: the caller `forget`s them once its work on them (a checkpointed file's goes on
    /// meanwhile) has stopped. Stops early, returning all that were not checked as bad, once `cancel` is set.
    func verify(_ finished: [Int: Finished], unchecked: [Int: FileCheckpoint], outputs: [String],
                cancel: CancellationFlag) -> [Int: String]
    {
        let checks = finished.keys.sorted().map { ($0, true) } + unchecked.keys.sorted().map { ($0, false) }
        let bad = Mutex<[Int: String]>([:])
        let stop = { @Sendable () throws(EngineError) in
            if cancel.isCancelled { throw EngineError(.cancelled, file: "", reason: "cancelled", stage: "resume") }
        }
        DispatchQueue.concurrentPerform(iterations: checks.count) { i in
            let (index, isFinished) = checks[i]
            do throws(EngineError) {
                if isFinished {
                    let entry = finished[index]!
                    let found = try CarriedFiles.stream(staging + "/" + outputs[index], stage: "resume",
                                                        direct: true) {
                        _ throws(EngineError) in try stop()
                    }
                    let why = found.size != entry.output.size
                        ? "\(found.size) bytes on disk, \(entry.output.size) journaled"
                        : found.sha256 != entry.output.sha256 ? "its sha256 on disk differs from the journal's" : nil
                    if let why { bad.withLock { $0[index] = why } }
                } else if try Self.hashOutput(staging + "/" + outputs[index], upTo: unchecked[index]!,
                                              stop: stop) == nil {
                    bad.withLock { $0[index] = Self.differs }
                }
            } catch {
                bad.withLock { $0[index] = error.reason }
            }
        }
        return bad.withLock { $0 }
    }

    /// Removes files `indices` (`outputs` by index: kept files or checkpoints that did not check out) and their
    /// journal entries, once nothing works on them: they are done again from their start.
    func forget(_ indices: [Int], outputs: [String]) throws(EngineError) {
        for index in indices { discard(index, output: outputs[index]) }
        if !indices.isEmpty { try Files.sync(staging, stage: "resume") }
    }

    /// Removes file `index` (`output`) and its journal entries (the caller syncs the folder).
    private func discard(_ index: Int, output: String) {
        Files.removeFile(staging + "/" + output)
        Files.removeFile(entryPath(index))
        Files.removeFile(partialPath(index))
    }

    static let differs = "its output differs from the checkpoint's"

    static func shorter(_ count: Int) -> String { "shorter than its checkpoint (\(count) bytes)" }

    /// The SHA-256 of the output at `path` up to checkpoint `c`: its first `c.durable` bytes on disk, then the
    /// checkpoint's tail; nil when that is not the checkpoint's digest.
    static func hashOutput(_ path: String, upTo c: FileCheckpoint,
                           stop: () throws(EngineError) -> Void = {}) throws(EngineError) -> StreamHash?
    {
        var hash = StreamHash.fresh()
        try readPrefix(path, count: c.durable, direct: true) { (bytes) throws(EngineError) in
            try stop()
            hash.update(bufferPointer: bytes)
        }
        c.tail.withUnsafeBytes { hash.update(bufferPointer: $0) }
        return hash.finalize() == c.outputDigest ? hash : nil
    }

    /// Hands the first `count` bytes of the file at `path` to `body`, in order (refused when it is shorter).
    /// With `direct`, around the page cache (`ChunkReader`): for an output quantd wrote that way.
    static func readPrefix(_ path: String, count: Int, direct: Bool = false,
                           _ body: (UnsafeRawBufferPointer) throws(EngineError) -> Void) throws(EngineError) {
        let reader = try ChunkReader(path, stage: "resume", direct: direct)
        var left = count
        while left > 0, let piece = try reader.next() {
            let part = UnsafeRawBufferPointer(rebasing: piece.prefix(left))
            try body(part)
            left -= part.count
        }
        guard left == 0 else {
            throw EngineError(.io, file: path, reason: Self.shorter(count), stage: "resume")
        }
    }

    /// Journals the last checkpoint of file `index`, after the output so far was fsynced.
    func record(checkpoint: FileCheckpoint, index: Int, identity: Identity, output: String) throws(EngineError) {
        try write(entry: Partial(index: index, identity: identity, output: output, checkpoint: checkpoint),
                  to: partialPath(index))
    }

    /// Journals a finished file, after the file itself was fsynced. An entry that cannot be encoded (a non-finite
    /// figure) is left out: that file would be redone.
    func record(_ finished: Finished) throws(EngineError) {
        try write(entry: finished, to: entryPath(finished.index))
        Files.removeFile(partialPath(finished.index))
    }

    /// An entry's body, then a line with the body's SHA-256. One that cannot be encoded is left out.
    private func write<T: Encodable>(entry: T, to path: String) throws(EngineError) {
        guard var body = try? Self.encoder().encode(entry) else { return }
        body.append(contentsOf: Array("\n\(SHA256.hash(data: body).hex)\n".utf8))
        try write(Array(body), to: path)
    }

    /// Removes the journal (before the manifest is written).
    func remove() throws(EngineError) {
        Files.removeTree(folder)
        try Files.sync(staging, stage: "commit")
    }

    private func start(_ job: Job) throws(EngineError) {
        if Files.kind(folder) == .missing { try Files.makeDirectory(folder, stage: "write") }
        let bytes: Data
        do { bytes = try Self.encoder().encode(job) } catch {
            throw EngineError(.io, file: folder + "/job.json", reason: "cannot encode the job: \(error)", stage: "write")
        }
        try write(Array(bytes), to: folder + "/job.json")
        try Files.sync(staging, stage: "write")
    }

    private func write(_ bytes: [UInt8], to path: String) throws(EngineError) {
        try Files.run("write") { () throws(SystemError) in
            try FileSystem.writeAtomically(bytes, to: FilePath(path))
            try FileSystem.sync(FilePath(folder))
        }
    }

    /// The entry at `path`, or why it is not trusted.
    func entry<T: Decodable>(_ type: T.Type, at path: String) -> Result<T, EntryProblem> {
        guard let bytes = try? Files.readWholeFile(path, limit: 1 << 30, stage: "resume") else {
            return .failure(.init("its journal entry cannot be read"))
        }
        // The body, then "\n<sha256 of the body>\n".
        guard bytes.count > 66, bytes.last == 0x0A, bytes[bytes.count - 66] == 0x0A else {
            return .failure(.init("its journal entry is cut short"))
        }
        let body = Array(bytes[..<(bytes.count - 66)])
        guard String(decoding: bytes[(bytes.count - 65)..<(bytes.count - 1)], as: UTF8.self)
                == SHA256.hash(data: body).hex else {
            return .failure(.init("its journal entry does not match its checksum"))
        }
        guard let entry = try? Self.decoder().decode(T.self, from: Data(body)) else {
            return .failure(.init("its journal entry does not decode"))
        }
        return .success(entry)
    }

    struct EntryProblem: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// Compact, with the types' own keys: a file's checkpoint is written again every 64 MiB of its source, and
    /// the manifest's encoder (pretty, sorted, snake-case keys) had cost 0.1-0.2 s of CPU in a 2.34 GB file's job
    /// with one every 32 MiB.
    private static func encoder() -> JSONEncoder { JSONEncoder() }

    private static func decoder() -> JSONDecoder { JSONDecoder() }
}

/// The finished files a resumed job keeps, and the outputs of the files it goes on from their checkpoints (up to
/// them), hashed again from disk (`ResumeJournal.verify`) on a thread of their own while the job works; `done` is
/// told which did not check out as soon as that is known (at once when there is nothing to hash).
final class KeptFiles: Sendable {
    private let group = DispatchGroup()
    private let flag: CancellationFlag
    private let bad = Mutex<[Int: String]>([:])

    init(journal: ResumeJournal?, found: ResumeJournal.Found, outputs: [String], cancel: CancellationFlag?,
         done: @escaping @Sendable ([Int: String]) -> Void)
    {
        flag = CancellationFlag(parent: cancel)
        guard let journal, !found.finished.isEmpty || !found.unchecked.isEmpty else {
            done([:])
            return
        }
        // A queue of its own (a thread of its own): the reads block.
        DispatchQueue(label: "quantd.kept").async(group: group) { [self] in
            let result = journal.verify(found.finished, unchecked: found.unchecked, outputs: outputs, cancel: flag)
            bad.withLock { $0 = result }
            if !flag.isCancelled { done(result) }
        }
    }

    /// Stops hashing (the job failed) and waits for the thread to be done with the staging folder.
    func abandon() {
        flag.cancel()
        group.wait()
    }

    /// The kept files and the checkpoints that did not check out (`ResumeJournal.forget` them), once all were hashed.
    func wait() throws(EngineError) -> [Int: String] {
        group.wait()
        if flag.isCancelled { throw EngineError(.cancelled, file: "", reason: "cancelled", stage: "resume") }
        return bad.withLock { $0 }
    }
}
