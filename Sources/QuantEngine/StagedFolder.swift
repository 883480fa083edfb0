import QuantSystem
import SystemPackage

/// An output folder built beside its destination as `.NAME.tmp-TAG-RANDOM` and renamed into place only when
/// complete, so that a reader sees the whole folder or nothing (`quantize`, `unpack`).
///
/// Its owner holds an exclusive `flock` on it while working, so that a folder nobody holds was left by a process
/// that died: with `resume`, such a folder holding a journal (`ResumeJournal`) is taken over instead of starting a
/// new one, and the other dead ones of the same destination are removed.
final class StagedFolder {
    /// Where the folder goes.
    let final: String
    /// Where it is built.
    let path: String
    /// Whether `path` was left by an interrupted run and taken over.
    let adopted: Bool
    private let parent: String
    private let force: Bool
    private var lock: FileDescriptor?

    /// The destination without a trailing slash; refuses an unusable name, and an existing destination unless
    /// `force`. Called before any work, so a job that cannot commit fails at once.
    static func destination(_ output: String, force: Bool) throws(EngineError) -> String {
        let final = output.count > 1 && output.hasSuffix("/") ? String(output.dropLast()) : output
        let name = Path.base(of: final)
        guard !name.isEmpty, name != ".", name != ".." else {
            throw EngineError(.cannotCreateOutput, file: output, reason: "not a usable folder name", stage: "open")
        }
        if Files.kind(final) != .missing && !force {
            throw EngineError(.cannotCreateOutput, file: final, reason: "already exists (pass --force to replace it)",
                              stage: "open")
        }
        return final
    }

    /// Creates the staging folder (and the destination's missing parents). `tag` names the claimant (the
    /// daemon's instance, else the pid), so that a daemon restarting beside others removes only its own.
    init(final: String, tag: String?, force: Bool, resume: Bool = false) throws(EngineError) {
        self.final = final
        self.force = force
        parent = Path.directory(of: final)
        try Files.makeDirectories(parent, stage: "open")
        if resume, let (found, lock) = try Self.takeOver(final: final, parent: parent) {
            (path, self.lock, adopted) = (found, lock, true)
            return
        }
        let prefix = "\(parent)/.\(Path.base(of: final)).tmp-"
        path = prefix + "\(tag ?? "\(FileSystem.processID)")-\(UInt32.random(in: 0...UInt32.max))"
        adopted = false
        try Files.makeDirectory(path, stage: "write")
        lock = Self.lock(path)
    }

    deinit { try? lock?.close() }

    /// An exclusive lock on the folder at `path`, nil when it is held (or the file system has no flock).
    private static func lock(_ path: String) -> FileDescriptor? {
        if case .locked(let fd) = FileSystem.lockFolder(FilePath(path)) { return fd }
        return nil
    }

    /// The staging folders of `final` that nobody holds (`.NAME.tmp-TAG-N`, TAG without a `.`): the first holding a
    /// journal is taken over, locked; the others are removed.
    private static func takeOver(final: String, parent: String) throws(EngineError)
        -> (path: String, lock: FileDescriptor)?
    {
        let prefix = ".\(Path.base(of: final)).tmp-"
        var taken: (path: String, lock: FileDescriptor)?
        for name in try Files.list(parent, stage: "open") where name.hasPrefix(prefix) {
            let tag = name.dropFirst(prefix.count)
            guard !tag.contains("."), let dash = tag.lastIndex(of: "-"),
                  tag[tag.index(after: dash)...].allSatisfy({ $0.isASCII && $0.isNumber }) else { continue }
            let path = parent + "/" + name
            guard Files.kind(path) == .directory, let lock = lock(path) else { continue }
            if taken == nil && Files.kind(path + "/" + ResumeJournal.folderName + "/job.json") == .file {
                taken = (path, lock)
            } else {
                Files.removeTree(path)
                try? lock.close()
            }
        }
        return taken
    }

    /// fsyncs the staging folder, renames it into place and fsyncs the parent. Without `force` an output that
    /// appeared meanwhile is never replaced; with it, the old folder is swapped out atomically and then removed,
    /// so a reader sees either the old output or the new, never a mix.
    func commit() throws(EngineError) {
        try Files.sync(path, stage: "commit")
        if force && Files.kind(final) != .missing {
            try Files.exchange(path, final, stage: "commit")
            Files.removeTree(path)
        } else {
            let appeared = EngineError(
                .cannotCreateOutput, file: final, reason: "appeared meanwhile (pass --force to replace it)",
                stage: "commit")
            // Where there is no RENAME_NOREPLACE (NFS) the system layer renames a folder after checking the
            // target is absent: rename() never replaces a non-empty folder, and the staging folder is never empty.
            do throws(EngineError) { try Files.renameNoReplace(path, final, stage: "commit") } catch {
                if error.kind == .cannotCreateOutput || error.errno == 20 /* ENOTDIR */ { throw appeared }
                throw error
            }
        }
        try Files.sync(parent, stage: "commit")
        release()
    }

    /// Removes the staging folder and everything in it.
    func discard() {
        Files.removeTree(path)
        release()
    }

    /// Lets go of the folder, left in place for a later run to resume.
    func release() {
        try? lock?.close()
        lock = nil
    }
}
