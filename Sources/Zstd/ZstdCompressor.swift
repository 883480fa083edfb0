internal import CZstd

/// Owns a `ZSTD_CCtx`; reused across frames (parameters set once). `~Copyable`, freed in `deinit`.
///
/// Every frame is complete and independent (no dictionary, no state carried from the previous frame), so
/// a reused compressor gives the same bytes as a fresh one and frames can be decoded alone or concatenated.
public struct ZstdCompressor: ~Copyable {
    private let context: OpaquePointer

    /// Sets `level` (libzstd's range, 0 meaning its default of 3; out-of-range levels are refused, not clamped)
    /// and whether each frame ends with a content checksum. Frames always record their content size.
    public init(level: Int = 3, checksum: Bool = true) throws(ZstdError) {
        guard (Int(ZSTD_minCLevel())...Int(ZSTD_maxCLevel())).contains(level) else {
            throw ZstdError(
                ZSTD_error_parameter_outOfBound,
                "compression level \(level) outside \(ZSTD_minCLevel())...\(ZSTD_maxCLevel())"
            )
        }
        guard let context = ZSTD_createCCtx() else {
            throw ZstdError(ZSTD_error_memory_allocation, "cannot allocate a compression context")
        }
        do {
            _ = try checked(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, Int32(level)))
            _ = try checked(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, checksum ? 1 : 0))
            _ = try checked(ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 1))
        } catch {
            ZSTD_freeCCtx(context)
            throw error
        }
        self.context = context
    }

    deinit {
        ZSTD_freeCCtx(context)
    }

    /// Compresses `source` as ONE complete, independent frame (content size recorded in the frame header,
    /// content checksum on unless the compressor was made without it) and appends it to `output`.
    ///
    /// `output` grows by `compressBound(source.count)` when its spare capacity is smaller (geometrically, so
    /// appending many frames stays linear); its capacity is kept, so a buffer emptied with
    /// `removeAll(keepingCapacity: true)` and reused does not reallocate. Returns the frame's compressed size.
    /// On error `output` is left as it was.
    public mutating func compressFrame(
        _ source: UnsafeRawBufferPointer, appendingTo output: inout [UInt8]
    ) throws(ZstdError) -> Int {
        let bound = Self.compressBound(source.count)
        let context = self.context
        var written = 0
        try output.append(addingCapacity: bound) { (span: inout OutputSpan<UInt8>) throws(ZstdError) in
            try span.withUnsafeMutableBufferPointer { (tail, initialized) throws(ZstdError) in
                // `tail` is the uninitialized spare capacity, at least `bound` bytes: ZSTD_compress2 cannot
                // run out of room, and a failure leaves `initialized` at 0.
                let result = try withBaseAddress(source) { (src) throws(ZstdError) -> Int in
                    try checked(ZSTD_compress2(context, tail.baseAddress, tail.count, src, source.count))
                }
                initialized = result
                written = result
            }
        }
        return written
    }

    /// The largest frame `compressFrame` can produce for `count` source bytes.
    public static func compressBound(_ count: Int) -> Int {
        precondition(count >= 0, "negative byte count")
        return Int(ZSTD_compressBound(count))
    }
}

/// A compressor owns its context alone and changes it only through `mutating` calls, so moving it to
/// another thread is safe, and exclusivity rules out two threads using one at once.
extension ZstdCompressor: @unchecked Sendable {}
