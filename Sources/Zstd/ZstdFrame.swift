internal import CZstd

/// One-shot questions about single frames: what the header says, where the frame ends, and its content.
public enum ZstdFrame {
    /// The parts of a zstd frame header a reader of quantd output needs.
    public struct Header: Sendable, Hashable {
        /// The decompressed size, when the frame records it (quantd frames always do).
        public var contentSize: Int?
        /// Whether the frame ends with a content checksum (low 32 bits of XXH64).
        public var hasChecksum: Bool
        /// Bytes taken by the magic number and frame header, before the first block.
        public var headerSize: Int

        public init(contentSize: Int?, hasChecksum: Bool, headerSize: Int) {
            self.contentSize = contentSize
            self.hasChecksum = hasChecksum
            self.headerSize = headerSize
        }
    }

    /// Decodes the header of the zstd frame starting at `bytes[0]`. Throws when the bytes do not start a zstd
    /// frame, when a skippable frame starts there (it has no such header), or when the header is cut short.
    public static func header(of bytes: UnsafeRawBufferPointer) throws(ZstdError) -> Header {
        var raw = ZSTD_frameHeader()
        let wanted = try withBaseAddress(bytes) { (base) throws(ZstdError) -> Int in
            try checked(ZSTD_getFrameHeader(&raw, base, bytes.count))
        }
        guard wanted == 0 else {
            throw ZstdError(ZSTD_error_srcSize_wrong, "frame header needs \(wanted) bytes, got \(bytes.count)")
        }
        return try Header(raw)
    }

    /// Size of the complete frame starting at `bytes[0]` (a zstd or skippable frame); throws if `bytes` ends
    /// before the frame does or the frame is malformed.
    public static func compressedSize(of bytes: UnsafeRawBufferPointer) throws(ZstdError) -> Int {
        try withBaseAddress(bytes) { (base) throws(ZstdError) -> Int in
            try checked(ZSTD_findFrameCompressedSize(base, bytes.count))
        }
    }

    /// Decompresses one whole frame into a new array of its content size, verifying the content checksum.
    ///
    /// Refuses: trailing bytes after the frame, a frame that does not record its content size, a content size
    /// above `limit`, and, when `requireChecksum` is true, a frame without a checksum.
    public static func decompress(
        _ frame: UnsafeRawBufferPointer, limit: Int, requireChecksum: Bool = true
    ) throws(ZstdError) -> [UInt8] {
        let header = try header(of: frame)
        let frameSize = try compressedSize(of: frame)
        guard frameSize == frame.count else {
            throw ZstdError(
                ZSTD_error_srcSize_wrong, "buffer holds \(frame.count) bytes but the frame takes \(frameSize)"
            )
        }
        guard let contentSize = header.contentSize else {
            throw ZstdError(ZSTD_error_frameParameter_unsupported, "frame does not record its content size")
        }
        guard contentSize <= limit else {
            throw ZstdError(ZSTD_error_dstSize_tooSmall, "frame content size \(contentSize) exceeds limit \(limit)")
        }
        if requireChecksum && !header.hasChecksum {
            throw ZstdError(ZSTD_error_frameParameter_unsupported, "frame has no content checksum")
        }
        return try [UInt8](capacity: contentSize) { (span: inout OutputSpan<UInt8>) throws(ZstdError) in
            try span.withUnsafeMutableBufferPointer { (content, initialized) throws(ZstdError) in
                let decoded = try withBaseAddress(frame) { (src) throws(ZstdError) -> Int in
                    try withMutableBaseAddress(UnsafeMutableRawBufferPointer(content)) { (dst) throws(ZstdError) in
                        try checked(ZSTD_decompress(dst, contentSize, src, frame.count))
                    }
                }
                guard decoded == contentSize else {
                    throw ZstdError(
                        ZSTD_error_corruption_detected,
                        "frame decoded to \(decoded) bytes, header says \(contentSize)"
                    )
                }
                initialized = decoded
            }
        }
    }
}

extension ZstdFrame.Header {
    /// Converts libzstd's header of a zstd (not skippable) frame.
    init(_ raw: ZSTD_frameHeader) throws(ZstdError) {
        guard raw.frameType == ZSTD_frame else {
            throw ZstdError(ZSTD_error_frameParameter_unsupported, "skippable frame, not a zstd frame")
        }
        var contentSize: Int?
        if raw.frameContentSize != ZSTD_CONTENTSIZE_UNKNOWN {
            guard let size = Int(exactly: raw.frameContentSize) else {
                throw ZstdError(ZSTD_error_frameParameter_unsupported, "content size \(raw.frameContentSize) too large")
            }
            contentSize = size
        }
        self.init(contentSize: contentSize, hasChecksum: raw.checksumFlag != 0, headerSize: Int(raw.headerSize))
    }
}

/// libzstd's version string, for manifests.
public let zstdLibraryVersion: String = String(cString: ZSTD_versionString())
