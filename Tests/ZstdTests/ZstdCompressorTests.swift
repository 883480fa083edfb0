import Testing
import TestSupport
import Zstd

@Suite struct ZstdCompressorTests {
    static let sizes = [0, 1, 100, 4096, 131_072 + 7, 1 << 20]

    @Test(arguments: sizes)
    func randomAndGaussianBuffersRoundTrip(count: Int) throws {
        for source in [randomBytes(count, seed: UInt64(count)), gaussianInt8(count, seed: UInt64(count) + 1)] {
            let compressed = try frame(of: source)
            let viaFrame = try compressed.withUnsafeBytes { try ZstdFrame.decompress($0, limit: count) }
            #expect(viaFrame == source)
            let viaStream = try DecodedStream(compressed)
            #expect(viaStream.content == source)
            #expect(viaStream.ends == [FrameEnd(compressedEnd: compressed.count, rawSize: count)])
        }
    }

    @Test(arguments: sizes)
    func headerRecordsContentSizeAndChecksum(count: Int) throws {
        let source = gaussianInt8(count, seed: 7)
        let withChecksum = try frame(of: source)
        let withoutChecksum = try frame(of: source, checksum: false)
        let header = try withChecksum.withUnsafeBytes { try ZstdFrame.header(of: $0) }
        #expect(header.contentSize == count)
        #expect(header.hasChecksum)
        #expect((6...18).contains(header.headerSize))
        let bare = try withoutChecksum.withUnsafeBytes { try ZstdFrame.header(of: $0) }
        #expect(bare == ZstdFrame.Header(contentSize: count, hasChecksum: false, headerSize: header.headerSize))
        // The checksum is the only difference: 4 trailing bytes.
        #expect(withChecksum.count == withoutChecksum.count + 4)
        #expect(try withChecksum.withUnsafeBytes { try ZstdFrame.compressedSize(of: $0) } == withChecksum.count)
    }

    @Test func compressBoundFollowsTheLibzstdFormula() throws {
        for count in [0, 1, 100, 131_071, 131_072, 131_073, 1 << 20, 4 << 20] {
            let margin = count < 131_072 ? (131_072 - count) >> 11 : 0
            #expect(ZstdCompressor.compressBound(count) == count + count >> 8 + margin)
        }
        // Incompressible input reaches close to the bound but never past it.
        var compressor = try ZstdCompressor()
        for count in [0, 1, 1000, 300_000] {
            var output: [UInt8] = []
            let size = try compress(randomBytes(count, seed: 3), with: &compressor, into: &output)
            #expect(size == output.count)
            #expect(size <= ZstdCompressor.compressBound(count))
            #expect(size >= count)
        }
    }

    @Test func appendsAfterExistingBytesAndReusesCapacity() throws {
        var compressor = try ZstdCompressor()
        let source = gaussianInt8(200_000, seed: 11)
        let prefix: [UInt8] = [0xAA, 0xBB, 0xCC]
        var output = prefix
        let size = try compress(source, with: &compressor, into: &output)
        #expect(output.count == prefix.count + size)
        #expect(Array(output.prefix(3)) == prefix)
        let decoded = try output.withUnsafeBytes {
            try ZstdFrame.decompress(UnsafeRawBufferPointer(rebasing: $0[3...]), limit: source.count)
        }
        #expect(decoded == source)

        output.removeAll(keepingCapacity: true)
        let capacity = output.capacity
        let address = output.withUnsafeBufferPointer { $0.baseAddress }
        for _ in 0..<3 {
            output.removeAll(keepingCapacity: true)
            try compress(source, with: &compressor, into: &output)
            #expect(output.capacity == capacity)
            #expect(output.withUnsafeBufferPointer { $0.baseAddress } == address)
        }
    }

    @Test func manyFramesAppendedToOneBufferStayIntact() throws {
        var compressor = try ZstdCompressor()
        var output: [UInt8] = []
        var sizes: [Int] = []
        let sources = (0..<30).map { gaussianInt8(1000 * $0, seed: UInt64($0)) }
        for source in sources {
            sizes.append(try compress(source, with: &compressor, into: &output))
        }
        #expect(output.count == sizes.reduce(0, +))
        var offset = 0
        for (source, size) in zip(sources, sizes) {
            let decoded = try output.withUnsafeBytes {
                try ZstdFrame.decompress(UnsafeRawBufferPointer(rebasing: $0[offset..<offset + size]), limit: 1 << 20)
            }
            #expect(decoded == source)
            offset += size
        }
    }

    @Test func reusedCompressorMatchesFreshCompressors() throws {
        var reused = try ZstdCompressor()
        var generator = SeededRandom(seed: 42)
        for index in 0..<100 {
            // Sizes from empty to several blocks, so libzstd's size-adapted parameters change between frames.
            let count = [0, 1, 777, 65_536, 300_000][index % 5] + Int.random(in: 0..<5000, using: &generator)
            let source = index.isMultiple(of: 2)
                ? gaussianInt8(count, seed: UInt64(index)) : randomBytes(count, seed: UInt64(index))
            var fromReused: [UInt8] = []
            try compress(source, with: &reused, into: &fromReused)
            #expect(fromReused == (try frame(of: source)), "frame \(index) of \(count) bytes")
        }
    }

    @Test func levelsOutsideTheLibraryRangeAreRefused() throws {
        for level in [23, 1000, -200_000] {
            let error = #expect(throws: ZstdError.self) { _ = try ZstdCompressor(level: level) }
            #expect(error?.code == Code.parameterOutOfBound)
        }
        for level in [-5, 0, 1, 19] {
            let source = gaussianInt8(10_000, seed: 5)
            let compressed = try frame(of: source, level: level)
            #expect(try compressed.withUnsafeBytes { try ZstdFrame.decompress($0, limit: 10_000) } == source)
        }
    }
}
