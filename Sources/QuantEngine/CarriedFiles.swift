import Crypto
import QuantSystem

/// The files of a model folder that quantd does not rewrite (tokenizer files, `generation_config.json`,
/// `modules.json`, `1_Pooling/config.json` and other subfolders, the model card): they travel byte for byte, so
/// that the output folder is a model folder too. Listed without following symlinks; a symlink or anything that is
/// not a regular file or folder is refused, naming it. Dot-names (`.git`, `.gitattributes`, editors' files) stay
/// behind, as they do everywhere in quantd.
enum CarriedFiles {
    /// Bounds on what a folder may carry: entries listed in all, and folder depth.
    static let maxEntries = 100_000
    static let maxDepth = 16

    /// The carried files below `root`, as paths relative to it (sorted, `/`-separated). `names` are the top-level
    /// entries to consider (the caller has taken the shards, the index and `config.json`).
    static func list(_ root: String, names: [String]) throws(EngineError) -> [String] {
        var out: [String] = []
        var seen = 0
        func walk(_ relative: [String], depth: Int) throws(EngineError) {
            let entries = relative.isEmpty ? names
                : try Files.list(root + "/" + relative.joined(separator: "/"), stage: "open")
            for name in entries where !name.hasPrefix(".") {
                seen += 1
                let parts = relative + [name]
                let path = parts.joined(separator: "/")
                guard seen <= maxEntries else {
                    throw EngineError(.badInput, file: root, reason: "holds more than \(maxEntries) files and folders "
                        + "to carry", stage: "open")
                }
                switch Files.kind(root + "/" + path) {
                case .file:
                    out.append(path)
                case .directory:
                    guard depth < maxDepth else {
                        throw EngineError(.badInput, file: root + "/" + path,
                                          reason: "folders nest deeper than \(maxDepth) levels", stage: "open")
                    }
                    try walk(parts, depth: depth + 1)
                case .other:
                    throw EngineError(.badInput, file: root + "/" + path,
                                      reason: "not a regular file or folder (symlinks are not followed)", stage: "open")
                case .missing:
                    throw EngineError(.badInput, file: root + "/" + path, reason: "vanished while being listed",
                                      stage: "open")
                }
            }
        }
        try walk([], depth: 1)
        return out.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    /// A path that stays inside the folder it is relative to: not absolute, no empty, `.` or `..` component.
    static func staysInside(_ relative: String) -> Bool {
        !relative.hasPrefix("/") && relative.split(separator: "/", omittingEmptySubsequences: false).allSatisfy {
            !$0.isEmpty && $0 != "." && $0 != ".."
        }
    }

    /// The subfolders made under a new folder `root` for files at relative paths, to be fsynced once filled.
    struct Subfolders {
        let root: String
        private var made: [String] = []

        init(root: String) { self.root = root }

        /// Makes the folders the file at `relative` (`/`-separated) needs, each once.
        mutating func parents(of relative: String, stage: String) throws(EngineError) {
            var dir = ""
            for part in relative.split(separator: "/").dropLast() {
                dir += (dir.isEmpty ? "" : "/") + part
                if !made.contains(dir) {
                    try Files.makeDirectory(root + "/" + dir, stage: stage)
                    made.append(dir)
                }
            }
        }

        /// fsyncs every folder made, deepest first.
        func sync(stage: String) throws(EngineError) {
            for dir in made.reversed() { try Files.sync(root + "/" + dir, stage: stage) }
        }
    }

    /// Copies `from` to the new file `to`, hashing the bytes as they pass; `expected`, when given, is the size and
    /// sha256 the copy must have (a file that changed, or a corrupt output, is refused and the copy removed).
    @discardableResult
    static func copy(_ from: String, to: String, expected: (size: Int, sha256: String)? = nil, stage: String)
        throws(EngineError) -> (size: Int, sha256: String)
    {
        let out = try OutputFile.create(to, stage: stage)
        do throws(EngineError) {
            let result = try stream(from, stage: stage) { bytes throws(EngineError) in try out.write(bytes, stage: stage) }
            if let expected, expected != result {
                throw EngineError(.badInput, file: from, reason: "is \(result.size) bytes with sha256 \(result.sha256), "
                    + "the manifest says \(expected.size) bytes with sha256 \(expected.sha256)", stage: stage)
            }
            try out.sync(stage: stage)
            return result
        } catch {
            Files.removeFile(to)
            throw error
        }
    }

    /// Size and sha256 of a file, read in 1 MiB pieces (never followed through a symlink).
    static func hash(_ path: String, stage: String) throws(EngineError) -> (size: Int, sha256: String) {
        try stream(path, stage: stage) { _ throws(EngineError) in }
    }

    /// Reads a regular file in 1 MiB pieces through `body`, hashing them; refuses a file that changed size meanwhile.
    static func stream(_ path: String, stage: String, direct: Bool = false,
                               _ body: (UnsafeRawBufferPointer) throws(EngineError) -> Void)
        throws(EngineError) -> (size: Int, sha256: String)
    {
        let reader = try ChunkReader(path, stage: stage, direct: direct)
        var hash = SHA256()
        while let piece = try reader.next() {
            hash.update(bufferPointer: piece)
            try body(piece)
        }
        try reader.finish()
        return (reader.offset, hash.finalize().hex)
    }
}
