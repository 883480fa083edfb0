import Crypto
import Dispatch
@testable import QuantEngine
import QuantSystem
import SafeTensors
import SystemPackage
import Testing
import TestSupport

/// A job interrupted after some of its files resumes from its staging folder: what the journal proves finished is
/// kept (not read or written again), the rest is done, and the output is byte for byte an uninterrupted run's.
@Suite("Resume from a staging folder")
struct ResumeTests {
    static let shards = 6

    /// A 6-shard folder (about 0.5 MB a shard, one work unit each: a cancellation lands between shards) with its
    /// index, made once; each test gets a copy of its own (`folder`).
    static let master: TempDir = {
        let dir = TempDir("quantd-resume-master")
        let input = dir["model"]
        _ = Shell.run("/bin/mkdir", [input])
        var rng = SeededRandom(seed: 21)
        var map: [(String, String)] = []
        for k in 1...shards {
            var c = Checkpoint()
            let name = "model-\(k)-of-\(shards).safetensors"
            c.addRandom("layer\(k).weight", shape: [128 + 16 * k, 768], rng: &rng)
            c.addRandom("layer\(k).bias", shape: [768], rng: &rng)
            try! c.write(to: input + "/" + name)
            map += [("layer\(k).weight", name), ("layer\(k).bias", name)]
        }
        try! TempDir.write(ShardIndex.encode(totalSize: 0, weightMap: map), to: input + "/model.safetensors.index.json")
        return dir
    }()

    static func folder(_ dir: TempDir) throws -> String {
        let copy = Shell.run("/bin/cp", ["-r", master["model"], dir["model"]])
        guard copy.status == 0 else { throw TestError("cp: \(copy.stderr)") }
        return dir["model"]
    }

    /// The uninterrupted output of `folder`, made once.
    static let reference: (files: [String: [UInt8]], manifest: Manifest) = {
        let dir = TempDir("quantd-resume-ref")
        defer { dir.remove() }
        let input = try! folder(dir)
        _ = try! Engine.quantize(input: input, output: dir["ref"], options: options(threads: 2))
        return try! contents(dir["ref"])
    }()

    static func options(threads: Int) -> QuantizeOptions {
        var o = QuantizeOptions()
        o.threads = threads
        return o
    }

    /// Every file of an output folder but the manifest, and the manifest without its clock fields.
    static func contents(_ out: String) throws -> (files: [String: [UInt8]], manifest: Manifest) {
        var files: [String: [UInt8]] = [:]
        for name in TempDir.list(out) where name != "manifest.json" { files[name] = try TempDir.read(out + "/" + name) }
        var manifest = try Manifest.decode(try TempDir.read(out + "/manifest.json"))
        manifest.startedAt = ""
        manifest.finishedAt = ""
        manifest.timings = .init(planSeconds: 0, quantizeSeconds: 0, commitSeconds: 0, totalSeconds: 0)
        return (files, manifest)
    }

    static func stagingFolders(of out: String) -> [String] {
        let parent = Path.directory(of: out)
        return TempDir.list(parent).filter { $0.hasPrefix("." + Path.base(of: out) + ".tmp-") }.map { parent + "/" + $0 }
    }

