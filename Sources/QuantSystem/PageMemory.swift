internal import Glibc

/// Large buffers mapped from the kernel (anonymous mmap) and handed back to it when freed (munmap).
///
/// glibc's malloc serves a block above its mmap threshold with a mapping of its own, but raises that threshold
/// to the size of each such block freed (up to 32 MiB): after the first buffers of a job are freed, later ones
/// of a few MiB come from the heap arenas, which keep what is freed. A job of several files, each with its own
/// pipeline of pooled buffers, then grew its peak RSS by every file's pool (measured here on a 4-shard 2.3 GB
/// folder, 2 threads: 114-163 MiB, against 81 MiB for the same bytes in one file or with
/// MALLOC_MMAP_THRESHOLD_=131072). A mapping is page-aligned, so it also suits O_DIRECT.
///
/// A mapping of 2 MiB or more asks for transparent huge pages (madvise(MADV_HUGEPAGE); its 2 MiB-aligned parts
/// are then backed by huge pages where THP is `madvise` or `always`, and the advice is ignored where it is
/// `never`). A 4 MiB unit buffer is then a few pages instead of 1024: an O_DIRECT read into it needs fewer block
/// requests (a virtio disk takes 254 segments a request), fewer pages pinned, and the kernels and the hash miss
/// the TLB less.
/// Measured on a cold 2.34 GB file, 2 threads: kblockd's CPU time 0.46-0.67 s to 0.09-0.18 s, the job's CPU 5.2 to
/// 4.55 s (README, Cold input).
public enum PageMemory {
    /// Blocks from this size up are mapped; smaller ones come from malloc.
    public static let threshold = 256 << 10
    static let hugePage = 2 << 20

    /// `bytes` of zeroed, page-aligned memory, or nil when the kernel refuses the mapping.
    public static func map(_ bytes: Int) -> UnsafeMutableRawPointer? {
        guard let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              p != MAP_FAILED else { return nil }
        if bytes >= hugePage { _ = madvise(p, bytes, MADV_HUGEPAGE) }
        return p
    }

    /// Gives back a block from `map` of the same size.
    public static func unmap(_ pointer: UnsafeMutableRawPointer, _ bytes: Int) {
        _ = munmap(pointer, bytes)
    }
}
