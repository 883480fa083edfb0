import FoundationEssentials
import QuantSystem
import SystemPackage

/// The daemon's side of the benchmark: how long a checkpoint renamed into `incoming/` takes to be committed
/// (median of N jobs, one at a time), and how much CPU an idle daemon uses.
struct DaemonFigures: Codable, Sendable {
    var checkpoint: String
    var checkpointBytes: Int
    var jobs: Int
    /// Rename into incoming/ to `out/NAME/manifest.json` visible, in milliseconds.
    var medianMilliseconds: Double
    var minMilliseconds: Double
    var maxMilliseconds: Double
    /// CPU seconds (user + system) the daemon used while idle for `idleSeconds`.
    var idleCPUSeconds: Double
    var idleSeconds: Double
}

enum DaemonBench {
    static func run(quantd: String, checkpoint: String, jobs: Int, idleSeconds: Double, dir: String)
        throws(BenchError) -> DaemonFigures
    {
        let spool = dir + "/daemon-spool"
        let log = dir + "/daemon.log"
        let daemon: ChildProcess
        do throws(SystemError) {
            try FileSystem.removeTree(FilePath(spool))
            try? FileSystem.unlink(FilePath(log))
            daemon = try ChildProcess.spawn([quantd, "run", "--spool", spool, "--settle-seconds", "1",
                                             "--log-file", log])
        } catch {
            throw BenchError("cannot start the daemon: \(error)")
        }
        defer {
            daemon.signal(SignalPipe.terminate)
            _ = try? daemon.wait()
            try? FileSystem.removeTree(FilePath(spool))
        }
        try waitFor(deadline: 30, what: "the daemon to start watching \(spool)") {
            (TextFile.read(log) ?? "").contains("\"event\":\"watching\"")
        }
        var latencies: [Double] = []
        for i in 0..<jobs {
            let staged = "\(spool)/incoming/.bench-\(i).tmp"
            guard (try? ChildProcess.spawn(["/bin/cp", checkpoint, staged]).wait().status) == 0 else {
                throw BenchError("cannot copy \(checkpoint) into \(spool)/incoming")
            }
            let start = FileSystem.monotonicSeconds()
            do {
                try FileSystem.rename(FilePath(staged), FilePath("\(spool)/incoming/bench-\(i).safetensors"))
            } catch {
                throw BenchError("cannot rename into \(spool)/incoming: \(error)")
            }
            let manifest = FilePath("\(spool)/out/bench-\(i)/manifest.json")
            try waitFor(deadline: 120, what: manifest.string, poll: 0.0005) { FileSystem.exists(manifest) }
            latencies.append((FileSystem.monotonicSeconds() - start) * 1000)
            let done = FilePath("\(spool)/done/bench-\(i).safetensors")
            try waitFor(deadline: 30, what: done.string) { FileSystem.exists(done) }
            try? FileSystem.unlink(done)
        }
        let before = ChildProcess.cpuSeconds(of: daemon.id) ?? 0
        FileSystem.sleep(seconds: idleSeconds)
        let idle = (ChildProcess.cpuSeconds(of: daemon.id) ?? 0) - before
        let sorted = latencies.sorted()
        return DaemonFigures(checkpoint: checkpoint,
                             checkpointBytes: BenchPath.size(checkpoint), jobs: jobs,
                             medianMilliseconds: sorted.isEmpty ? 0 : (sorted[(sorted.count - 1) / 2]
                                + sorted[sorted.count / 2]) / 2,
                             minMilliseconds: sorted.first ?? 0, maxMilliseconds: sorted.last ?? 0,
                             idleCPUSeconds: idle, idleSeconds: idleSeconds)
    }

    private static func waitFor(deadline: Double, what: String, poll: Double = 0.01,
                                _ condition: () -> Bool) throws(BenchError) {
        let end = FileSystem.monotonicSeconds() + deadline
        while !condition() {
            guard FileSystem.monotonicSeconds() < end else { throw BenchError("timed out waiting for \(what)") }
            FileSystem.sleep(seconds: poll)
        }
    }
}
