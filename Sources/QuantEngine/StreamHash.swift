import CPUFeatures
import CSHA256
import Crypto

/// SHA-256 part way through a stream: the eight state words after the stream's whole 64-byte blocks, the bytes
/// after them (under one block) and the stream's length. What a checkpoint keeps of the input's and the output's
/// hash, so that a resumed file goes on hashing from there: its source is not read again up to it, and its
/// output up to it is hashed again from disk beside the work instead of before it.
struct SHA256Midstate: Codable, Equatable, Sendable {
    var words: [UInt32]
    var bytes: Int
    var pending: [UInt8]

    /// Whether it is a state SHA-256 can be in: eight words, and the bytes after the last whole block.
    var isWellFormed: Bool { words.count == 8 && bytes >= 0 && pending.count == bytes % 64 }
}

/// SHA-256 (FIPS 180-4) whose state can be saved (`midstate`) and taken up again: swift-crypto's `SHA256` keeps
/// its state inside BoringSSL and has no way out for it. The compression function is CSHA256's, with the SHA
/// extensions (as fast as BoringSSL's own SHA-NI code, which swift-crypto runs: `quantd-bench` prints both);
/// padding and length are here. Only where the CPU has the SHA extensions (`isAvailable`). `StreamHashTests` holds
/// it to swift-crypto's digest for every length around the block edges, cut into updates anywhere.
public struct ResumableSHA256: Sendable {
    /// Whether CPUID says SHA, SSSE3 and SSE4.1.
    public static let isAvailable: Bool = {
        let needed = UInt32(QUANTD_CPU_SHA) | UInt32(QUANTD_CPU_SSSE3) | UInt32(QUANTD_CPU_SSE4_1)
        return UInt32(quantd_cpu_features()) & needed == needed
    }()

    private var state: SIMD8<UInt32> = [0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a,
                                        0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19]
    /// The stream's bytes after its last whole block: the first `bytes % 64` (inline, so a copy is plain bytes).
    private var block = SIMD64<UInt8>()
    private var bytes = 0

    /// A new hash; nil on a CPU without the SHA extensions.
    public init?() {
        guard Self.isAvailable else { return nil }
    }

    /// Takes up a saved state; nil when it is not one SHA-256 can be in, or on a CPU without the SHA extensions.
    init?(_ saved: SHA256Midstate) {
        guard saved.isWellFormed else { return nil }
        self.init()
        for (i, word) in saved.words.enumerated() { state[i] = word }
        for (i, byte) in saved.pending.enumerated() { block[i] = byte }
        bytes = saved.bytes
    }

    var midstate: SHA256Midstate {
        SHA256Midstate(words: (0..<8).map { state[$0] }, bytes: bytes, pending: (0..<bytes % 64).map { block[$0] })
    }

    private mutating func compress(_ blocks: UnsafeRawBufferPointer) {
        guard let base = blocks.baseAddress, blocks.count >= 64 else { return }
        withUnsafeMutableBytes(of: &state) { words in
            quantd_sha256_blocks_shani(words.baseAddress!.assumingMemoryBound(to: UInt32.self),
                                       base.assumingMemoryBound(to: UInt8.self), blocks.count / 64)
        }
    }

    private mutating func compressBlock() {
        var copy = block
        withUnsafeBytes(of: &copy) { compress($0) }
    }

    public mutating func update(bufferPointer input: UnsafeRawBufferPointer) {
        var rest = input[...]
        let held = bytes % 64
        bytes += input.count
        if held > 0 {
            let take = min(64 - held, rest.count)
            for (i, byte) in rest.prefix(take).enumerated() { block[held + i] = byte }
            rest = rest.dropFirst(take)
            guard held + take == 64 else { return }
            compressBlock()
        }
        let whole = rest.count & ~63
        compress(UnsafeRawBufferPointer(rebasing: rest.prefix(whole)))
        for (i, byte) in rest.dropFirst(whole).enumerated() { block[i] = byte }
    }

    /// The digest, as lowercase hex: the padding (0x80, zeros, the length in bits) after the held bytes.
    public func finalize() -> String {
        var copy = self
        var held = bytes % 64
        copy.block[held] = 0x80
        held += 1
        if held > 56 {
            for i in held..<64 { copy.block[i] = 0 }
            copy.compressBlock()
            held = 0
        }
        for i in held..<56 { copy.block[i] = 0 }
        let bits = UInt64(bytes) &* 8
        for i in 0..<8 { copy.block[56 + i] = UInt8(truncatingIfNeeded: bits >> (56 - 8 * i)) }
        copy.compressBlock()
        return (0..<32).map { UInt8(truncatingIfNeeded: copy.state[$0 / 4] >> (24 - 8 * ($0 % 4))) }.hex
    }
}

/// The SHA-256 of a stream a file's pipeline hashes (its source as read, its output as written): resumable (its
/// state saved at each checkpoint) where the CPU has the SHA extensions; elsewhere swift-crypto's (BoringSSL's
/// vector code), and a checkpoint then has no state to save: a resumed file hashes its source again up to it,
/// and its output up to it before going on.
public enum StreamHash: Sendable {
    case resumable(ResumableSHA256)
    case crypto(SHA256)

    /// A new hash, resumable where the CPU has the SHA extensions.
    public static func fresh() -> StreamHash {
        ResumableSHA256().map { .resumable($0) } ?? .crypto(SHA256())
    }

    /// Goes on from a saved state; nil when the state is not well formed or the CPU has no SHA extensions (the
    /// source is then read and hashed again up to the checkpoint).
    static func resuming(_ saved: SHA256Midstate) -> StreamHash? {
        ResumableSHA256(saved).map { .resumable($0) }
    }

    public mutating func update(bufferPointer bytes: UnsafeRawBufferPointer) {
        switch self {
        case .resumable(var hash):
            hash.update(bufferPointer: bytes)
            self = .resumable(hash)
        case .crypto(var hash):
            hash.update(bufferPointer: bytes)
            self = .crypto(hash)
        }
    }

    /// The state to save at a checkpoint; nil for swift-crypto's hash.
    var midstate: SHA256Midstate? {
        if case .resumable(let hash) = self { hash.midstate } else { nil }
    }

    /// The digest, as lowercase hex.
    public func finalize() -> String {
        switch self {
        case .resumable(let hash): hash.finalize()
        case .crypto(let hash): hash.finalize().hex
        }
    }
}
