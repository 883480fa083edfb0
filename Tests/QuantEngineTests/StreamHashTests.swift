import Crypto
import Foundation
@testable import QuantEngine
import Testing
import TestSupport

/// The resumable SHA-256 (a file's source and output) against swift-crypto's: every way of cutting a stream into updates, and a state
/// saved, encoded as the journal does, and taken up again. On a CPU without the SHA extensions there is none to
/// test (the engine hashes with swift-crypto's there): each test says so and passes.
@Suite("Resumable SHA-256")
struct StreamHashTests {
    static func digest(_ bytes: [UInt8], cuts: [Int] = []) throws -> String {
        var hash = try #require(ResumableSHA256())
        var from = 0
        for cut in cuts.sorted() + [bytes.count] {
            bytes[from..<cut].withUnsafeBytes { hash.update(bufferPointer: $0) }
            from = cut
        }
        return hash.finalize()
    }

    static var unavailable: Bool {
        if ResumableSHA256.isAvailable { return false }
        print("StreamHashTests: no SHA extensions on this CPU: the engine hashes with swift-crypto's; nothing to test")
        return true
    }

    @Test("FIPS 180-4's examples")
    func knownDigests() throws {
        if Self.unavailable { return }
        let cases: [(String, String)] = [
            ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
             "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
            (String(repeating: "a", count: 1_000_000),
             "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
        ]
        for (message, expected) in cases {
            #expect(try Self.digest(Array(message.utf8)) == expected, "\(message.prefix(10))…")
        }
    }

    @Test("equals swift-crypto's digest for every length around the block and padding edges, cut anywhere")
    func agreesWithSwiftCrypto() throws {
        if Self.unavailable { return }
        var rng = SeededRandom(seed: 256)
        for length in Array(0...200) + [1 << 20, (1 << 20) + 13, 3 * 64 * 1000 + 55] {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let expected = SHA256.hash(data: bytes).hex
            #expect(try Self.digest(bytes) == expected, "length \(length)")
            let cuts = (0..<Int.random(in: 1...5, using: &rng)).map { _ in Int.random(in: 0...length, using: &rng) }
            #expect(try Self.digest(bytes, cuts: cuts) == expected, "length \(length) cut at \(cuts)")
        }
    }

    @Test("a state saved anywhere and taken up again through JSON gives the same digest")
    func midstateRoundTrips() throws {
        if Self.unavailable { return }
        var rng = SeededRandom(seed: 55)
        let bytes = (0..<5000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let expected = SHA256.hash(data: bytes).hex
        for cut in [0, 1, 55, 56, 63, 64, 65, 127, 128, 4095, 4999, 5000] {
            var hash = try #require(ResumableSHA256())
            bytes[..<cut].withUnsafeBytes { hash.update(bufferPointer: $0) }
            let saved = try JSONDecoder().decode(SHA256Midstate.self, from: JSONEncoder().encode(hash.midstate))
            #expect(saved.bytes == cut && saved.pending.count == cut % 64)
            var resumed = try #require(ResumableSHA256(saved))
            bytes[cut...].withUnsafeBytes { resumed.update(bufferPointer: $0) }
            #expect(resumed.finalize() == expected, "cut at \(cut)")
        }
    }

    @Test("a state that SHA-256 cannot be in is refused")
    func malformedStatesAreRefused() {
        if Self.unavailable { return }
        let words: [UInt32] = Array(repeating: 1, count: 8)
        #expect(ResumableSHA256(SHA256Midstate(words: words, bytes: 70, pending: [1, 2, 3, 4, 5, 6])) != nil)
        #expect(ResumableSHA256(SHA256Midstate(words: Array(words.prefix(7)), bytes: 0, pending: [])) == nil)
        #expect(ResumableSHA256(SHA256Midstate(words: words, bytes: 70, pending: [1])) == nil)
        #expect(ResumableSHA256(SHA256Midstate(words: words, bytes: -1, pending: [])) == nil)
    }

    @Test("the input's hash is resumable exactly where the CPU has the SHA extensions, and right either way")
    func freshHashIsResumableWithSHAExtensions() {
        var hash = StreamHash.fresh()
        Array("abc".utf8).withUnsafeBytes { hash.update(bufferPointer: $0) }
        #expect((hash.midstate != nil) == ResumableSHA256.isAvailable)
        #expect(hash.finalize() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
