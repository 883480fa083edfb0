internal import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// The few file-system calls the engine needs, each failing with an `EngineError` that names the path,
/// the operation and errno.
enum FileSystem {
    static func error(_ op: String, _ path: String, stage: String, kind: EngineError.Kind = .io,
                      errno e: Int32 = Glibc.errno) -> EngineError {
        EngineError(kind, file: path, reason: "\(op) failed: \(String(cString: strerror(e))) (errno \(e))",
                    errno: e, stage: stage)
    }

    enum Kind { case missing, file, directory, other }

    /// What is at `path`, without following a symlink.
    static func kind(_ path: String) -> Kind {
        var st = stat()
        guard lstat(path, &st) == 0 else { return .missing }
        switch st.st_mode & S_IFMT {
        case S_IFREG: return .file
        case S_IFDIR: return .directory
        default: return .other
        }
    }

    static func size(_ path: String, stage: String) throws(EngineError) -> Int {
        var st = stat()
        guard lstat(path, &st) == 0 else { throw error("stat", path, stage: stage) }
        return Int(st.st_size)
    }

    /// Creates `path` and any missing parents (mode 0755).
    static func makeDirectories(_ path: String, stage: String) throws(EngineError) {
        if kind(path) == .directory { return }
        let parent = Path.directory(of: path)
        if parent != path && !parent.isEmpty { try makeDirectories(parent, stage: stage) }
        if mkdir(path, 0o755) != 0 && errno != EEXIST {
            throw error("mkdir", path, stage: stage, kind: .cannotCreateOutput)
        }
    }

    static func makeDirectory(_ path: String, stage: String) throws(EngineError) {
        guard mkdir(path, 0o755) == 0 else { throw error("mkdir", path, stage: stage, kind: .cannotCreateOutput) }
    }

    /// Entry names of a folder (no "." or ".."), sorted bytewise for a deterministic order.
    static func list(_ path: String, stage: String) throws(EngineError) -> [String] {
        guard let dir = opendir(path) else { throw error("opendir", path, stage: stage, kind: .missingInput) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    /// Removes a file or a whole folder tree without following symlinks. Missing is fine.
    static func removeTree(_ path: String) {
        switch kind(path) {
        case .missing: return
        case .directory:
            if let names = try? list(path, stage: "cleanup") {
                for n in names { removeTree(path + "/" + n) }
            }
            rmdir(path)
        case .file, .other:
            unlink(path)
        }
    }

    static func fsyncPath(_ path: String, stage: String) throws(EngineError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw error("open", path, stage: stage) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw error("fsync", path, stage: stage) }
    }

    /// Renames `from` to `to`, refusing to replace anything at `to` (EEXIST -> cannotCreateOutput).
    static func renameNoReplace(_ from: String, _ to: String, stage: String) throws(EngineError) {
        guard quantd_renameat2(AT_FDCWD, from, AT_FDCWD, to, quantd_rename_noreplace) == 0 else {
            let e = errno
            if e == EEXIST || e == ENOTEMPTY {
                throw EngineError(.cannotCreateOutput, file: to, reason: "already exists", errno: e, stage: stage)
            }
            throw error("rename to '\(to)'", from, stage: stage, errno: e)
        }
    }

    /// Swaps two existing paths atomically.
    static func exchange(_ a: String, _ b: String, stage: String) throws(EngineError) {
        guard quantd_renameat2(AT_FDCWD, a, AT_FDCWD, b, quantd_rename_exchange) == 0 else {
            throw error("rename-exchange with '\(b)'", a, stage: stage)
        }
    }

    static func readWholeFile(_ path: String, limit: Int, stage: String) throws(EngineError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            throw error("open", path, stage: stage, kind: errno == ENOENT ? .missingInput : .io)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw error("fstat", path, stage: stage) }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw EngineError(.badInput, file: path, reason: "not a regular file", stage: stage)
        }
        guard Int(st.st_size) <= limit else {
            throw EngineError(.badInput, file: path, reason: "is \(st.st_size) bytes, more than the \(limit) allowed",
                              stage: stage)
        }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, $0.count - done, off_t(done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw error("read", path, stage: stage, errno: n == 0 ? EIO : errno) }
            done += n
        }
        return bytes
    }
}

