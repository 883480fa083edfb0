import QuantSystem
import SystemPackage
import Testing
import TestSupport

/// The files of a job share the job's workers and its bounded window of work units: memory does not grow with the
/// number of shards. Peak RSS comes from `wait4` (not a timing: what the process held at most).
@Suite("Memory bound over shards") struct MemoryBoundTests {
    /// `shards` shards of 4 MiB each (two work units), with their index, in `folder`.
    static func folder(_ folder: String, shards: Int) throws {
        var sharded = ShardedCheckpoint()
        for k in 1...shards {
            sharded.add("model-\(k)-of-\(shards).safetensors", .uniform([("layers.\(k).weight", [1024, 1024])], seed: UInt64(k)))
        }
        try sharded.write(to: folder)
    }

    static func peakRSS(_ input: String, _ output: String, threads: Int) throws -> Int {
        let child = try ChildProcess.spawn([Paths.quantd, "quantize", input, "-o", output, "--threads", "\(threads)"],
                                           output: FilePath(output + ".log"))
        let exit = try child.wait()
        #expect(exit.status == 0, "\(String(decoding: (try? TempDir.read(output + ".log")) ?? [], as: UTF8.self))")
        return exit.peakRSSBytes
    }

    @Test func peakRSSDoesNotGrowWithTheShardCount() throws {
        let dir = TempDir("quantd-memory")
        defer { dir.remove() }
        try Self.folder(dir["few"], shards: 2)
        try Self.folder(dir["many"], shards: 12)
        for threads in [2, 4] {
            let few = try Self.peakRSS(dir["few"], dir["out-few-\(threads)"], threads: threads)
            let many = try Self.peakRSS(dir["many"], dir["out-many-\(threads)"], threads: threads)
            // A work unit holds about 8 MiB (4 MiB read + its frame): 12 shards against 2 may cost a few more
            // buffers in flight (each lane's window), never one per shard (6 x 4 MiB of input more).
            #expect(many - few < 24 << 20, "\(threads) threads: \(few >> 20) MiB with 2 shards, \(many >> 20) MiB with 12")
            #expect(many < 512 << 20)
        }
    }
}
