import Crypto
import Dispatch
import FoundationEssentials
import QuantSystem
import Synchronization
import SystemPackage

/// What a resumed job found in the staging folder an interrupted run left (`resumed` in the daemon's log).
public struct ResumeReport: Sendable {
    /// Output files kept, verified from disk, whose sources were not read again.
    public var kept: [String]
    /// Bytes of the kept files' sources.
    public var keptSourceBytes: Int
    /// Files of the job done (again).
    public var redo: [String]
    /// Journal entries or kept files not trusted, and why; those files are redone.
    public var distrusted: [String]
}

/// What a staging folder keeps so that an interrupted job (SIGKILL, power loss, a transient error) redoes only the
/// files it had not finished: the folder `.journal/` inside the staging folder.
///
/// - `job.json`: quantd's version and the options (less `threads`, which do not change a byte). A staging folder
///   whose `job.json` is missing or differs is emptied and the job starts afresh in it.
/// - `file-<index>.json`: one per finished output file, written and fsynced after the file itself was fsynced: the
///   identity of its source (name, size, mtime, inode), its manifest entries (source with sha256, output with size,
///   sha256 and frames, tensor records), then a line holding the SHA-256 of those bytes, so that an entry changed by
///   one byte is not trusted.
///
/// A finished file is reused only when its entry checks out, names the file the plan would write from the same
/// source (same identity: the source is not read again), and the output in the staging folder has the size and
/// SHA-256 the entry names, hashed again from disk. Everything else in the staging folder is removed before work
/// starts. The journal is removed before the manifest is written: a committed output never holds it, and what the
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

    let staging: String
    var folder: String { staging + "/" + Self.folderName }

    private func entryPath(_ index: Int) -> String { folder + "/file-\(index).json" }

    /// Opens the journal of `staging` for `job`, which writes `outputs` (by index) from the sources `identities`.
    /// An adopted folder keeps what its journal proves finished; everything else in it is removed. Returns the
    /// journal, the entries whose outputs were verified from disk, and the report (nil for a new folder).
    static func open(staging: String, adopted: Bool, job: Job, outputs: [String], identities: [Identity])
        throws(EngineError) -> (ResumeJournal, [Int: Finished], ResumeReport?)
    {
        let journal = ResumeJournal(staging: staging)
        guard adopted else {
            try journal.start(job)
            return (journal, [:], nil)
        }
        var distrusted: [String] = []
        var candidates: [Int: Finished] = [:]
        let jobBytes = try? Files.readWholeFile(journal.folder + "/job.json", limit: 1 << 20, stage: "resume")
        let sameJob = jobBytes.flatMap { try? Self.decoder().decode(Job.self, from: Data($0)) } == job
        if sameJob {
            for (index, output) in outputs.enumerated() {
                guard Files.kind(journal.entryPath(index)) == .file else { continue }
                switch journal.entry(index) {
                case .success(let entry) where entry.index == index && entry.output.file == output
                    && entry.identity == identities[index]:
                    candidates[index] = entry
                case .success:
                    distrusted.append("\(output): its source changed since it was written")
                case .failure(let why):
                    distrusted.append("\(output): \(why)")
                }
            }
        } else {
            distrusted.append(jobBytes == nil ? "job.json missing: started afresh"
                              : "job.json names other options or another quantd: started afresh")
        }
        // Nothing but the candidates' outputs and their entries stays.
        let keep = Set(candidates.values.map(\.output.file))
        for name in try Files.list(staging, stage: "resume") where name != folderName && !keep.contains(name) {
            Files.removeTree(staging + "/" + name)
        }
        if !sameJob { Files.removeTree(journal.folder) }
        let entries = Set(candidates.keys.map { "file-\($0).json" })
        if Files.kind(journal.folder) == .directory {
            for name in try Files.list(journal.folder, stage: "resume") where !entries.contains(name) && name != "job.json" {
                Files.removeTree(journal.folder + "/" + name)
            }
        }
        // The kept outputs hashed again from disk, side by side.
        let order = candidates.keys.sorted()
        let toVerify = order.map { candidates[$0]! }
        let verdicts = Mutex<[Int: String]>([:])
        DispatchQueue.concurrentPerform(iterations: order.count) { i in
            let entry = toVerify[i]
            let path = staging + "/" + entry.output.file
            let why: String?
            do throws(EngineError) {
                let found = try CarriedFiles.hash(path, stage: "resume")
                why = found.size != entry.output.size ? "\(found.size) bytes on disk, \(entry.output.size) journaled"
                    : found.sha256 != entry.output.sha256 ? "its sha256 on disk differs from the journal's" : nil
            } catch {
                why = error.reason
            }
            if let why { verdicts.withLock { $0[order[i]] = why } }
        }
        for (index, why) in verdicts.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            distrusted.append("\(outputs[index]): \(why)")
            candidates[index] = nil
            Files.removeFile(staging + "/" + outputs[index])
            Files.removeFile(journal.entryPath(index))
        }
        if !sameJob { try journal.start(job) }
        try Files.sync(staging, stage: "resume")
        let kept = candidates.keys.sorted()
        let report = ResumeReport(
            kept: kept.map { outputs[$0] }, keptSourceBytes: kept.reduce(0) { $0 + candidates[$1]!.source.size },
            redo: outputs.indices.filter { candidates[$0] == nil }.map { outputs[$0] }, distrusted: distrusted)
        return (journal, candidates, report)
    }

    /// Journals a finished file, after the file itself was fsynced. An entry that cannot be encoded (a non-finite
    /// figure) is left out: that file would be redone.
    func record(_ finished: Finished) throws(EngineError) {
        guard var body = try? Self.encoder().encode(finished) else { return }
        body.append(contentsOf: Array("\n\(SHA256.hash(data: body).hex)\n".utf8))
        try write(Array(body), to: entryPath(finished.index))
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

    /// The entry of file `index`, or why it is not trusted.
    private func entry(_ index: Int) -> Result<Finished, EntryProblem> {
        guard let bytes = try? Files.readWholeFile(entryPath(index), limit: 1 << 30, stage: "resume") else {
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
        guard let entry = try? Self.decoder().decode(Finished.self, from: Data(body)) else {
            return .failure(.init("its journal entry does not decode"))
        }
        return .success(entry)
    }

    struct EntryProblem: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    private static func encoder() -> JSONEncoder { Manifest.encoder() }

    private static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }
}