/// A file opened for writing, fsynced before close by the owner.
///
/// Large outputs are written with `O_DIRECT` through an aligned buffer where the filesystem allows it: on the
/// machines measured here a buffered write of 600 MB costs a second of kernel time copying into the page cache,
/// a direct one a fifth of that. Filesystems without `O_DIRECT` (older tmpfs) get ordinary buffered writes.
final class OutputFile {
    let path: String
    let fd: Int32
    /// Bytes accepted so far (the file's logical size).
    private(set) var written = 0
    private var direct = false
    private var buffer: UnsafeMutableRawBufferPointer?
    private var buffered = 0

    static let directChunk = 8 << 20
    static let alignment = 4096

    init(creating path: String, stage: String, direct wantDirect: Bool = false) throws(EngineError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileSystem.error("create", path, stage: stage, kind: .cannotCreateOutput) }
        self.path = path
        self.fd = fd
        if wantDirect && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | quantd_o_direct) == 0 {
            direct = true
            buffer = .allocate(byteCount: Self.directChunk, alignment: Self.alignment)
        }
    }

    deinit {
        buffer?.deallocate()
        close(fd)
    }

    func write(_ bytes: UnsafeRawBufferPointer, stage: String = "write") throws(EngineError) {
        guard direct, let buffer else {
            try writeAll(bytes, stage: stage)
            written += bytes.count
            return
        }
        var rest = bytes
        while !rest.isEmpty {
            let n = min(rest.count, buffer.count - buffered)
            UnsafeMutableRawBufferPointer(rebasing: buffer[buffered..<(buffered + n)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: rest[rest.startIndex..<(rest.startIndex + n)]))
            buffered += n
            rest = UnsafeRawBufferPointer(rebasing: rest[(rest.startIndex + n)...])
            if buffered == buffer.count { try flush(stage: stage) }
        }
        written += bytes.count
    }

    func write(_ bytes: [UInt8], stage: String = "write") throws(EngineError) {
        try bytes.withUnsafeBytes { b in
            Result { () throws(EngineError) in try write(b, stage: stage) }
        }.get()
    }

    /// Writes what is buffered: whole aligned blocks directly, and a last partial block (only at the end)
    /// after switching the descriptor back to buffered mode.
    private func flush(stage: String) throws(EngineError) {
        guard let buffer, buffered > 0 else { return }
        let whole = buffered / Self.alignment * Self.alignment
        if whole > 0 { try writeAll(UnsafeRawBufferPointer(rebasing: buffer[0..<whole]), stage: stage) }
        if whole < buffered {
            guard fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~quantd_o_direct) == 0 else {
                throw FileSystem.error("fcntl", path, stage: stage)
            }
            direct = false
            try writeAll(UnsafeRawBufferPointer(rebasing: buffer[whole..<buffered]), stage: stage)
        }
        buffered = 0
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer, stage: String) throws(EngineError) {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw FileSystem.error("write", path, stage: stage, errno: n == 0 ? EIO : errno) }
            done += n
        }
    }

    /// Flushes the buffer and fsyncs: after this returns, the bytes are on disk.
    func sync(stage: String = "commit") throws(EngineError) {
        try flush(stage: stage)
        guard fsync(fd) == 0 else { throw FileSystem.error("fsync", path, stage: stage) }
    }
}

/// Path strings, the way the engine uses them (no normalisation beyond what is needed).
enum Path {
    static func base(of path: String) -> String {
        let trimmed = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
        guard let slash = trimmed.lastIndex(of: "/") else { return trimmed }
        return String(trimmed[trimmed.index(after: slash)...])
    }

    static func directory(of path: String) -> String {
        let trimmed = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        return slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
    }
}
