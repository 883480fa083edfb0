import Testing
import TestSupport
import Zstd

/// A stream of many frames with its expected content and frame ends.
private struct Stream {
    var bytes: [UInt8] = []
    var content: [UInt8] = []
    var ends: [FrameEnd] = []

    init(frameCount: Int, seed: UInt64) throws {
        var compressor = try ZstdCompressor()
        var generator = SeededRandom(seed: seed)
        for index in 0..<frameCount {
            // Empty frames, tiny ones, and ones larger than a block (128 KiB) and than the decoder's buffer.
            let count = [0, 1, Int.random(in: 2..<3000, using: &generator), 200_000][index % 4]
            let source = gaussianInt8(count, seed: seed &+ UInt64(index))
            try compress(source, with: &compressor, into: &bytes)
            content += source
            ends.append(FrameEnd(compressedEnd: bytes.count, rawSize: count))
        }
    }
}

private struct ClosureFailure: Error, Equatable {
    var tag: String
}

@Suite struct ZstdStreamDecoderTests {
    @Test func manyFramesDecodeWithExactBoundariesWhateverTheChunking() throws {
        let stream = try Stream(frameCount: 40, seed: 1)
        var generator = SeededRandom(seed: 9)
        let chunkings: [[Int]] = [
            [],
            [4096],
            [7, 1, 13, 65_536, 3],
            (0..<50).map { _ in Int.random(in: 1...20_000, using: &generator) },
        ]
        for pieces in chunkings {
            let decoded = try DecodedStream(stream.bytes, pieces: pieces)
            #expect(decoded.content == stream.content)
            #expect(decoded.ends == stream.ends)
        }
    }

    @Test func oneByteAtATimeGivesTheSameOutput() throws {
        let stream = try Stream(frameCount: 9, seed: 2)
        let whole = try DecodedStream(stream.bytes)
        let byByte = try DecodedStream(stream.bytes, pieces: [1])
        #expect(byByte.content == whole.content)
        #expect(byByte.ends == whole.ends)
        #expect(whole.content == stream.content)
        #expect(whole.ends == stream.ends)
    }

