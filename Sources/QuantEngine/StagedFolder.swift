#if canImport(Glibc)
import Glibc
#endif

/// An output folder built beside its destination as `.NAME.tmp-TAG-RANDOM` and renamed into place only when
/// complete, so that a reader sees the whole folder or nothing (`quantize`, `unpack`).
struct StagedFolder {
    /// Where the folder goes.
    let final: String
    /// Where it is built.
    let path: String
    private let parent: String
    private let force: Bool

    /// The destination without a trailing slash; refuses an unusable name, and an existing destination unless
    /// `force`. Called before any work, so a job that cannot commit fails at once.
    static func destination(_ output: String, force: Bool) throws(EngineError) -> String {
        let final = output.count > 1 && output.hasSuffix("/") ? String(output.dropLast()) : output
        let name = Path.base(of: final)
        guard !name.isEmpty, name != ".", name != ".." else {
            throw EngineError(.cannotCreateOutput, file: output, reason: "not a usable folder name", stage: "open")
        }
        if FileSystem.kind(final) != .missing && !force {
            throw EngineError(.cannotCreateOutput, file: final, reason: "already exists (pass --force to replace it)",
                              stage: "open")
        }
        return final
    }

    /// Creates the staging folder (and the destination's missing parents). `tag` names the claimant (the
    /// daemon's instance, else the pid), so that a daemon restarting beside others removes only its own.
    init(final: String, tag: String?, force: Bool) throws(EngineError) {
        self.final = final
        self.force = force
        parent = Path.directory(of: final)
        path = "\(parent)/.\(Path.base(of: final)).tmp-\(tag ?? "\(getpid())")-\(UInt32.random(in: 0...UInt32.max))"
        try FileSystem.makeDirectories(parent, stage: "open")
        try FileSystem.makeDirectory(path, stage: "write")
    }

    /// fsyncs the staging folder, renames it into place and fsyncs the parent. Without `force` an output that
    /// appeared meanwhile is never replaced; with it, the old folder is swapped out atomically and then removed,
    /// so a reader sees either the old output or the new, never a mix.
    func commit() throws(EngineError) {
        try FileSystem.fsyncPath(path, stage: "commit")
        if force && FileSystem.kind(final) != .missing {
            try FileSystem.exchange(path, final, stage: "commit")
            FileSystem.removeTree(path)
        } else {
            let appeared = EngineError(
                .cannotCreateOutput, file: final, reason: "appeared meanwhile (pass --force to replace it)",
                stage: "commit")
            do throws(EngineError) { try FileSystem.renameNoReplace(path, final, stage: "commit") } catch {
                if error.kind == .cannotCreateOutput { throw appeared }
                // No RENAME_NOREPLACE here (NFS answers EINVAL): rename() never replaces a non-empty folder, and
                // the staging folder is never empty, so a plain rename still cannot replace an output.
                guard error.errno == EINVAL else { throw error }
                guard FileSystem.kind(final) == .missing else { throw appeared }
                guard rename(path, final) == 0 else {
                    let e = errno
                    if e == EEXIST || e == ENOTEMPTY || e == ENOTDIR { throw appeared }
                    throw FileSystem.error("rename to '\(final)'", path, stage: "commit", errno: e)
                }
            }
        }
        try FileSystem.fsyncPath(parent, stage: "commit")
    }

    /// Removes the staging folder and everything in it.
    func discard() { FileSystem.removeTree(path) }
}
