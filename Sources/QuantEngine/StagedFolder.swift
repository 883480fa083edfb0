import QuantSystem

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
        if Files.kind(final) != .missing && !force {
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
        path = "\(parent)/.\(Path.base(of: final)).tmp-\(tag ?? "\(FileSystem.processID)")-\(UInt32.random(in: 0...UInt32.max))"
        try Files.makeDirectories(parent, stage: "open")
        try Files.makeDirectory(path, stage: "write")
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
    }

    /// Removes the staging folder and everything in it.
    func discard() { Files.removeTree(path) }
}