    /// Runs the job on one thread and cancels it once `files` files are journaled: it fails as cancelled and
    /// leaves its staging folder, whose path is returned.
    static func interrupt(_ input: String, _ out: String, after files: Int) throws -> String {
        let cancel = CancellationFlag()
        let watching = CancellationFlag()
        DispatchQueue.global().async {
            while !watching.isCancelled {
                let journaled = stagingFolders(of: out).first.map {
                    TempDir.list($0 + "/" + ResumeJournal.folderName).filter { $0.hasPrefix("file-") }.count
                } ?? 0
                if journaled >= files {
                    cancel.cancel()
                    return
                }
                FileSystem.sleep(seconds: 0.001)
            }
        }
        defer { watching.cancel() }
        #expect {
            try Engine.quantize(input: input, output: out, options: options(threads: 1), cancel: cancel, resume: ResumePolicy())
        } throws: { e in (e as! EngineError).kind == .cancelled }
        let staging = stagingFolders(of: out)
        #expect(staging.count == 1, "the cancelled job leaves its staging folder")
        return try #require(staging.first)
    }

    static func resume(_ input: String, _ out: String) throws -> ResumeReport {
        let report = Box()
        _ = try Engine.quantize(input: input, output: out, options: options(threads: 2), resume: ResumePolicy(),
                                resumed: { report.value = $0 })
        return try #require(report.value)
    }

    final class Box: @unchecked Sendable { var value: ResumeReport? }

    @Test("an interrupted job keeps its finished shards untouched and commits the same bytes")
    func resumeKeepsFinishedShards() throws {
        let dir = TempDir("quantd-resume")
        defer { dir.remove() }
        let input = try Self.folder(dir)
        let reference = Self.reference

        let out = dir["out"]
        let staging = try Self.interrupt(input, out, after: 2)
        let journaled = TempDir.list(staging + "/" + ResumeJournal.folderName).filter { $0.hasPrefix("file-") }
        #expect(journaled.count >= 2 && journaled.count < Self.shards, "\(journaled)")
        var before: [String: Entry] = [:]
        for k in 1...journaled.count {
            let name = "model-\(k)-of-\(Self.shards).safetensors.zst"
            before[name] = try FileSystem.entry(FilePath(staging + "/" + name))
        }

        let report = try Self.resume(input, out)
        #expect(Set(report.kept) == Set(before.keys), "kept what the journal proved finished")
        #expect(report.kept.count + report.redo.count == Self.shards && report.distrusted.isEmpty)
        #expect(report.keptSourceBytes > 0)
        let resumed = try Self.contents(out)
        #expect(resumed.files == reference.files, "byte for byte the uninterrupted output")
        #expect(resumed.manifest == reference.manifest)
        #expect(!TempDir.exists(out + "/" + ResumeJournal.folderName) && Self.stagingFolders(of: out).isEmpty)
        for (name, entry) in before {
            let after = try FileSystem.entry(FilePath(out + "/" + name))
            #expect(after.inode == entry.inode && after.mtimeNanoseconds == entry.mtimeNanoseconds,
                    "\(name) was kept as written, not written again")
        }
        #expect(Verifier.verify(out).ok)
    }

    /// What is done to the first shard's leftovers before resuming, and what the report must say of it.
    enum Tamper: CaseIterable {
        case truncatedOutput, changedOutputByte, changedJournalByte, truncatedJournal, touchedSource

        func apply(staging: String, input: String) throws {
            let output = staging + "/model-1-of-\(ResumeTests.shards).safetensors.zst"
            let entry = staging + "/" + ResumeJournal.folderName + "/file-0.json"
            switch self {
            case .truncatedOutput:
                let bytes = try TempDir.read(output)
                try TempDir.write(Array(bytes.prefix(bytes.count - 100)), to: output)
            case .changedOutputByte: try Self.flip(output, at: 5000)
            case .changedJournalByte:
                // A figure of a tensor record: the entry still decodes, only its checksum tells.
                let text = String(decoding: try TempDir.read(entry), as: UTF8.self)
                let at = try #require(text.utf8.firstIndex(of: UInt8(ascii: "7")))
                try Self.flip(entry, at: text.utf8.distance(from: text.utf8.startIndex, to: at), to: UInt8(ascii: "8"))
            case .truncatedJournal:
                let bytes = try TempDir.read(entry)
                try TempDir.write(Array(bytes.prefix(bytes.count / 2)), to: entry)
            case .touchedSource:
                let shard = input + "/model-1-of-\(ResumeTests.shards).safetensors"
                try TempDir.write(try TempDir.read(shard), to: shard + ".copy")
                _ = Shell.run("/bin/mv", ["-f", shard + ".copy", shard])
            }
        }

        var says: String {
            switch self {
            case .truncatedOutput: "bytes on disk"
            case .changedOutputByte: "sha256 on disk differs"
            case .changedJournalByte: "does not match its checksum"
            case .truncatedJournal: "cut short"
            case .touchedSource: "its source changed"
            }
        }

        static func flip(_ path: String, at offset: Int, to value: UInt8? = nil) throws {
            var bytes = try TempDir.read(path)
            bytes[offset] = value ?? ~bytes[offset]
            try TempDir.write(bytes, to: path)
        }
    }

    @Test("a kept shard or journal entry that was tampered with is not trusted: that shard is redone",
          arguments: Tamper.allCases)
    func tamperedLeftoversAreRedone(_ tamper: Tamper) throws {
        let dir = TempDir("quantd-resume-tamper")
        defer { dir.remove() }
        let input = try Self.folder(dir)
        let reference = Self.reference
        let out = dir["out"]
        let staging = try Self.interrupt(input, out, after: 2)
        try tamper.apply(staging: staging, input: input)

        let report = try Self.resume(input, out)
        let first = "model-1-of-\(Self.shards).safetensors.zst"
        #expect(!report.kept.contains(first) && report.redo.contains(first))
        #expect(report.kept.contains("model-2-of-\(Self.shards).safetensors.zst"), "the other shard is still kept")
        #expect(report.distrusted.count == 1 && report.distrusted[0].hasPrefix(first + ": ")
                && report.distrusted[0].contains(tamper.says), "\(report.distrusted)")
        let resumed = try Self.contents(out)
        #expect(resumed.files == reference.files && resumed.manifest == reference.manifest)
    }

    @Test("a staging folder left by a job with other options is emptied and the job starts afresh")
    func otherOptionsStartAfresh() throws {
        let dir = TempDir("quantd-resume-options")
        defer { dir.remove() }
        let input = try Self.folder(dir)
        let out = dir["out"]
        _ = try Self.interrupt(input, out, after: 2)
        var other = Self.options(threads: 2)
        other.level = 5
        let report = Box()
        _ = try Engine.quantize(input: input, output: out, options: other, resume: ResumePolicy(), resumed: { report.value = $0 })
        #expect(report.value?.kept == [] && report.value?.redo.count == Self.shards)
        #expect(report.value?.distrusted.first?.contains("other options") == true)
        #expect(Verifier.verify(out).ok && Self.stagingFolders(of: out).isEmpty)
        _ = try Engine.quantize(input: input, output: dir["ref"], options: other)
        #expect(try Self.contents(out).files == Self.contents(dir["ref"]).files)
    }

    /// Kept outputs and checkpoint prefixes are read back around the page cache (O_DIRECT, 1 MiB reads): every
    /// size around the block and read edges gives the file's bytes, and so does a prefix of it.
    @Test("an output read back with O_DIRECT gives its bytes, whatever its size")
    func directReadsGiveTheBytes() throws {
        let dir = TempDir("quantd-direct")
        defer { dir.remove() }
        var rng = SeededRandom(seed: 35)
        for size in [0, 1, 4095, 4096, 4097, (1 << 20) - 1, 1 << 20, (1 << 20) + 123, 3 << 20] {
            let bytes = (0..<size).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let path = dir["f\(size)"]
            try TempDir.write(bytes, to: path)
            let reader = try ChunkReader(path, stage: "resume", direct: true)
            var read: [UInt8] = []
            while let piece = try reader.next() { read += piece }
            try reader.finish()
            #expect(read == bytes, "\(size) bytes")
            var prefix: [UInt8] = []
            try ResumeJournal.readPrefix(path, count: size / 2, direct: true) { prefix += $0 }
            #expect(prefix == Array(bytes.prefix(size / 2)), "the first \(size / 2) of \(size) bytes")
        }
    }

    @Test("a staging folder whose owner still holds it is neither taken over nor removed")
    func aLiveStagingFolderIsLeftAlone() throws {
        let dir = TempDir("quantd-resume-live")
        defer { dir.remove() }
        let input = try Self.folder(dir)
        let out = dir["out"]
        let staging = try Self.interrupt(input, out, after: 2)
        // Held as a running job holds it.
        let held = try FileDescriptor.openFile(FilePath(staging), .readOnly, options: [.directory])
        defer { try? held.close() }
        #expect(try held.lock(exclusive: true, wait: false, path: nil))
        let report = Box()
        _ = try Engine.quantize(input: input, output: out, options: Self.options(threads: 2), resume: ResumePolicy(),
                                resumed: { report.value = $0 })
        #expect(report.value == nil, "nothing taken over")
        #expect(Self.stagingFolders(of: out) == [staging], "the held folder is still there")
        #expect(Verifier.verify(out).ok)
    }
}

