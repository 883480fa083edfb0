import Testing
import TestSupport
import Zstd

@Suite struct ZstdFrameTests {
    @Test func headerRefusesWhatIsNotACompleteZstdFrameHeader() throws {
        let good = try frame(of: gaussianInt8(5000, seed: 1))
        let header = try good.withUnsafeBytes { try ZstdFrame.header(of: $0) }
        for cut in [0, 3, 5, header.headerSize - 1] {
            let error = #expect(throws: ZstdError.self, "cut at \(cut)") {
                _ = try good.withUnsafeBytes { try ZstdFrame.header(of: UnsafeRawBufferPointer(rebasing: $0[..<cut])) }
            }
            #expect(error?.code == Code.srcSizeWrong)
        }
        #expect(try good.withUnsafeBytes {
            try ZstdFrame.header(of: UnsafeRawBufferPointer(rebasing: $0[..<header.headerSize]))
        } == header)

        let garbage = #expect(throws: ZstdError.self) {
            _ = try [UInt8](repeating: 0x42, count: 32).withUnsafeBytes { try ZstdFrame.header(of: $0) }
        }
        #expect(garbage?.code == Code.prefixUnknown)

        let skippable: [UInt8] = [0x50, 0x2A, 0x4D, 0x18, 2, 0, 0, 0, 1, 2]
        let skipped = #expect(throws: ZstdError.self) {
            _ = try skippable.withUnsafeBytes { try ZstdFrame.header(of: $0) }
        }
        #expect(skipped?.code == Code.frameParameterUnsupported)
        #expect(try skippable.withUnsafeBytes { try ZstdFrame.compressedSize(of: $0) } == skippable.count)
    }

    @Test func compressedSizeFindsTheEndOfTheFirstFrame() throws {
        let first = try frame(of: gaussianInt8(70_000, seed: 2))
        let second = try frame(of: randomBytes(10, seed: 3))
        let both = first + second
        #expect(try both.withUnsafeBytes { try ZstdFrame.compressedSize(of: $0) } == first.count)
        #expect(try second.withUnsafeBytes { try ZstdFrame.compressedSize(of: $0) } == second.count)
        #expect(throws: ZstdError.self) {
            _ = try first.dropLast().withUnsafeBytes { try ZstdFrame.compressedSize(of: $0) }
        }
    }

    @Test func decompressHonoursTheLimitAndTheFrameExtent() throws {
        let source = gaussianInt8(10_000, seed: 4)
        let compressed = try frame(of: source)
        #expect(try compressed.withUnsafeBytes { try ZstdFrame.decompress($0, limit: 10_000) } == source)
        let overLimit = #expect(throws: ZstdError.self) {
            _ = try compressed.withUnsafeBytes { try ZstdFrame.decompress($0, limit: 9_999) }
        }
        #expect(overLimit?.code == Code.dstSizeTooSmall)
        let trailing = #expect(throws: ZstdError.self) {
            _ = try (compressed + [0]).withUnsafeBytes { try ZstdFrame.decompress($0, limit: 10_000) }
        }
        #expect(trailing?.code == Code.srcSizeWrong)
        #expect(throws: ZstdError.self) {
            _ = try (compressed + compressed).withUnsafeBytes { try ZstdFrame.decompress($0, limit: 20_000) }
        }
        #expect(try frame(of: []).withUnsafeBytes { try ZstdFrame.decompress($0, limit: 0) } == [])
    }

    @Test func libraryVersionIsTheLinkedLibzstd() {
        let parts = zstdLibraryVersion.split(separator: ".")
        #expect(parts.count == 3)
        #expect(parts.allSatisfy { Int($0) != nil })
        #expect(zstdLibraryVersion >= "1.5")
    }
}
