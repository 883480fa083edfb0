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

    /// The peak RSS `quantize` reports in its summary (its own VmHWM). Not wait4's ru_maxrss: a posix_spawn child
    /// shares this test process's memory until exec, and exec records that peak as the child's, so that every
    /// child of a test process that once held a few hundred MiB would report as much.
    static func peakRSS(_ input: String, _ output: String, threads: Int) throws -> Int {
        let child = try ChildProcess.spawn([Paths.quantd, "quantize", input, "-o", output, "--threads", "\(threads)"],
                                           output: FilePath(output + ".log"))
        let exit = try child.wait()
        let log = String(decoding: (try? TempDir.read(output + ".log")) ?? [], as: UTF8.self)
        #expect(exit.status == 0, "\(log)")
        let figure = try #require(log.firstRange(of: "; peak RSS ").map { log[$0.upperBound...] }, "\(log)")
        let mib = try #require(figure.split(separator: " ").first.flatMap { Int($0) }, "\(log)")
        return mib << 20
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

    /// Files large enough to fill their pipeline's window (12 units of 4 MiB each): each file's pool of unit
    /// buffers is freed when it ends, and the next file's must reuse that memory, not add to it. (glibc's malloc,
    /// after the first 4 MiB block is freed, serves the next ones from its arenas, which keep freed memory:
    /// before `PageMemory`, 6 such shards peaked 75-95 MiB above one.) At 2 threads two files are in flight
    /// (`FileRuns.width`), so six are measured against two: four more files, one after another, add nothing.
    @Test func peakRSSDoesNotGrowWithTheFilesOfAJob() throws {
        let dir = TempDir("quantd-memory-files")
        defer { dir.remove() }
        for (name, shards) in [("two", 2), ("six", 6)] {
            var sharded = ShardedCheckpoint()
            for k in 1...shards {
                sharded.add("model-\(k)-of-\(shards).safetensors", .uniform(
                    (0..<3).map { ("layers.\(k).w\($0).weight", [2048, 2048]) }, seed: UInt64(k)))
            }
            try sharded.write(to: dir[name])
        }
        let two = try Self.peakRSS(dir["two"], dir["out-two"], threads: 2)
        let six = try Self.peakRSS(dir["six"], dir["out-six"], threads: 2)
        #expect(six - two < 24 << 20, "\(two >> 20) MiB with two 48 MiB shards, \(six >> 20) MiB with six")
    }
}