/// Inside one large file: checkpoints after tensors, and a resumed run goes on from the last one.
@Suite("Resume inside a file")
struct FrameResumeTests {
    /// Checkpoints at least every 1 MB of source, in a file of any size (256 MiB and 64 MiB by default).
    static let policy = ResumePolicy(frameResumeBytes: 0, checkpointBytes: 1 << 20)

    /// 24 tensors of 384 kB: a work unit or two each, a checkpoint every three tensors or so.
    static let master: TempDir = {
        let dir = TempDir("quantd-frames-master")
        var rng = SeededRandom(seed: 33)
        var c = Checkpoint()
        for k in 0..<24 { c.addRandom("layers.\(k).weight", shape: [128, 768], rng: &rng) }
        try! c.write(to: dir["model.safetensors"])
        return dir
    }()

    static let reference: (files: [String: [UInt8]], manifest: Manifest) = {
        let dir = TempDir("quantd-frames-ref")
        defer { dir.remove() }
        _ = try! Engine.quantize(input: master["model.safetensors"], output: dir["ref"],
                                 options: ResumeTests.options(threads: 2))
        return try! ResumeTests.contents(dir["ref"])
    }()

    /// Runs the job until its first checkpoint is journaled, then cancels it; returns the staging folder.
    static func interrupt(_ out: String) throws -> String {
        let cancel = CancellationFlag()
        let watching = CancellationFlag()
        DispatchQueue.global().async {
            while !watching.isCancelled {
                if let staging = ResumeTests.stagingFolders(of: out).first,
                   TempDir.exists(staging + "/" + ResumeJournal.folderName + "/file-0.partial.json") {
                    cancel.cancel()
                    return
                }
                FileSystem.sleep(seconds: 0.001)
            }
        }
        defer { watching.cancel() }
        #expect {
            try Engine.quantize(input: master["model.safetensors"], output: out, options: ResumeTests.options(threads: 1),
                                cancel: cancel, resume: policy)
        } throws: { e in (e as! EngineError).kind == .cancelled }
        return try #require(ResumeTests.stagingFolders(of: out).first)
    }

    static func resume(_ out: String) throws -> ResumeReport {
        let report = ResumeTests.Box()
        _ = try Engine.quantize(input: master["model.safetensors"], output: out,
                                options: ResumeTests.options(threads: 2), resume: policy, resumed: { report.value = $0 })
        return try #require(report.value)
    }

    @Test("a file interrupted after a checkpoint goes on from it, with the uninterrupted bytes")
    func resumesFromTheLastCheckpoint() throws {
        let dir = TempDir("quantd-frames")
        defer { dir.remove() }
        let out = dir["out"]
        let staging = try Self.interrupt(out)
        let zst = staging + "/model.safetensors.zst"
        let written = try #require(Files.size(zst))
        let report = try Self.resume(out)
        #expect(report.kept.isEmpty && report.redo == ["model.safetensors.zst"] && report.distrusted.isEmpty, "\(report.distrusted)")
        #expect(report.resumedWithin.count == 1 && report.resumedWithin[0].hasPrefix("model.safetensors.zst from its "
            + "checkpoint at frame "), "\(report.resumedWithin)")
        #expect(written > 0)
        // Where the CPU has the SHA extensions the checkpoint saved the input hash's state: the source is not read
        // again up to it.
        let fromState = ResumableSHA256.isAvailable
        #expect(report.resumedWithin.first?.hasSuffix(fromState ? "the source's hash so far from the checkpoint)"
                                                                 : "the source's hash so far read again from it)") == true,
                "\(report.resumedWithin)")
        let resumed = try ResumeTests.contents(out)
        #expect(resumed.files == Self.reference.files, "byte for byte the uninterrupted output")
        #expect(resumed.manifest == Self.reference.manifest, "frames, hashes and error figures as if never stopped")
        #expect(resumed.manifest.sources.map(\.sha256) == [SHA256.hash(data: try TempDir.read(Self.master["model.safetensors"])).hex],
                "the source's sha256 is swift-crypto's of the file")
        #expect(Verifier.verify(out).ok)
    }

    /// What a checkpoint can say of the input's or the output's hash besides a good state.
    enum SavedState: String, CaseIterable, CustomTestStringConvertible {
        /// None for the input, as on a CPU without the SHA extensions (swift-crypto's hash).
        case none
        /// One for the input of another length than the source bytes the checkpoint has done.
        case otherLength
        /// None for the output (as there, or journaled by a build before the output's was saved): the output up
        /// to the checkpoint is hashed from disk before the work.
        case noOutputState
        /// One for the output whose digest is not the checkpoint's.
        case otherOutputState
        var testDescription: String { rawValue }
        var input: Bool { self == .none || self == .otherLength }
    }

    @Test("a checkpoint without a usable state of the input's hash reads the source again up to it; without one of the output's, it hashes the output up to it before going on",
          arguments: SavedState.allCases)
    func aCheckpointWithoutAUsableStateRehashesTheSource(_ saved: SavedState) throws {
        let dir = TempDir("quantd-frames-state")
        defer { dir.remove() }
        let out = dir["out"]
        let staging = try Self.interrupt(out)
        let journal = ResumeJournal(staging: staging)
        var entry = try journal.entry(ResumeJournal.Partial.self, at: journal.partialPath(0)).get()
        switch saved {
        case .none: entry.checkpoint.inputState = nil
        case .noOutputState: entry.checkpoint.outputState = nil
        case .otherLength, .otherOutputState:
            guard var state = saved.input ? entry.checkpoint.inputState : entry.checkpoint.outputState else {
                print("FrameResumeTests: no saved state on this CPU (no SHA extensions): nothing to change")
                return
            }
            if saved.input { state.bytes += 64 } else { state.words[0] ^= 1 }
            if saved.input { entry.checkpoint.inputState = state } else { entry.checkpoint.outputState = state }
        }
        // Journaled again as the engine journals it (with its checksum line): only the state differs.
        try journal.record(checkpoint: entry.checkpoint, index: 0, identity: entry.identity, output: entry.output)
        let report = try Self.resume(out)
        #expect(report.distrusted.isEmpty, "\(report.distrusted)")
        let how = saved.input || !ResumableSHA256.isAvailable ? "read again from it)" : "from the checkpoint)"
        #expect(report.resumedWithin.count == 1
                && report.resumedWithin[0].hasSuffix("the source's hash so far " + how), "\(report.resumedWithin)")
        let resumed = try ResumeTests.contents(out)
        #expect(resumed.files == Self.reference.files)
        #expect(resumed.manifest == Self.reference.manifest)
    }

    /// Changed, the output is caught beside the work where the checkpoint saved the output hash's state (the
    /// file, taken up at its checkpoint meanwhile, is then done again from its start), before it without one.
    @Test("a checkpointed output changed or cut below its checkpoint is not trusted: the file is redone",
          arguments: [true, false], [true, false])
    func aTamperedCheckpointIsNotTrusted(truncate: Bool, outputState: Bool) throws {
        let dir = TempDir("quantd-frames-tamper")
        defer { dir.remove() }
        let out = dir["out"]
        let staging = try Self.interrupt(out)
        if !outputState {
            let journal = ResumeJournal(staging: staging)
            var entry = try journal.entry(ResumeJournal.Partial.self, at: journal.partialPath(0)).get()
            entry.checkpoint.outputState = nil
            try journal.record(checkpoint: entry.checkpoint, index: 0, identity: entry.identity, output: entry.output)
        }
        let zst = staging + "/model.safetensors.zst"
        var bytes = try TempDir.read(zst)
        if truncate { bytes = Array(bytes.prefix(100)) } else { bytes[64] = ~bytes[64] }
        try TempDir.write(bytes, to: zst)
        let report = try Self.resume(out)
        #expect(report.resumedWithin.isEmpty)
        #expect(report.distrusted.count == 1 && report.distrusted[0].hasPrefix("model.safetensors.zst (checkpoint): ")
                && report.distrusted[0].contains(truncate ? "shorter than its checkpoint" : "differs from the checkpoint"),
                "\(report.distrusted)")
        #expect(try ResumeTests.contents(out).files == Self.reference.files)
    }

    @Test("two shards interrupted side by side go on each from its own checkpoint, with the uninterrupted bytes")
    func twoFilesInFlightResumeFromTheirCheckpoints() throws {
        let dir = TempDir("quantd-frames-two")
        defer { dir.remove() }
        // Two shards of 24 tensors: at 2 threads both are in flight at once (FileRuns.width), one worker each;
        // zstd level 19 keeps them there long enough for both to journal a checkpoint before the cancel.
        var rng = SeededRandom(seed: 34)
        var model = ShardedCheckpoint()
        for k in 1...2 {
            var c = Checkpoint()
            for t in 0..<24 { c.addRandom("layers.\(k).\(t).weight", shape: [128, 768], rng: &rng) }
            model.add("model-\(k)-of-2.safetensors", c)
        }
        let input = dir["model"]
        try model.write(to: input)
        var options = ResumeTests.options(threads: 2)
        options.level = 19
        #expect(FileRuns.width(files: 2, threads: 2) == 2)
        _ = try Engine.quantize(input: input, output: dir["ref"], options: options)
        let reference = try ResumeTests.contents(dir["ref"])

        let out = dir["out"]
        let cancel = CancellationFlag()
        let watching = CancellationFlag()
        DispatchQueue.global().async {
            while !watching.isCancelled {
                if let staging = ResumeTests.stagingFolders(of: out).first,
                   [0, 1].allSatisfy({ TempDir.exists(staging + "/" + ResumeJournal.folderName + "/file-\($0).partial.json") }) {
                    cancel.cancel()
                    return
                }
                FileSystem.sleep(seconds: 0.001)
            }
        }
        #expect {
            try Engine.quantize(input: input, output: out, options: options, cancel: cancel, resume: Self.policy)
        } throws: { e in (e as! EngineError).kind == .cancelled }
        watching.cancel()

        let report = ResumeTests.Box()
        _ = try Engine.quantize(input: input, output: out, options: options, resume: Self.policy,
                                resumed: { report.value = $0 })
        let resumed = try #require(report.value)
        #expect(resumed.distrusted.isEmpty, "\(resumed.distrusted)")
        #expect(resumed.resumedWithin.map { String($0.prefix(while: { $0 != " " })) }
                == ["model-1-of-2.safetensors.zst", "model-2-of-2.safetensors.zst"], "\(resumed.resumedWithin)")
        let after = try ResumeTests.contents(out)
        #expect(after.files == reference.files, "byte for byte the uninterrupted output")
        #expect(after.manifest == reference.manifest)
        #expect(Verifier.verify(out).ok)
    }
}
