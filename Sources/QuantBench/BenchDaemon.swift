import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

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
        _ = system("rm -rf '\(spool)'")
        let log = dir + "/daemon.log"
        _ = unlink(log)
        let pid = try spawn([quantd, "run", "--spool", spool, "--settle-seconds", "1", "--log-file", log])
        defer {
            kill(pid, SIGTERM)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            _ = system("rm -rf '\(spool)'")
        }
        try waitFor(deadline: 30, what: "the daemon to start watching \(spool)") {
            (TextFile.read(log) ?? "").contains("\"event\":\"watching\"")
        }
        var latencies: [Double] = []
        for i in 0..<jobs {
            let staged = "\(spool)/incoming/.bench-\(i).tmp"
            guard system("cp '\(checkpoint)' '\(staged)'") == 0 else {
                throw BenchError("cannot copy \(checkpoint) into \(spool)/incoming")
            }
            let start = Child.now()
            guard rename(staged, "\(spool)/incoming/bench-\(i).safetensors") == 0 else {
                throw BenchError("cannot rename into \(spool)/incoming: \(String(cString: strerror(errno)))")
            }
            let manifest = "\(spool)/out/bench-\(i)/manifest.json"
            try waitFor(deadline: 120, what: manifest, poll: 0.0005) { access(manifest, F_OK) == 0 }
            latencies.append((Child.now() - start) * 1000)
            let done = "\(spool)/done/bench-\(i).safetensors"
            try waitFor(deadline: 30, what: done) { access(done, F_OK) == 0 }
            _ = unlink(done)
        }
        let before = cpuSeconds(pid)
        usleep(useconds_t(idleSeconds * 1e6))
        let idle = cpuSeconds(pid) - before
        let sorted = latencies.sorted()
        var st = stat()
        _ = stat(checkpoint, &st)
        return DaemonFigures(checkpoint: checkpoint, checkpointBytes: Int(st.st_size), jobs: jobs,
                             medianMilliseconds: sorted.isEmpty ? 0 : (sorted[(sorted.count - 1) / 2]
                                + sorted[sorted.count / 2]) / 2,
                             minMilliseconds: sorted.first ?? 0, maxMilliseconds: sorted.last ?? 0,
                             idleCPUSeconds: idle, idleSeconds: idleSeconds)
    }

    /// Starts a child without waiting for it.
    private static func spawn(_ argv: [String]) throws(BenchError) -> pid_t {
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cArgs.append(nil)
        defer { for p in cArgs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], nil, nil, cArgs, environ)
        guard rc == 0 else { throw BenchError("cannot start \(argv[0]): \(String(cString: strerror(rc)))") }
        return pid
    }

    private static func waitFor(deadline: Double, what: String, poll: Double = 0.01,
                                _ condition: () -> Bool) throws(BenchError) {
        let end = Child.now() + deadline
        while !condition() {
            guard Child.now() < end else { throw BenchError("timed out waiting for \(what)") }
            usleep(useconds_t(poll * 1e6))
        }
    }

    /// utime + stime of a process, from /proc/PID/stat (fields 14 and 15, in clock ticks).
    private static func cpuSeconds(_ pid: pid_t) -> Double {
        guard let text = TextFile.read("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
