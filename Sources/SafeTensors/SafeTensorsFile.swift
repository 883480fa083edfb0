#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// An open safetensors file: header parsed and validated against the real file size on open.
/// Owns its file descriptor (closed in deinit). Reads are pread (thread-safe, no shared cursor).
public final class SafeTensorsFile: Sendable {
    public let path: String
    public let header: Header
    public let fileSize: Int
    private let descriptor: CInt

    /// Opens with O_NOFOLLOW|O_CLOEXEC and refuses anything that is not a regular file (fstat), since the daemon
    /// must never follow symlinks or open FIFOs. ENOENT -> .notFound.
    ///
    /// O_NOFOLLOW guards the last path component only: folders on the way are the caller's to trust. The open
    /// is non-blocking so that a FIFO is refused at once instead of waiting for a writer.
    public init(path: String, limits: HeaderLimits = HeaderLimits()) throws(SafeTensorsError) {
        let descriptor = try Self.openRegularFile(path)
        do throws(SafeTensorsError) {
            let fileSize = try Self.size(of: descriptor, path: path)
            // Reads what there is of the prefix; headerLength refuses a file shorter than 8 bytes.
            let prefix = UnsafeMutableRawBufferPointer.allocate(byteCount: min(8, fileSize), alignment: 8)
            defer { prefix.deallocate() }
            try Self.readFully(descriptor, into: prefix, at: 0, path: path)
            let length = try Header.headerLength(prefix: UnsafeRawBufferPointer(prefix), fileSize: fileSize,
                                                 file: path, limits: limits)
            // Bounded by limits.maxHeaderBytes and by the file's size, both checked above.
            let json = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 8)
            defer { json.deallocate() }
            try Self.readFully(descriptor, into: json, at: 8, path: path)
            header = try Header.parse(json: UnsafeRawBufferPointer(json), dataLength: fileSize - 8 - length,
                                      file: path, limits: limits)
            self.fileSize = fileSize
        } catch {
            close(descriptor)
            throw error
        }
        self.path = path
        self.descriptor = descriptor
    }

    deinit {
        close(descriptor)
    }

    /// Reads exactly `range` of the data buffer into `buffer` (count must equal range.count); loops over short
    /// reads and EINTR; EOF early -> .io error naming the file.
    public func read(dataRange range: Range<Int>, into buffer: UnsafeMutableRawBufferPointer) throws(SafeTensorsError) {
        precondition(buffer.count == range.count, "buffer holds \(buffer.count) bytes for a range of \(range.count)")
        guard range.lowerBound >= 0, range.upperBound <= header.dataLength else {
            throw SafeTensorsError(.outOfBounds, file: path, "data range \(range) lies outside the data buffer "
                                       + "of \(header.dataLength) bytes")
        }
        try Self.readFully(descriptor, into: buffer, at: header.dataStart + range.lowerBound, path: path)
    }

    /// The raw bytes of the file from `offset` (absolute), same rules.
    public func read(absoluteOffset offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(SafeTensorsError) {
        guard offset >= 0, offset <= fileSize - buffer.count else {
            throw SafeTensorsError(.outOfBounds, file: path, "\(buffer.count) bytes at offset \(offset) lie outside "
                                       + "the \(fileSize)-byte file")
        }
        try Self.readFully(descriptor, into: buffer, at: offset, path: path)
    }

    // MARK: System calls

    private static func openRegularFile(_ path: String) throws(SafeTensorsError) -> CInt {
        var descriptor: CInt
        repeat {
            descriptor = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        } while descriptor < 0 && errno == EINTR
        guard descriptor >= 0 else {
            let code = errno
            switch code {
            case ENOENT:
                throw SafeTensorsError(.notFound, file: path, "no such file", errno: code)
            case ELOOP:
                throw SafeTensorsError(.notRegularFile, file: path, "is a symbolic link, which is never followed",
                                       errno: code)
            default:
                throw SafeTensorsError(.io, file: path, "open failed: \(describe(code))", errno: code)
            }
        }
        return descriptor
    }

    private static func size(of descriptor: CInt, path: String) throws(SafeTensorsError) -> Int {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            let code = errno
            throw SafeTensorsError(.io, file: path, "fstat failed: \(describe(code))", errno: code)
        }
        let type = info.st_mode & S_IFMT
        guard type == S_IFREG else {
            let what = switch type {
            case S_IFIFO: "a FIFO"
            case S_IFDIR: "a folder"
            case S_IFCHR: "a character device"
            case S_IFBLK: "a block device"
            case S_IFSOCK: "a socket"
            default: "not a regular file"
            }
            throw SafeTensorsError(.notRegularFile, file: path, "is \(what), not a regular file")
        }
        return Int(info.st_size)
    }

    /// Fills `buffer` from `offset` with pread, over short reads and EINTR; an early end of file is an error.
    private static func readFully(_ descriptor: CInt, into buffer: UnsafeMutableRawBufferPointer, at offset: Int,
                                  path: String) throws(SafeTensorsError) {
        guard let base = buffer.baseAddress else { return }
        var done = 0
        while done < buffer.count {
            let count = pread(descriptor, base + done, buffer.count - done, off_t(offset + done))
            if count < 0 {
                let code = errno
                if code == EINTR {
                    continue
                }
                throw SafeTensorsError(.io, file: path, "pread of \(buffer.count - done) bytes at offset "
                                           + "\(offset + done) failed: \(describe(code))", errno: code)
            }
            if count == 0 {
                throw SafeTensorsError(.io, file: path, "file ended at offset \(offset + done) while reading "
                                           + "\(buffer.count) bytes at offset \(offset) (did it shrink?)")
            }
            done += count
        }
    }

    private static func describe(_ code: CInt) -> String {
        guard let text = strerror(code) else { return "errno \(code)" }
        return "\(String(cString: text)) (errno \(code))"
    }
}
