extension Manifest {
    /// Whether this manifest is the output of the input at `path` (a `.safetensors` file, or a folder of
    /// shards): it lists sources, and each is there, a regular file (never followed through a symlink) of the
    /// listed size and SHA-256. A folder's source naming a path outside the folder never matches. Sizes are
    /// compared before anything is hashed.
    ///
    /// The daemon asks this of `out/NAME` when a claim's journal names it after a crash: a match is a commit
    /// that happened before the crash (the input goes on to `done/`), anything else is someone else's output.
    public func isOutput(of path: String) -> Bool {
        guard !sources.isEmpty else { return false }
        let kind = Files.kind(path)
        guard kind == .file || kind == .directory else { return false }
        for source in sources {
            if kind == .directory && !CarriedFiles.staysInside(source.file) { return false }
            let file = kind == .directory ? path + "/" + source.file : path
            guard Files.kind(file) == .file, Files.size(file) == source.size,
                  let found = try? CarriedFiles.hash(file, stage: "recovery"),
                  found.size == source.size, found.sha256 == source.sha256 else { return false }
        }
        return true
    }
}