    @Test func corruptedBytesAreDetected() throws {
        for source in [gaussianInt8(300_000, seed: 4), randomBytes(50_000, seed: 4)] {
            let good = try frame(of: source)
            var generator = SeededRandom(seed: 77)
            let positions = [0, 4, 5, 6, good.count / 2, good.count - 5]
                + (0..<60).map { _ in Int.random(in: 0..<good.count, using: &generator) }
            for position in positions {
                var bad = good
                bad[position] ^= 0xFF
                #expect(throws: ZstdError.self, "stream, byte \(position)") { _ = try DecodedStream(bad) }
                #expect(throws: ZstdError.self, "one-shot, byte \(position)") {
                    _ = try bad.withUnsafeBytes { try ZstdFrame.decompress($0, limit: source.count) }
                }
            }
        }
    }

    @Test func flippedChecksumIsAChecksumError() throws {
        let stream = try Stream(frameCount: 3, seed: 5)
        var bad = stream.bytes
        // The last 4 bytes of the second frame are its checksum.
        bad[stream.ends[1].compressedEnd - 2] ^= 0x01
        var decoded = DecodedStream()
        var decoder = try ZstdStreamDecoder()
        let error = #expect(throws: ZstdError.self) {
            try bad.withUnsafeBytes {
                try decoder.feed(
                    $0, output: { decoded.content += $0 },
                    frameEnded: { decoded.ends.append(FrameEnd(compressedEnd: $0, rawSize: $1)) }
                )
            }
        }
        #expect(error?.code == Code.checksumWrong)
        #expect(decoded.ends == [stream.ends[0]], "the first frame still ends cleanly")
        #expect(throws: ZstdError.self, "a failed decoder stays failed") { try decoder.finish() }

        let secondFrame = Array(bad[stream.ends[0].compressedEnd..<stream.ends[1].compressedEnd])
        let oneShot = #expect(throws: ZstdError.self) {
            _ = try secondFrame.withUnsafeBytes { try ZstdFrame.decompress($0, limit: 1 << 20) }
        }
        #expect(oneShot?.code == Code.checksumWrong)
    }

    @Test func truncatedStreamFailsAtFinish() throws {
        let stream = try Stream(frameCount: 4, seed: 6)
        let lastStart = stream.ends[2].compressedEnd
        let cuts = [1, 4, 5, 9, lastStart + 1, lastStart + 6, (lastStart + stream.bytes.count) / 2,
                    stream.bytes.count - 4, stream.bytes.count - 1]
        for cut in cuts {
            let error = #expect(throws: ZstdError.self, "cut at \(cut)") {
                _ = try DecodedStream(Array(stream.bytes.prefix(cut)), pieces: [3000])
            }
            #expect(error?.code == Code.srcSizeWrong)
        }
        // Cutting exactly at a frame boundary leaves a shorter but complete stream.
        let shorter = try DecodedStream(Array(stream.bytes.prefix(lastStart)))
        #expect(shorter.ends == Array(stream.ends.prefix(3)))
        #expect(try DecodedStream([]).ends.isEmpty)
    }

    @Test func frameWithoutChecksumIsRefusedUnlessAllowed() throws {
        let source = gaussianInt8(10_000, seed: 8)
        let bare = try frame(of: source, checksum: false)
        let stream = try frame(of: [1, 2, 3]) + bare
        var delivered = 0
        var decoder = try ZstdStreamDecoder()
        let error = #expect(throws: ZstdError.self) {
            try stream.withUnsafeBytes {
                try decoder.feed($0, output: { delivered += $0.count }, frameEnded: { _, _ in })
            }
        }
        #expect(error?.code == Code.frameParameterUnsupported)
        #expect(delivered == 3, "nothing of the refused frame reaches the output")

        let allowed = try DecodedStream(stream, pieces: [2], requireChecksum: false)
        #expect(allowed.content == [1, 2, 3] + source)
        #expect(allowed.ends.map(\.compressedEnd) == [stream.count - bare.count, stream.count])

        let oneShot = #expect(throws: ZstdError.self) {
            _ = try bare.withUnsafeBytes { try ZstdFrame.decompress($0, limit: 10_000) }
        }
        #expect(oneShot?.code == Code.frameParameterUnsupported)
        let decoded = try bare.withUnsafeBytes {
            try ZstdFrame.decompress($0, limit: 10_000, requireChecksum: false)
        }
        #expect(decoded == source)
    }

    @Test func closureErrorsPassThroughUnchanged() throws {
        let stream = try Stream(frameCount: 3, seed: 10)
        for failing in ["output", "frameEnded"] {
            var decoder = try ZstdStreamDecoder()
            let error = #expect(throws: ClosureFailure.self) {
                try stream.bytes.withUnsafeBytes {
                    try decoder.feed(
                        $0,
                        output: { _ in if failing == "output" { throw ClosureFailure(tag: failing) } },
                        frameEnded: { _, _ in if failing == "frameEnded" { throw ClosureFailure(tag: failing) } }
                    )
                }
            }
            #expect(error == ClosureFailure(tag: failing))
            let later = #expect(throws: ZstdError.self) {
                try [UInt8]().withUnsafeBytes { try decoder.feed($0, output: { _ in }, frameEnded: { _, _ in }) }
            }
            #expect(later?.code == Code.stageWrong)
        }
    }

    @Test func bytesThatAreNotZstdAreRefused() throws {
        let error = #expect(throws: ZstdError.self) { _ = try DecodedStream(Array("not zstd at all".utf8)) }
        #expect(error?.code == Code.prefixUnknown)
        // Garbage after a good frame fails too, after the good frame's end was reported.
        var ends: [FrameEnd] = []
        var decoder = try ZstdStreamDecoder()
        let good = try frame(of: [9, 9, 9])
        #expect(throws: ZstdError.self) {
            try (good + [0, 1, 2, 3, 4, 5]).withUnsafeBytes {
                try decoder.feed(
                    $0, output: { _ in }, frameEnded: { ends.append(FrameEnd(compressedEnd: $0, rawSize: $1)) }
                )
            }
        }
        #expect(ends == [FrameEnd(compressedEnd: good.count, rawSize: 3)])
    }

    @Test func skippableFramesAreReportedAsEmptyFrames() throws {
        let first = try frame(of: [1, 2])
        let second = try frame(of: [3])
        // Magic 0x184D2A50 and a 4-byte content length, little-endian, then the content.
        let skippable: [UInt8] = [0x50, 0x2A, 0x4D, 0x18, 5, 0, 0, 0, 10, 20, 30, 40, 50]
        let emptySkippable: [UInt8] = [0x5E, 0x2A, 0x4D, 0x18, 0, 0, 0, 0]
        let stream = first + skippable + second + emptySkippable
        for pieces in [[], [1]] {
            let decoded = try DecodedStream(stream, pieces: pieces)
            #expect(decoded.content == [1, 2, 3])
            let ends = [first.count, first.count + 13, first.count + 13 + second.count, stream.count]
            #expect(decoded.ends.map(\.compressedEnd) == ends)
            #expect(decoded.ends.map(\.rawSize) == [2, 0, 1, 0])
        }
    }
}
