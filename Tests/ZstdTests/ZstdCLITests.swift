import Foundation
import Testing
import Zstd

private let zstdPath = "/usr/bin/zstd"
private let haveZstd = FileManager.default.isExecutableFile(atPath: zstdPath)

/// Runs the `zstd` CLI and returns its exit status and standard output.
private func runZstd(_ arguments: [String]) throws -> (status: Int32, output: Data) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: zstdPath)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, output)
}

/// A fresh folder under the temporary directory, removed when `body` returns.
private func withTemporaryFolder<R>(_ body: (URL) throws -> R) throws -> R {
    let folder = FileManager.default.temporaryDirectory
        .appendingPathComponent("zstd-tests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    return try body(folder)
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
        try withTemporaryFolder { folder in
            let file = folder.appendingPathComponent("model.safetensors.zst")
            try Data(stream).write(to: file)

            let decoded = try runZstd(["-q", "-d", "-c", file.path])
            #expect(decoded.status == 0)
            #expect([UInt8](decoded.output) == content)

            #expect(try runZstd(["-q", "-t", file.path]).status == 0)

            let listing = try runZstd(["-lv", file.path])
            #expect(listing.status == 0)
            let text = String(decoding: listing.output, as: UTF8.self)
            #expect(text.contains("# Zstandard Frames: 12"))
            #expect(text.contains("Check: XXH64"))
            #expect(text.contains("(\(content.count) B)"), "decompressed size known from the frame headers")
            #expect(text.contains("(\(stream.count) B)"))
        }
    }

    @Test func cliNoticesAFlippedChecksum() throws {
        var stream = try frame(of: gaussianInt8(50_000, seed: 1))
        stream[stream.count - 1] ^= 0x80
        try withTemporaryFolder { folder in
            let file = folder.appendingPathComponent("bad.zst")
            try Data(stream).write(to: file)
            #expect(try runZstd(["-q", "-t", file.path]).status != 0)
        }
    }

    @Test func decoderReadsFramesWrittenByTheCLI() throws {
        let first = gaussianInt8(150_000, seed: 2)
        let second = randomBytes(3000, seed: 3)
        try withTemporaryFolder { folder in
            var stream: [UInt8] = []
            var ends: [Int] = []
            for (index, source) in [first, second].enumerated() {
                let input = folder.appendingPathComponent("part\(index)")
                try Data(source).write(to: input)
                let compressed = try runZstd(["-q", "-c", "--check", input.path])
                #expect(compressed.status == 0)
                stream += compressed.output
                ends.append(stream.count)
            }
            let decoded = try decodeStream(stream, pieces: [1000])
            #expect(decoded.content == first + second)
            #expect(decoded.ends == [FrameEnd(compressedEnd: ends[0], rawSize: first.count),
                                     FrameEnd(compressedEnd: ends[1], rawSize: second.count)])

            let unchecked = try runZstd(["-q", "-c", "--no-check", folder.appendingPathComponent("part1").path])
            let error = #expect(throws: ZstdError.self) { _ = try decodeStream([UInt8](unchecked.output)) }
            #expect(error?.code == Code.frameParameterUnsupported)
        }
    }
}
