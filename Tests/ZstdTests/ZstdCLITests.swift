import Foundation
import Testing
import TestSupport
import Zstd

private let zstdPath = "/usr/bin/zstd"
private let haveZstd = FileManager.default.isExecutableFile(atPath: zstdPath)

/// Runs the `zstd` CLI; its standard output comes back as bytes.
private func runZstd(_ arguments: [String]) -> Shell.Result {
    Shell.run(zstdPath, arguments)
}

@Suite(.enabled(if: haveZstd, "needs the zstd CLI at /usr/bin/zstd"))
struct ZstdCLITests {
    @Test func cliDecodesConcatenatedFramesToTheConcatenatedContent() throws {
        var compressor = try ZstdCompressor()
        var stream: [UInt8] = []
        var content: [UInt8] = []
        for index in 0..<12 {
            let source = gaussianInt8([0, 5, 100_000, 140_000][index % 4], seed: UInt64(index))
            try compress(source, with: &compressor, into: &stream)
            content += source
        }
        let folder = TempDir("zstd-tests")
        defer { folder.remove() }
        let file = try folder.write(stream, as: "model.safetensors.zst")

        let decoded = runZstd(["-q", "-d", "-c", file])
        #expect(decoded.status == 0)
        #expect(decoded.output == content)

        #expect(runZstd(["-q", "-t", file]).status == 0)

        let listing = runZstd(["-lv", file])
        #expect(listing.status == 0)
        let text = listing.stdout
        #expect(text.contains("# Zstandard Frames: 12"))
        #expect(text.contains("Check: XXH64"))
        #expect(text.contains("(\(content.count) B)"), "decompressed size known from the frame headers")
        #expect(text.contains("(\(stream.count) B)"))
    }

    @Test func cliNoticesAFlippedChecksum() throws {
        var stream = try frame(of: gaussianInt8(50_000, seed: 1))
        stream[stream.count - 1] ^= 0x80
        let folder = TempDir("zstd-tests")
        defer { folder.remove() }
        #expect(runZstd(["-q", "-t", try folder.write(stream, as: "bad.zst")]).status != 0)
    }

    @Test func decoderReadsFramesWrittenByTheCLI() throws {
        let first = gaussianInt8(150_000, seed: 2)
        let second = randomBytes(3000, seed: 3)
        let folder = TempDir("zstd-tests")
        defer { folder.remove() }
        var stream: [UInt8] = []
        var ends: [Int] = []
        for (index, source) in [first, second].enumerated() {
            let compressed = runZstd(["-q", "-c", "--check", try folder.write(source, as: "part\(index)")])
            #expect(compressed.status == 0)
            stream += compressed.output
            ends.append(stream.count)
        }
        let decoded = try DecodedStream(stream, pieces: [1000])
        #expect(decoded.content == first + second)
        #expect(decoded.ends == [FrameEnd(compressedEnd: ends[0], rawSize: first.count),
                                 FrameEnd(compressedEnd: ends[1], rawSize: second.count)])

        let unchecked = runZstd(["-q", "-c", "--no-check", folder["part1"]])
        let error = #expect(throws: ZstdError.self) { _ = try DecodedStream(unchecked.output) }
        #expect(error?.code == Code.frameParameterUnsupported)
    }
}
