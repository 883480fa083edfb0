internal import CLinux
internal import Glibc
public import SystemPackage

/// What is at a path, read with `lstat`: a symlink is never followed.
public struct Entry: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case file, directory, symlink, fifo, socket, characterDevice = "character device"
        case blockDevice = "block device", unknown
    }

    public var kind: Kind
    public var size: Int
    public var mtimeNanoseconds: Int
    public var device: UInt
    public var inode: UInt64

    public init(kind: Kind, size: Int, mtimeNanoseconds: Int, device: UInt, inode: UInt64 = 0) {
        self.kind = kind
        self.size = size
        self.mtimeNanoseconds = mtimeNanoseconds
        self.device = device
        self.inode = inode
    }

    init(_ status: Stat) {
        kind = switch status.type {
        case .regular: .file
        case .directory: .directory
        case .symbolicLink: .symlink
        case .fifo: .fifo
        case .socket: .socket
        case .characterSpecial: .characterDevice
        case .blockSpecial: .blockDevice
        default: .unknown
        }
        size = Int(status.size)
        mtimeNanoseconds = Int(status.st_mtim.tv_sec) * 1_000_000_000 + Int(status.st_mtim.tv_nsec)
        device = UInt(status.deviceID.rawValue)
        inode = UInt64(status.inode.rawValue)
    }
}

/// The path-level calls quantd makes, over swift-system where it has them and Glibc where it does not
/// (directories, renameat2, fsync), each throwing a `SystemError` and retried on EINTR.
public enum FileSystem {
    /// `lstat`: what is at `path`, never following a symlink.
    public static func entry(_ path: FilePath) throws(SystemError) -> Entry {
        do {
            return Entry(try path.stat(followTargetSymlink: false))
        } catch {
            throw SystemError("lstat", path: path, errno: error)
        }
    }

    /// The kind of what is at `path` (not following a symlink), or nil when nothing is there.
    public static func kind(_ path: FilePath) -> Entry.Kind? {
        try? entry(path).kind
    }

    public static func exists(_ path: FilePath) -> Bool { kind(path) != nil }

