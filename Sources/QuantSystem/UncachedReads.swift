internal import CLinux
internal import Glibc
import SystemPackage

/// Reads of one open file that go around the page cache for the parts of it that are not in the cache.
///
/// A cold read through the page cache costs the CPU more than the copy a hot one does: pages are allocated,
/// put on the LRU lists and filled by read-ahead, then copied (measured here: 1.45 s of system time to `cat` a
/// cold 2.3 GB file, 0.05 s for 541 MB read with `dd iflag=direct`). On a box whose cores are all busy with
/// the work, that time adds to the job. O_DIRECT reads go from the disk into the caller's buffer. They are
/// worth it only where the pages are not cached already, since they always go to the disk: `isCached` tells
/// (mincore(2) over a mapping of the file that is never touched).
///
/// The second descriptor is opened through /proc/self/fd, so it is the very file the first one holds even
/// if its path has been replaced since.
public final class UncachedReads: @unchecked Sendable {
    // @unchecked: the descriptor and the mapping are immutable after init; pread and mincore are thread-safe.
    /// O_DIRECT wants offsets, lengths and buffer addresses aligned to the logical block size: a page covers
    /// every block size in use.
    public static let alignment = 4096

    private let direct: FileDescriptor
    private let map: UnsafeMutableRawPointer
    private let size: Int
    private let path: FilePath
    private let page: Int

    /// A second view of the file open on `descriptor` (`size` bytes), or nil where the file's filesystem
    /// refuses O_DIRECT (tmpfs before Linux 6.6, FUSE) or the file cannot be mapped.
    public init?(descriptor: CInt, size: Int, path: String) {
        guard size > 0 else { return nil }
        let fd = Glibc.open("/proc/self/fd/\(descriptor)", O_RDONLY | O_CLOEXEC | quantd_o_direct)
        guard fd >= 0 else { return nil }
        guard let map = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), map != MAP_FAILED else {
            Glibc.close(fd)
            return nil
        }
        self.direct = FileDescriptor(rawValue: fd)
        self.map = map
        self.size = size
        self.path = FilePath(path)
        self.page = Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    deinit {
        munmap(map, size)
        try? direct.close()
    }

    /// Whether every page of `range` (offsets in the file) is in the page cache now; true for an empty range,
    /// false if the kernel cannot tell.
    public func isCached(_ range: Range<Int>) -> Bool {
        let start = range.lowerBound / page * page
        let end = min(range.upperBound, size)
        guard end > start else { return true }
        let pages = (end - start + page - 1) / page
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: pages) { residency in
            guard mincore(map + start, end - start, residency.baseAddress) == 0 else { return false }
            return residency.allSatisfy { $0 & 1 == 1 }
        }
    }

    /// Bytes of buffer that `read` needs for `range`: the range widened to whole blocks.
    public static func span(_ range: Range<Int>) -> Int {
        let start = range.lowerBound / alignment * alignment
        let end = (range.upperBound + alignment - 1) / alignment * alignment
        return end - start
    }

    /// Reads `range` (offsets in the file, inside it) into `buffer` with O_DIRECT and returns where in `buffer`
    /// its first byte landed. `buffer` starts on an `alignment` boundary and holds `span(range)` bytes. The read
    /// is widened to whole blocks: past the end of the file it comes back short, which is fine if it covers
    /// `range`. An end of the file before the end of `range` is an error, as with `readFully`.
    public func read(_ range: Range<Int>, into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int {
        let start = range.lowerBound / Self.alignment * Self.alignment
        let span = Self.span(range)
        precondition(buffer.count >= span && Int(bitPattern: buffer.baseAddress) % Self.alignment == 0,
                     "an O_DIRECT read needs an aligned buffer of \(span) bytes")
        let done = try direct.readFully(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<span]), at: start,
                                        path: path, allowShort: true)
        if done < range.upperBound - start {
            throw SystemError("read", path: path, errno: .ioError,
                              refusal: "file ended at offset \(start + done) while reading up to offset "
                                  + "\(range.upperBound) (did it shrink?)")
        }
        return range.lowerBound - start
    }
}
