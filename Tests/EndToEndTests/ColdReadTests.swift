import Foundation
import Glibc
import QuantSystem
import SafeTensors
import Testing
import TestSupport

/// An input whose pages are not in the page cache is read around it (O_DIRECT), ahead of the workers, and the
/// output is the same as from a hot input, byte for byte. The pages are dropped with posix_fadvise(DONTNEED)
/// after an fsync: where the filesystem keeps them anyway (tmpfs: the cache is the file), the cold cases skip
/// with a message.
@Suite("Cold reads") struct ColdReadTests {
    /// Tensors of several shapes and types, so that units start at offsets of every alignment: F32 matrices
    /// (tiles), a BF16 one, and small tensors copied as they are.
    static func checkpoint() -> Checkpoint {
        var c = Checkpoint.uniform([("a.weight", [512, 1000]), ("b.bias", [37]), ("d.weight", [1536, 1024])],
                                   seed: 11)
        var rng = SeededRandom(seed: 12)
        c.addRandom("c.weight", .BF16, shape: [256, 384], rng: &rng)
        c.addRandom("e.norm", .F32, shape: [1001], rng: &rng)
        return c
    }

    /// Writes the file out and drops its pages from the page cache; false when they stay cached.
    static func dropCache(_ path: String) throws -> Bool {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw TestError("open \(path): errno \(errno)") }
        defer { close(fd) }
        guard fsync(fd) == 0, posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0 else {
            throw TestError("fsync/fadvise \(path): errno \(errno)")
        }
        let size = Int(lseek(fd, 0, SEEK_END))
        guard let view = UncachedReads(descriptor: fd, size: size, path: path) else { return false }
        return !view.isCached(0..<size)
    }

    /// Runs quantize and returns its manifest: the bytes less what differs from run to run (when it started
    /// and ended, its timings), and from the timings what was read around the cache.
    static func quantize(_ input: String, _ output: String, reads: String? = nil) throws -> (Data, Int?) {
        var environment = ProcessInfo.processInfo.environment
        environment["QUANTD_READS"] = reads
        let r = Shell.run(Paths.quantd, ["quantize", input, "-o", output, "--threads", "2"], environment: environment)
        guard r.status == 0 else { throw TestError("quantize exited \(r.status): \(r.stderr)") }
        let bytes = try TempDir.read(output + "/manifest.json")
        guard var m = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw TestError("manifest.json is not an object")
        }
        let uncached = (m["timings"] as? [String: Any])?["uncached_read_bytes"] as? Int
        for key in ["started_at", "finished_at", "timings"] { m[key] = nil }
        return (try JSONSerialization.data(withJSONObject: m, options: [.sortedKeys]), uncached)
    }

    @Test func coldInputIsReadAroundTheCacheWithTheSameOutput() throws {
        let dir = TempDir("quantd-cold")
        defer { dir.remove() }
        let input = dir["model.safetensors"]
        try Self.checkpoint().write(to: input)
        let hot = try Self.quantize(input, dir["hot"])
        #expect(hot.1 == 0, "a file just written is in the cache: nothing read around it")

        guard try Self.dropCache(input) else {
            print("ColdReadTests: skipped: the filesystem of /tmp keeps the pages cached (or refuses O_DIRECT)")
            return
        }
        let cold = try Self.quantize(input, dir["cold"])
        let data = try SafeTensorsFile(path: input).header.dataLength
        // Every unit's bytes, but those of a unit whose pages the other reads brought in at its edges.
        #expect((cold.1 ?? 0) > data / 2, "\(cold.1 ?? 0) of \(data) bytes read around the cache")
        #expect(try TempDir.read(dir["cold/model.safetensors.zst"]) == TempDir.read(dir["hot/model.safetensors.zst"]))
        #expect(cold.0 == hot.0, "the manifests differ beyond their times")

        // The same through the page cache, as before O_DIRECT reads.
        guard try Self.dropCache(input) else { return }
        let buffered = try Self.quantize(input, dir["buffered"], reads: "buffered")
        #expect(buffered.1 == 0)
        #expect(buffered.0 == hot.0)
        #expect(try TempDir.read(dir["buffered/model.safetensors.zst"])
            == TempDir.read(dir["hot/model.safetensors.zst"]))
    }

    /// The summary line says how much was read around the cache, only when something was.
    @Test func summaryLineSaysWhatWasReadAroundTheCache() throws {
        let dir = TempDir("quantd-cold")
        defer { dir.remove() }
        let input = dir["model.safetensors"]
        try Self.checkpoint().write(to: input)
        let hot = Shell.run(Paths.quantd, ["quantize", input, "-o", dir["hot"]])
        #expect(hot.status == 0)
        #expect(!String(decoding: hot.output, as: UTF8.self).contains("read around the page cache"))
        guard try Self.dropCache(input) else {
            print("ColdReadTests: skipped: the filesystem of /tmp keeps the pages cached (or refuses O_DIRECT)")
            return
        }
        let cold = Shell.run(Paths.quantd, ["quantize", input, "-o", dir["cold"]])
        #expect(cold.status == 0)
        #expect(String(decoding: cold.output, as: UTF8.self).contains("read around the page cache)"))
    }

    /// UncachedReads by itself: reads at every offset alignment land where it says, up to the end of the file,
    /// and a range past the end is an error that names the file.
    @Test func uncachedReadsLandWhereTheySay() throws {
        let dir = TempDir("quantd-cold")
        defer { dir.remove() }
        var rng = SeededRandom(seed: 3)
        let bytes = (0..<(3 * 4096 + 123)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let path = try dir.write(bytes, as: "data")
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        guard let view = UncachedReads(descriptor: fd, size: bytes.count, path: path) else {
            print("ColdReadTests: skipped: the filesystem of /tmp refuses O_DIRECT")
            return
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 5 * 4096, alignment: UncachedReads.alignment)
        defer { buffer.deallocate() }
        for range in [0..<1, 1..<4097, 4095..<8193, 5000..<bytes.count, (bytes.count - 1)..<bytes.count, 0..<bytes.count] {
            #expect(UncachedReads.span(range) <= buffer.count)
            let at = try view.read(range, into: buffer)
            #expect(Array(buffer[at..<(at + range.count)]) == Array(bytes[range]), "\(range)")
        }
        #expect(view.isCached(0..<0))
        do {
            _ = try view.read(4096..<(bytes.count + 1), into: buffer)
            Issue.record("a read past the end of the file succeeded")
        } catch {
            #expect(error.description.contains(path), "\(error)")
        }
    }
}