    /// Entry names of a folder (no "." or ".."), as raw bytes in the order the folder gives: a name need not be
    /// valid UTF-8. At most `limit` names are read (a folder of millions costs no more than that).
    public static func listNames(_ path: FilePath, limit: Int = .max) throws(SystemError) -> [[UInt8]] {
        guard let dir = path.withPlatformString({ opendir($0) }) else {
            throw SystemError("opendir", path: path, errno: Errno(rawValue: Glibc.errno))
        }
        defer { closedir(dir) }
        var names: [[UInt8]] = []
        while names.count < limit, let entry = readdir(dir) {
            let bytes = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix(while: { $0 != 0 })) }
            if bytes == [0x2E] || bytes == [0x2E, 0x2E] { continue }
            names.append(bytes)
        }
        return names
    }

    /// Entry names of a folder as strings, sorted bytewise: a deterministic order for what is written.
    public static func list(_ path: FilePath) throws(SystemError) -> [String] {
        try listNames(path).sorted { $0.lexicographicallyPrecedes($1) }.map { String(decoding: $0, as: UTF8.self) }
    }

    /// `mkdir`. With `existingOK`, EEXIST is not an error whatever is there: the caller looks at what it is (the
    /// spool says "is a file, not a folder"; a file on the way of `makeDirectories` fails the next call).
    public static func makeDirectory(_ path: FilePath, mode: FilePermissions = [.ownerReadWriteExecute,
        .groupReadExecute, .otherReadExecute], existingOK: Bool = true) throws(SystemError)
    {
        let result = path.withPlatformString { mkdir($0, mode.rawValue) }
        guard result != 0 else { return }
        let code = Errno(rawValue: Glibc.errno)
        if code == .fileExists && existingOK { return }
        throw SystemError("mkdir", path: path, errno: code)
    }

    /// Creates `path` and any missing parents (mode 0755).
    public static func makeDirectories(_ path: FilePath) throws(SystemError) {
        if kind(path) == .directory { return }
        let parent = path.removingLastComponent()
        if !parent.isEmpty && parent != path { try makeDirectories(parent) }
        try makeDirectory(path)
    }

    public static func unlink(_ path: FilePath) throws(SystemError) {
        _ = try retrying("unlink", path) { path.withPlatformString { Glibc.unlink($0) } }
    }

    /// Removes a file, or a folder with everything in it, never following symlinks. Nothing there is fine.
    public static func removeTree(_ path: FilePath) throws(SystemError) {
        guard let kind = kind(path) else { return }
        if kind == .directory {
            for name in try listNames(path) { try removeTree(path.appending(component(name))) }
            _ = try retrying("rmdir", path) { path.withPlatformString { rmdir($0) } }
        } else {
            try unlink(path)
        }
    }

    /// A folder entry's name as a path component (any bytes but "/" and NUL).
    public static func component(_ name: [UInt8]) -> FilePath.Component {
        FilePath.Component(platformString: name.map { CChar(bitPattern: $0) } + [0])!
    }

    /// `rename`, refusing to replace anything at `to` (RENAME_NOREPLACE; EEXIST when something is there), so
    /// that no daemon ever overwrites what another put there.
    ///
    /// Where the filesystem has no RENAME_NOREPLACE (NFS answers EINVAL), a file (or symlink, FIFO...) is moved
    /// with link() then unlink(), link refusing an existing target; a folder with rename() after a check that the
    /// target is absent (rename never replaces a non-empty folder; an empty one it could).
    public static func renameNoReplace(_ from: FilePath, _ to: FilePath) throws(SystemError) {
        let call = "rename to '\(to.string)'"
        let result = renameat2(from, to, flags: quantd_rename_noreplace)
        guard result == .invalidArgument else {
            if let result { throw SystemError(call, path: from, errno: result) }
            return
        }
        let fallback: Errno?
        if kind(from) == .directory {
            fallback = exists(to) ? .fileExists : posix(from, to, Glibc.rename)
        } else {
            fallback = posix(from, to, link) ?? from.withPlatformString { Glibc.unlink($0) == 0 ? nil : .current }
        }
        if let fallback { throw SystemError(call, path: from, errno: fallback) }
    }

    /// Swaps two existing paths atomically (RENAME_EXCHANGE).
    public static func exchange(_ a: FilePath, _ b: FilePath) throws(SystemError) {
        if let code = renameat2(a, b, flags: quantd_rename_exchange) {
            throw SystemError("rename-exchange with '\(b.string)'", path: a, errno: code)
        }
    }

    /// `rename`, replacing what is at `to` (a file written through a temporary sibling).
    public static func rename(_ from: FilePath, _ to: FilePath) throws(SystemError) {
        if let code = posix(from, to, Glibc.rename) {
            throw SystemError("rename to '\(to.string)'", path: from, errno: code)
        }
    }

    /// fsync of a file or a folder by path: for a folder, makes the renames and creations inside it durable.
    public static func sync(_ path: FilePath) throws(SystemError) {
        let descriptor = try FileDescriptor.openFile(path, .readOnly)
        defer { try? descriptor.close() }
        try descriptor.sync(path: path)
    }

    /// The whole of a small regular file (opened without following a symlink, non-blocking so that a FIFO is
    /// refused at once). Refused, not cut short, when it holds more than `limit` bytes. A file that reports size 0
    /// (those of /proc and /sys do) is read until its end.
    public static func readFile(_ path: FilePath, limit: Int) throws(SystemError) -> [UInt8] {
        let descriptor = try FileDescriptor.openFile(path, .readOnly, options: [.noFollow, .nonBlocking])
        defer { try? descriptor.close() }
        let status = try descriptor.status(path: path)
        guard status.type == .regular else {
            throw SystemError("open", path: path, errno: .invalidArgument, refusal: "not a regular file")
        }
        guard status.size <= limit else { throw tooLarge(path, "is \(status.size) bytes", limit: limit) }
        if status.size == 0 { return try readToEnd(descriptor, path: path, limit: limit) }
        var bytes = [UInt8](repeating: 0, count: Int(status.size))
        let count = try bytes.withUnsafeMutableBytes { buffer in
            Result { () throws(SystemError) in try descriptor.readFully(into: buffer, at: 0, path: path, allowShort: true) }
        }.get()
        bytes.removeLast(bytes.count - count)
        return bytes
    }

    /// Writes `bytes` to `path` through `temp` (default `path.tmp-<pid>`), fsynced, then renamed over `path`.
    public static func writeAtomically(_ bytes: [UInt8], to path: FilePath, temp: FilePath? = nil,
                                       mode: FilePermissions = [.ownerReadWrite, .groupRead, .otherRead])
        throws(SystemError)
    {
        let temp = temp ?? FilePath(path.string + ".tmp-\(getpid())")
        do throws(SystemError) {
            let descriptor = try FileDescriptor.openFile(temp, .writeOnly, options: [.create, .truncate],
                                                     permissions: mode)
            defer { try? descriptor.close() }
            try bytes.withUnsafeBytes { raw in
                Result { () throws(SystemError) in try descriptor.writeFully(raw, path: temp) }
            }.get()
            try descriptor.sync(path: temp)
            if temp != path { try rename(temp, path) }
        } catch {
            try? unlink(temp)
            throw error
        }
    }

    /// Writes `bytes` to a new file `path` through `temp` (fsynced), refusing to replace one (EEXIST).
    public static func writeNew(_ bytes: [UInt8], to path: FilePath, temp: FilePath) throws(SystemError) {
        try writeAtomically(bytes, to: temp, temp: temp)
        defer { try? unlink(temp) }
        try renameNoReplace(temp, path)
    }

    /// The kernel's name and release (`uname`): `Linux 6.1.0-18-amd64`.
    public static func kernel() -> String {
        var name = utsname()
        uname(&name)
        func text<T>(_ field: T) -> String {
            withUnsafeBytes(of: field) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        return text(name.sysname) + " " + text(name.release)
    }

    /// The machine's host name (`localhost` when it has none).
    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, 255) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `realpath`: the absolute path with every symlink on the way resolved; nil when it does not exist.
    public static func resolvingSymlinks(_ path: FilePath) -> FilePath? {
        guard let resolved = path.withPlatformString({ realpath($0, nil) }) else { return nil }
        defer { free(resolved) }
        return FilePath(platformString: resolved)
    }

    /// The working directory (`getcwd`), nil when it cannot be read (removed, or too long).
    public static func currentDirectory() -> FilePath? {
        guard let cwd = getcwd(nil, 0) else { return nil }
        defer { free(cwd) }
        return FilePath(platformString: cwd)
    }

    /// Whether this process may create and remove entries in the folder `path` (`access(W_OK | X_OK)`).
    public static func canWriteInto(_ path: FilePath) -> Bool { accessible(path, W_OK | X_OK) }

    /// Whether this process may run the program at `path` (`access(X_OK)`).
    public static func canExecute(_ path: FilePath) -> Bool { accessible(path, X_OK) }

    /// Whether this process may read `path` (`access(R_OK)`).
    public static func canRead(_ path: FilePath) -> Bool { accessible(path, R_OK) }

    private static func accessible(_ path: FilePath, _ mode: Int32) -> Bool {
        path.withPlatformString { access($0, mode) == 0 }
    }

    /// The real user id of this process.
    public static var userID: UInt32 { getuid() }

    /// The process id, for temporary names and logs.
    public static var processID: Int32 { getpid() }

    /// Online CPU cores (at least 1).
    public static var cores: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Sleeps for `seconds` (nanosleep, resumed where a signal interrupted it).
    public static func sleep(seconds: Double) {
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - seconds.rounded(.down)) * 1e9))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && Errno.current == .interrupted { request = remaining }
    }

    /// Seconds on the monotonic clock, for deadlines.
    public static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// CPU seconds (user and system) the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`): the core time of
    /// the work between two readings, however many other threads shared the core meanwhile.
    public static func threadCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// What `lockFolder` found.
    public enum FolderLock {
        /// Locked by this call: the lock lasts until the descriptor is closed.
        case locked(FileDescriptor)
        /// Another open description holds it (another process, or another lock of this one).
        case held
        /// Not a folder that can be opened, or a file system without flock: nobody can hold it either.
        case unavailable
    }

    /// An exclusive flock on the folder at `path`, without waiting. Staging folders are held so by the job working
    /// in them (`StagedFolder`), and recovery takes the same lock before it removes one.
    public static func lockFolder(_ path: FilePath) -> FolderLock {
        guard let fd = try? FileDescriptor.openFile(path, .readOnly, options: [.directory, .noFollow]) else {
            return .unavailable
        }
        let locked: Bool
        do throws(SystemError) {
            locked = try fd.lock(exclusive: true, wait: false, path: path)
        } catch {
            try? fd.close()
            return .unavailable
        }
        if locked { return .locked(fd) }
        try? fd.close()
        return .held
    }

    /// This process's peak resident set since it started its program (VmHWM of /proc/self/status), nil where it
    /// cannot be read. Unlike the `ru_maxrss` a parent gets from wait4, it does not count the pages of the process
    /// that spawned it: posix_spawn's child shares its parent's memory until exec, and exec records that peak.
    public static func peakResidentBytes() -> Int? {
        guard let bytes = try? readFile(FilePath("/proc/self/status"), limit: 1 << 16) else { return nil }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("VmHWM:") {
            // "VmHWM:\t   84016 kB"
            let fields = line.dropFirst("VmHWM:".count).split(whereSeparator: { $0 == " " || $0 == "\t" })
            return fields.first.flatMap { Int($0) }.map { $0 * 1024 }
        }
        return nil
    }

    /// Ends the process at once with `status` (no clean-up beyond the C library's).
    public static func exit(status: Int32) -> Never { Glibc.exit(status) }

    /// A line on standard error, for what must be seen even when the log goes to a file.
    public static func printError(_ text: String) {
        let line = Array((text + "\n").utf8)
        line.withUnsafeBytes { _ = try? FileDescriptor.standardError.writeAll($0) }
    }

    // MARK: Helpers

    private static func tooLarge(_ path: FilePath, _ size: String, limit: Int) -> SystemError {
        SystemError("read", path: path, errno: .fileTooLarge, refusal: "\(size), more than the \(limit) allowed")
    }

    /// Reads in 64 KiB steps until the end of the file, refusing more than `limit` bytes.
    private static func readToEnd(_ descriptor: FileDescriptor, path: FilePath, limit: Int) throws(SystemError)
        -> [UInt8]
    {
        var bytes: [UInt8] = []
        while true {
            let count = bytes.count
            bytes.append(contentsOf: repeatElement(0, count: 1 << 16))
            let n = try bytes.withUnsafeMutableBytes { buffer in
                Result { () throws(SystemError) in
                    try descriptor.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[count...]), at: count,
                                        path: path)
                }
            }.get()
            bytes.removeLast((1 << 16) - n)
            if n == 0 { return bytes }
            if bytes.count > limit { throw tooLarge(path, "holds at least \(bytes.count) bytes", limit: limit) }
        }
    }

    private static func renameat2(_ from: FilePath, _ to: FilePath, flags: UInt32) -> Errno? {
        while true {
            let result = from.withPlatformString { source in
                to.withPlatformString { target in quantd_renameat2(AT_FDCWD, source, AT_FDCWD, target, flags) }
            }
            if result == 0 { return nil }
            let code = Errno.current
            if code != .interrupted { return code }
        }
    }

    private static func posix(_ from: FilePath, _ to: FilePath,
                              _ call: (UnsafePointer<CChar>, UnsafePointer<CChar>) -> Int32) -> Errno? {
        let result = from.withPlatformString { source in to.withPlatformString { target in call(source, target) } }
        return result == 0 ? nil : .current
    }
}

extension Errno {
    /// The calling thread's errno, just after a C call failed.
    static var current: Errno { Errno(rawValue: Glibc.errno) }
}
