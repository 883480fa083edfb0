internal import CLinux
internal import Glibc
public import SystemPackage

/// swift-system's `FileDescriptor` with the calls quantd needs and swift-system lacks (fsync, O_DIRECT, flock), each throwing a `SystemError` that names the path. Reads and writes loop over short counts;
/// swift-system retries them on EINTR.
extension FileDescriptor {
    /// `open` with O_CLOEXEC always set.
    public static func openFile(_ path: FilePath, _ mode: AccessMode, options: OpenOptions = [],
                                permissions: FilePermissions? = nil) throws(SystemError) -> FileDescriptor {
        try system("open", path) {
            try FileDescriptor.open(path, mode, options: options.union(.closeOnExec), permissions: permissions)
        }
    }

    /// `fstat`.
    public func status(path: FilePath?) throws(SystemError) -> Stat {
        do {
            return try stat()
        } catch {
            throw SystemError("fstat", path: path, errno: error)
        }
    }

    /// One `pread` of up to `buffer.count` bytes at `offset`: the count read, 0 at the end of the file.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int, path: FilePath?)
        throws(SystemError) -> Int
    {
        try system("read \(buffer.count) bytes at offset \(offset)", path) {
            try read(fromAbsoluteOffset: Int64(offset), into: buffer)
        }
    }

    /// Fills `buffer` from `offset` with `pread`, over short reads. An early end of the file is an error
    /// (EIO, "ended at offset N") unless `allowShort`; returns the count read.
    @discardableResult
    public func readFully(into buffer: UnsafeMutableRawBufferPointer, at offset: Int, path: FilePath?,
                          allowShort: Bool = false) throws(SystemError) -> Int
    {
        var done = 0
        while done < buffer.count {
            let count = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]), at: offset + done,
                                 path: path)
            if count == 0 {
                if allowShort { break }
                throw SystemError("read", path: path, errno: .ioError,
                                  refusal: "file ended at offset \(offset + done) while reading \(buffer.count) "
                                      + "bytes at offset \(offset) (did it shrink?)")
            }
            done += count
        }
        return done
    }

    /// Writes all of `bytes` at the descriptor's position, over short writes.
    public func writeFully(_ bytes: UnsafeRawBufferPointer, path: FilePath?) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            let count = try system("write", path) {
                try write(UnsafeRawBufferPointer(rebasing: bytes[done...]))
            }
            // A write of 0 bytes for a non-empty buffer does not happen on a regular file; treat it as EIO.
            guard count > 0 else { throw SystemError("write", path: path, errno: .ioError) }
            done += count
        }
    }

    /// Writes all of `bytes` at `offset` (`pwrite`), over short writes.
    public func writeFully(_ bytes: UnsafeRawBufferPointer, at offset: Int, path: FilePath?) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            let count = try system("write at offset \(offset + done)", path) {
                try write(toAbsoluteOffset: Int64(offset + done), UnsafeRawBufferPointer(rebasing: bytes[done...]))
            }
            guard count > 0 else { throw SystemError("write", path: path, errno: .ioError) }
            done += count
        }
    }

    /// `ftruncate`.
    public func resize(to size: Int, path: FilePath?) throws(SystemError) {
        try system("ftruncate", path) { try resize(to: Int64(size)) }
    }

    /// Whether the descriptor is a terminal (`isatty`).
    public var isTerminal: Bool { isatty(rawValue) == 1 }

    /// `fsync`: after it returns, what was written is on disk (for a folder: its entries).
    public func sync(path: FilePath?) throws(SystemError) {
        _ = try retrying("fsync", path) { fsync(rawValue) }
    }

    /// Turns O_DIRECT on or off (`fcntl(F_SETFL)`); false when turning it on is refused (old tmpfs, FUSE).
    @discardableResult
    public func setDirect(_ on: Bool, path: FilePath?) throws(SystemError) -> Bool {
        let flags = try retrying("fcntl", path) { fcntl(rawValue, F_GETFL) }
        let wanted = on ? flags | quantd_o_direct : flags & ~quantd_o_direct
        if fcntl(rawValue, F_SETFL, wanted) == 0 { return true }
        if on { return false }
        throw SystemError("fcntl", path: path, errno: .current)
    }

    /// `flock`: an exclusive (or shared) lock on the whole file; without `wait`, false when another holds it.
    public func lock(exclusive: Bool = true, wait: Bool = false, path: FilePath?) throws(SystemError) -> Bool {
        let operation = (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB)
        while flock(rawValue, operation) != 0 {
            let code = Errno.current
            if code == .interrupted { continue }
            if code == .wouldBlock { return false }
            throw SystemError("flock", path: path, errno: code)
        }
        return true
    }
}
