internal import QuantSystem
internal import SystemPackage

/// An open safetensors file: header parsed and validated against the real file size on open.
/// Owns its file descriptor (closed in deinit). Reads are pread (thread-safe, no shared cursor).
public final class SafeTensorsFile: Sendable {
    public let path: String
    public let header: Header
    public let fileSize: Int
    private let descriptor: FileDescriptor

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
            try? descriptor.close()
            throw error
        }
        self.path = path
        self.descriptor = descriptor
    }

    deinit {
        try? descriptor.close()
    }

    /// The open descriptor's number, for a second view of the same file (`UncachedReads` opens
    /// /proc/self/fd/N); valid while this object lives, never to be closed or read from by the caller.
    public var descriptorNumber: CInt { descriptor.rawValue }

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

    private static func openRegularFile(_ path: String) throws(SafeTensorsError) -> FileDescriptor {
        do {
            return try FileDescriptor.openFile(FilePath(path), .readOnly, options: [.noFollow, .nonBlocking])
        } catch {
            let code = error.errno
            switch code {
            case .noSuchFileOrDirectory:
                throw SafeTensorsError(.notFound, file: path, "no such file", errno: code.rawValue)
            case .tooManySymbolicLinkLevels:
                throw SafeTensorsError(.notRegularFile, file: path, "is a symbolic link, which is never followed",
                                       errno: code.rawValue)
            default:
                throw SafeTensorsError(.io, file: path, "open failed: \(describe(code))", errno: code.rawValue)
            }
        }
    }

    private static func size(of descriptor: FileDescriptor, path: String) throws(SafeTensorsError) -> Int {
        let status: Stat
        do {
            status = try descriptor.status(path: FilePath(path))
        } catch {
            throw SafeTensorsError(.io, file: path, "fstat failed: \(describe(error.errno))", errno: error.errno.rawValue)
        }
        guard status.type == .regular else {
            let what = switch status.type {
            case .fifo: "a FIFO"
            case .directory: "a folder"
            case .characterSpecial: "a character device"
            case .blockSpecial: "a block device"
            case .socket: "a socket"
            default: "not a regular file"
            }
            throw SafeTensorsError(.notRegularFile, file: path, "is \(what), not a regular file")
        }
        return Int(status.size)
    }

    /// Fills `buffer` from `offset` with pread, over short reads; an early end of file is an error.
    private static func readFully(_ descriptor: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer,
                                  at offset: Int, path: String) throws(SafeTensorsError) {
        var done = 0
        while done < buffer.count {
            let count: Int
            do {
                count = try descriptor.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]),
                                            at: offset + done, path: nil)
            } catch {
                throw SafeTensorsError(.io, file: path, "pread of \(buffer.count - done) bytes at offset "
                                           + "\(offset + done) failed: \(describe(error.errno))",
                                       errno: error.errno.rawValue)
            }
            if count == 0 {
                throw SafeTensorsError(.io, file: path, "file ended at offset \(offset + done) while reading "
                                           + "\(buffer.count) bytes at offset \(offset) (did it shrink?)")
            }
            done += count
        }
    }

    private static func describe(_ code: Errno) -> String {
        "\(code.description) (errno \(code.rawValue))"
    }
}
