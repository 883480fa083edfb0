internal import CZstd

/// Streaming decoder over a concatenation of frames; verifies each frame's checksum; reports frame boundaries.
///
/// Input may arrive in pieces of any size, cut anywhere. Each frame's header is gathered and checked before any
/// of its bytes reach libzstd, so a frame refused for lacking a checksum yields no output at all. Skippable frames
/// are passed over and reported as frames of raw size 0. After any error (its own or a closure's) the decoder
/// is spent: later calls throw.
public struct ZstdStreamDecoder: ~Copyable {
    private let context: OpaquePointer
    /// Decoded bytes land here, `ZSTD_DStreamOutSize()` bytes, allocated once.
    private let outBuffer: UnsafeMutableRawBufferPointer
    /// The header of the next frame, gathered until it is complete and checked.
    private let headerBuffer: UnsafeMutableRawBufferPointer
    private var headerCount = 0
    /// True from the moment a checked header is handed to libzstd until libzstd reports the frame's end.
    private var inFrame = false
    /// Compressed bytes handed to libzstd so far.
    private var position = 0
    private var frameRawSize = 0
    private var spent = false

    public init() throws(ZstdError) {
        guard let context = ZSTD_createDCtx() else {
            throw ZstdError(ZSTD_error_memory_allocation, "cannot allocate a decompression context")
        }
        self.context = context
        outBuffer = .allocate(byteCount: ZSTD_DStreamOutSize(), alignment: 16)
        headerBuffer = .allocate(byteCount: Int(ZSTD_FRAMEHEADERSIZE_MAX), alignment: 16)
    }

    deinit {
        ZSTD_freeDCtx(context)
        outBuffer.deallocate()
        headerBuffer.deallocate()
    }

    /// Feeds compressed bytes. `output` receives decompressed bytes in order (buffer valid only during the call);
    /// `frameEnded` is called at each frame end with the total compressed bytes consumed so far and the frame's
    /// raw size. Throws `ZstdError` on corrupt data, checksum mismatch, or a frame without a checksum when
    /// `requireChecksum` is true; errors thrown by the closures are rethrown as they are.
    public mutating func feed(
        _ input: UnsafeRawBufferPointer,
        requireChecksum: Bool = true,
        output: (UnsafeRawBufferPointer) throws -> Void,
        frameEnded: (_ compressedEnd: Int, _ rawSize: Int) throws -> Void
    ) throws {
        guard !spent else {
            throw ZstdError(ZSTD_error_stage_wrong, "decoder already failed; start a new one")
        }
        guard !input.isEmpty else {
            return
        }
        do {
            var offset = 0
            repeat {
                if inFrame {
                    let rest = UnsafeRawBufferPointer(rebasing: input[offset...])
                    offset += try decode(rest, output: output, frameEnded: frameEnded)
                } else if try gatherHeader(from: input, at: &offset, requireChecksum: requireChecksum) {
                    inFrame = true
                    let header = UnsafeRawBufferPointer(start: headerBuffer.baseAddress, count: headerCount)
                    let consumed = try decode(header, output: output, frameEnded: frameEnded)
                    guard consumed == headerCount else {
                        throw ZstdError(ZSTD_error_GENERIC, "libzstd left part of a frame header unread")
                    }
                    headerCount = 0
                }
            } while offset < input.count
        } catch {
            spent = true
            throw error
        }
    }

    /// Throws if the stream ended in the middle of a frame (truncated input), or if an earlier call failed.
    public func finish() throws(ZstdError) {
        guard !spent else {
            throw ZstdError(ZSTD_error_stage_wrong, "decoder failed earlier")
        }
        guard !inFrame && headerCount == 0 else {
            let cut = position + headerCount
            throw ZstdError(ZSTD_error_srcSize_wrong, "compressed stream truncated inside a frame at byte \(cut)")
        }
    }

    /// Moves bytes from `input` into the header buffer until the next frame's header is complete, then checks it.
    /// Returns false when `input` ran out first.
    private mutating func gatherHeader(
        from input: UnsafeRawBufferPointer, at offset: inout Int, requireChecksum: Bool
    ) throws(ZstdError) -> Bool {
        var raw = ZSTD_frameHeader()
        while true {
            let wanted = try checked(ZSTD_getFrameHeader(&raw, headerBuffer.baseAddress, headerCount))
            if wanted == 0 {
                break
            }
            guard wanted <= headerBuffer.count else {
                throw ZstdError(ZSTD_error_frameParameter_unsupported, "libzstd wants a \(wanted)-byte frame header")
            }
            let take = min(wanted - headerCount, input.count - offset)
            guard take > 0 else {
                return false
            }
            headerBuffer.baseAddress!.advanced(by: headerCount)
                .copyMemory(from: input.baseAddress!.advanced(by: offset), byteCount: take)
            headerCount += take
            offset += take
        }
        if requireChecksum && raw.frameType == ZSTD_frame && raw.checksumFlag == 0 {
            throw ZstdError(
                ZSTD_error_frameParameter_unsupported, "frame at byte \(position) has no content checksum"
            )
        }
        return true
    }

    /// Hands `input` to libzstd until it is used up or the current frame ends, passing decoded bytes to `output`.
    /// Returns the bytes consumed.
    private mutating func decode(
        _ input: UnsafeRawBufferPointer,
        output: (UnsafeRawBufferPointer) throws -> Void,
        frameEnded: (_ compressedEnd: Int, _ rawSize: Int) throws -> Void
    ) throws -> Int {
        var source = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        while true {
            var target = ZSTD_outBuffer(dst: outBuffer.baseAddress, size: outBuffer.count, pos: 0)
            let consumedBefore = source.pos
            let hint = try checked(ZSTD_decompressStream(context, &target, &source))
            position += source.pos - consumedBefore
            if target.pos > 0 {
                frameRawSize += target.pos
                try output(UnsafeRawBufferPointer(start: outBuffer.baseAddress, count: target.pos))
            }
            if hint == 0 {
                inFrame = false
                let rawSize = frameRawSize
                frameRawSize = 0
                try frameEnded(position, rawSize)
                return source.pos
            }
            if target.pos < target.size && source.pos == source.size {
                return source.pos
            }
            guard target.pos > 0 || source.pos > consumedBefore else {
                throw ZstdError(ZSTD_error_noForwardProgress_inputEmpty, "libzstd made no progress")
            }
        }
    }
}

/// A decoder owns its context and buffers alone and changes them only through `mutating` calls, so moving it to
/// another thread is safe, and exclusivity rules out two threads feeding one at once.
extension ZstdStreamDecoder: @unchecked Sendable {}
