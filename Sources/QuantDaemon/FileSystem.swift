internal import CLinux
internal import Crypto
internal import Glibc

/// A failed system call: which call, on which path, and the errno it returned.
public struct SystemError: Error, Sendable, CustomStringConvertible {
    public var call: String
    public var path: String
    public var errno: Int32

    public init(_ call: String, path: String, errno: Int32) {
        self.call = call
        self.path = path
        self.errno = errno
    }

    public var description: String {
        "\(call)(\(path)): \(String(cString: strerror(errno)))"
    }
}

/// What an entry of a folder is, read with `lstat` so that a symlink is never followed.
enum EntryKind: String, Sendable {
    case file, directory, symlink, fifo, socket, characterDevice = "character device"
    case blockDevice = "block device", unknown
}

/// The figures of one entry that tell whether it is still being written.
struct EntryStat: Sendable, Equatable {
    var kind: EntryKind
    var size: Int
    var mtimeNanoseconds: Int
    var device: UInt
}

/// Thin wrappers over the few system calls the spool needs, each retried on EINTR.
enum FS {
    static func lstatEntry(_ path: String) throws(SystemError) -> EntryStat {
        var st = stat()
        guard lstat(path, &st) == 0 else { throw SystemError("lstat", path: path, errno: errno) }
        let kind: EntryKind
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = .file
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        case S_IFIFO: kind = .fifo
        case S_IFSOCK: kind = .socket
        case S_IFCHR: kind = .characterDevice
        case S_IFBLK: kind = .blockDevice
        default: kind = .unknown
        }
        let mtime = Int(st.st_mtim.tv_sec) * 1_000_000_000 + Int(st.st_mtim.tv_nsec)
        return EntryStat(kind: kind, size: Int(st.st_size), mtimeNanoseconds: mtime, device: UInt(st.st_dev))
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// Names in a folder (without "." and ".."), as raw bytes: a name need not be valid UTF-8.
    /// At most `limit` names are read (a folder of millions of entries costs no more than that).
    static func listNames(_ path: String, limit: Int = .max) throws(SystemError) -> [[UInt8]] {
        guard let dir = opendir(path) else { throw SystemError("opendir", path: path, errno: errno) }
        defer { closedir(dir) }
        var names: [[UInt8]] = []
        while names.count < limit, let entry = readdir(dir) {
            let bytes = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                Array(raw.prefix(while: { $0 != 0 }))
            }
            if bytes == [0x2E] || bytes == [0x2E, 0x2E] { continue }
            names.append(bytes)
        }
        return names
    }

    static func makeDirectory(_ path: String, mode: mode_t = 0o755) throws(SystemError) {
        if mkdir(path, mode) != 0 && errno != EEXIST { throw SystemError("mkdir", path: path, errno: errno) }
    }

    /// `rename` that refuses to replace an existing target (RENAME_NOREPLACE), so that no
    /// daemon ever overwrites a file another one put there.
    static func renameNoReplace(_ from: String, _ to: String) throws(SystemError) {
        try renameNoReplace(Array(from.utf8), to)
    }

    ///
    /// Where the filesystem has no RENAME_NOREPLACE (NFS answers EINVAL), a file (or symlink, FIFO...) is
    /// moved with link() then unlink(), link refusing an existing target; a folder with rename() after a
    /// check that the target is absent (a non-empty folder is never replaced by rename; an empty one could be).
    static func renameNoReplace(_ from: [UInt8], _ to: String) throws(SystemError) {
        let source = from + [0]
        let result: Int32 = source.withUnsafeBufferPointer { source in
            source.withMemoryRebound(to: CChar.self) { source in
                quantd_renameat2(AT_FDCWD, source.baseAddress!, AT_FDCWD, to, quantd_rename_noreplace)
            }
        }
        guard result != 0 else { return }
        var code = errno
        if code == EINVAL {
            code = source.withUnsafeBufferPointer { source in
                source.withMemoryRebound(to: CChar.self) { source in
                    var st = stat()
                    guard lstat(source.baseAddress!, &st) == 0 else { return errno }
                    if st.st_mode & S_IFMT == S_IFDIR {
                        if exists(to) { return EEXIST }
                        return rename(source.baseAddress!, to) == 0 ? 0 : errno
                    }
                    guard link(source.baseAddress!, to) == 0 else { return errno }
                    return unlink(source.baseAddress!) == 0 ? 0 : errno
                }
            }
            if code == 0 { return }
        }
        throw SystemError("rename", path: String(decoding: from, as: UTF8.self) + " -> " + to, errno: code)
    }

    /// fsync a folder, which makes the renames and creations inside it durable.
    static func syncDirectory(_ path: String) throws(SystemError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open", path: path, errno: errno) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw SystemError("fsync", path: path, errno: errno) }
    }

    /// Writes `bytes` to `path` through a temporary sibling (`temp`, or `path.tmp-<pid>`), fsynced, then
    /// renamed over `path`.
    static func writeAtomically(_ bytes: [UInt8], to path: String, temp: String? = nil,
                                mode: mode_t = 0o644) throws(SystemError) {
        let temp = temp ?? path + ".tmp-\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw SystemError("open", path: temp, errno: errno) }
        var failure: SystemError?
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = SystemError("write", path: temp, errno: errno)
                    return
                }
                offset += n
            }
        }
        if failure == nil && fsync(fd) != 0 { failure = SystemError("fsync", path: temp, errno: errno) }
        close(fd)
        if failure == nil && rename(temp, path) != 0 { failure = SystemError("rename", path: path, errno: errno) }
        if let failure {
            unlink(temp)
            throw failure
        }
    }

    /// Writes `bytes` to a new file `path` through `temp` (fsynced), refusing to replace one (EEXIST).
    static func writeNew(_ bytes: [UInt8], to path: String, temp: String) throws(SystemError) {
        try writeAtomically(bytes, to: temp, temp: temp)
        defer { unlink(temp) }
        try renameNoReplace(temp, path)
    }

    /// The SHA-256 of a file's bytes in lowercase hex (not following a symlink).
    static func sha256(_ path: String) throws(SystemError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { throw SystemError("open", path: path, errno: errno) }
        defer { close(fd) }
        var hasher = SHA256()
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("read", path: path, errno: errno)
            }
            if n == 0 { break }
            chunk.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        return hasher.finalize().map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    static func readFile(_ path: String, limit: Int = 16 << 20) throws(SystemError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw SystemError("open", path: path, errno: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while bytes.count < limit {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("read", path: path, errno: errno)
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return bytes
    }

    /// Removes a file, or a folder with everything in it, never following symlinks.
    static func removeTree(_ path: String) throws(SystemError) {
        let entry = try lstatEntry(path)
        if entry.kind == .directory {
            for name in try listNames(path) {
                try removeTree(path + "/" + String(decoding: name, as: UTF8.self))
            }
            guard rmdir(path) == 0 else { throw SystemError("rmdir", path: path, errno: errno) }
        } else {
            guard unlink(path) == 0 else { throw SystemError("unlink", path: path, errno: errno) }
        }
    }

    /// The largest mtime, the total size and the number of entries of a folder and the entries in it (one
    /// level: the engine reads no deeper), at most `limit` of them: unchanged figures over the settle window
    /// mean nobody is writing into it.
    static func treeSignature(_ path: String, limit: Int = 1 << 20) throws(SystemError) -> EntryStat {
        var total = try lstatEntry(path)
        guard total.kind == .directory else { return total }
        for name in try listNames(path, limit: limit) {
            let child = try lstatEntry(path + "/" + String(decoding: name, as: UTF8.self))
            total.size += child.size + 1
            total.mtimeNanoseconds = max(total.mtimeNanoseconds, child.mtimeNanoseconds)
        }
        return total
    }

    static func hostName() -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let ok = buffer.withUnsafeMutableBufferPointer { raw in
            raw.withMemoryRebound(to: CChar.self) { gethostname($0.baseAddress!, 255) == 0 }
        }
        return ok ? String(decoding: buffer.prefix(while: { $0 != 0 }), as: UTF8.self) : "localhost"
    }

    /// Seconds on the monotonic clock, for deadlines.
    static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

extension FS {
    /// Seconds since the epoch, for metrics.
    static func unixSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// A line on standard error, for what must be seen even when the log goes to a file.
    static func printError(_ text: String) {
        var line = text + "\n"
        line.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}
