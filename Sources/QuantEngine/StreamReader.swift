import Crypto
import SafeTensors
import Zstd

/// Reads a `.zst` output as a user's tools would: decompresses its frames in order (checksums verified),
/// parses the safetensors header inside, and hands each tensor's bytes to the caller as they stream by.
/// Also hashes the compressed bytes and reports every frame boundary.
struct StreamReader {
    struct Events {
        /// The header inside, parsed and validated against the decompressed length when it is known.
        var header: (Header) throws -> Void = { _ in }
        /// A piece of a tensor's data; `offset` is relative to the start of that tensor.
        var data: (_ tensor: TensorInfo, _ offset: Int, _ bytes: UnsafeRawBufferPointer) throws -> Void = { _, _, _ in }
        /// A frame ended: compressed end offset in the file and the frame's decompressed size.
        var frame: (_ compressedEnd: Int, _ rawSize: Int) throws -> Void = { _, _ in }
    }

    struct Summary {
        var compressedSize: Int
        var rawSize: Int
        var sha256: String
        var header: Header?
    }

    /// Thrown by a handler to stop reading early (e.g. `inspect` wants only the header).
    struct Stop: Error {}

    static let chunk = 1 << 20

    /// - Parameter rawSize: the decompressed size, when a manifest says it (checked, and used to validate
    ///   the header's data length); nil when unknown.
    static func read(_ path: String, rawSize: Int?, limits: HeaderLimits = HeaderLimits(), events: Events)
        throws -> Summary
    {
        let reader = try ChunkReader(path, stage: "read", chunk: chunk)
        var decoder = try ZstdStreamDecoder()
        var parser = Parser(path: path, rawSize: rawSize, limits: limits, events: events)
        var hash = SHA256()
        var stopped = false
        do {
            while let piece = try reader.next() {
                hash.update(bufferPointer: piece)
                try decoder.feed(piece, requireChecksum: true,
                                 output: { try parser.consume($0) },
                                 frameEnded: { end, raw in try events.frame(end, raw) })
            }
            try decoder.finish()
        } catch is Stop {
            stopped = true
        }
        if !stopped { try parser.finish() }
        return Summary(compressedSize: reader.offset, rawSize: parser.position, sha256: hash.finalize().hex,
                       header: parser.header)
    }

    /// Splits the decompressed stream into prefix, header JSON and tensor data.
    private struct Parser {
        let path: String
        let rawSize: Int?
        let limits: HeaderLimits
        let events: Events
        var position = 0
        var pending: [UInt8] = []
        var headerLength: Int?
        var header: Header?
        var tensors: [TensorInfo] = []
        var current = 0

        init(path: String, rawSize: Int?, limits: HeaderLimits, events: Events) {
            self.path = path
            self.rawSize = rawSize
            self.limits = limits
            self.events = events
        }

        mutating func consume(_ bytes: UnsafeRawBufferPointer) throws {
            var rest = bytes
            while !rest.isEmpty {
                if header == nil {
                    let need = (headerLength.map { 8 + $0 } ?? 8) - pending.count
                    let take = min(need, rest.count)
                    pending.append(contentsOf: rest[rest.startIndex..<(rest.startIndex + take)])
                    rest = UnsafeRawBufferPointer(rebasing: rest[(rest.startIndex + take)...])
                    position += take
                    if pending.count == 8 && headerLength == nil {
                        headerLength = try pending.withUnsafeBytes {
                            try Header.headerLength(prefix: $0, fileSize: rawSize, file: path, limits: limits)
                        }
                    } else if let n = headerLength, pending.count == 8 + n {
                        let h = try pending.withUnsafeBytes {
                            try Header.parse(json: UnsafeRawBufferPointer(rebasing: $0[8...]),
                                             dataLength: rawSize.map { $0 - 8 - n }, file: path, limits: limits)
                        }
                        header = h
                        tensors = h.tensorsByOffset.filter { $0.byteCount > 0 }
                        pending = []
                        try events.header(h)
                    }
                    continue
                }
                let dataPos = position - 8 - headerLength!
                guard current < tensors.count else {
                    throw SafeTensorsError(.trailingBytes, file: path, "decompressed data runs past the last tensor")
                }
                let t = tensors[current]
                let within = dataPos - t.dataRange.lowerBound
                let take = min(t.dataRange.upperBound - dataPos, rest.count)
                try events.data(t, within, UnsafeRawBufferPointer(rebasing: rest[rest.startIndex..<(rest.startIndex + take)]))
                rest = UnsafeRawBufferPointer(rebasing: rest[(rest.startIndex + take)...])
                position += take
                if dataPos + take == t.dataRange.upperBound { current += 1 }
            }
        }

        func finish() throws {
            guard let header, current == tensors.count else {
                throw SafeTensorsError(.truncatedData, file: path, "decompressed stream ends early (at byte \(position))")
            }
            _ = header
        }
    }
}
