import Console
import QuantEngine

/// What one `quantd-bench --stages` run measured and projected, as written to its JSON file.
struct StageReport: Codable, Sendable {
    struct InputFile: Codable, Sendable {
        var name: String
        var bytes: Int
        /// This file's stages, one thread, best of the passes.
        var seconds: StageSeconds
    }

    struct Stage: Codable, Sendable {
        var name: String
        var what: String
        /// "thread CPU" (core-seconds) or "wall".
        var clock: String
        /// One thread, summed over the files.
        var seconds: Double
        /// `seconds` per GB (1e9 bytes) of input: core-seconds per GB on the thread CPU clock.
        var secondsPerGB: Double
        var gbPerSecond: Double
        /// Whether it counts in the total core-seconds per GB (the wall-clock row does not).
        var inTotal: Bool
    }

    /// What cannot be split under the engine's design: planning (one thread over every header), the longest file's
    /// own chain (its input hash on one thread, beside its ordered writer hashing the output on another, then
    /// its fsync) and the commit (side files, manifest, fsync).
    struct SerialChain: Codable, Sendable {
        var file: String
        var fileBytes: Int
        /// From the manifest of the run with all threads.
        var planSeconds: Double
        var hashInputSeconds: Double
        var hashOutputSeconds: Double
        var writeSeconds: Double
        var fsyncSeconds: Double
        /// From the manifest of the run with all threads.
        var commitSeconds: Double
        /// Each file's own chain, in the order the engine starts them.
        var fileChainSeconds: [Double]
        /// With every file in a lane of its own (at 2 x files threads or more).
        var seconds: Double
        /// `seconds` per GB of the whole input.
        var secondsPerGB: Double

        /// Files in flight at `cores` threads, as the engine runs them.
        static func lanes(files: Int, cores: Int) -> Int { FileRuns.width(files: files, threads: cores) }

        /// The chain at `cores` threads: a lane runs its files one after another, each taking the next file when it
        /// frees (as FileRuns' lanes do), so the longest lane's files add up.
        func seconds(cores: Int) -> Double {
            var lanes = [Double](repeating: 0, count: Self.lanes(files: fileChainSeconds.count, cores: cores))
            for chain in fileChainSeconds { lanes[lanes.indices.min { lanes[$0] < lanes[$1] }!] += chain }
            return planSeconds + (lanes.max() ?? 0) + commitSeconds
        }
    }

    /// Reading every input byte with all threads, on the wall clock.
    struct ReadBandwidth: Codable, Sendable {
        var threads: Int
        /// From the page cache (on a shared machine, as much a CPU figure as a bandwidth).
        var pageCacheGBPerSecond: Double
        /// From the disk, O_DIRECT: R, the cap of an input read cold. nil where the filesystem refuses O_DIRECT.
        var diskGBPerSecond: Double?
    }

    /// The projection at N cores: not a measurement.
    struct Projection: Codable, Sendable {
        var cores: Int
        /// Files in flight at this many threads.
        var lanes: Int
        /// S(N): the serial chain at this many threads, per GB of input.
        var serialSecondsPerGB: Double
        /// Input in the page cache: min(N / C, 1 / S(N)).
        var gbPerSecond: Double
        /// "cores" or "serial chain": the smaller term.
        var boundBy: String
        /// Input read cold from this disk: min(N / C, 1 / S(N), R).
        var coldGBPerSecond: Double?
        /// The end-to-end figure at this many threads (hot page cache), where one was measured.
        var measuredGBPerSecond: Double?

        init(cores n: Int, coreSecondsPerGB c: Double, chain: SerialChain, gb: Double, diskGBPerSecond r: Double?,
             measuredGBPerSecond: Double?) {
            let s = chain.seconds(cores: n) / gb
            cores = n
            lanes = SerialChain.lanes(files: chain.fileChainSeconds.count, cores: n)
            serialSecondsPerGB = s
            (gbPerSecond, boundBy) = Double(n) / c <= 1 / s ? (Double(n) / c, "cores") : (1 / s, "serial chain")
            coldGBPerSecond = r.map { min(gbPerSecond, $0) }
            self.measuredGBPerSecond = measuredGBPerSecond
        }
    }

    static let formula = "GB/s at N cores = min(N / C, 1 / S(N)), and min(N / C, 1 / S(N), R) read cold from "
        + "this disk: C core-seconds per GB, S(N) serial-chain seconds per GB at N threads, R disk read GB/s"

    var quantdVersion: String
    var startedAt: String
    var machine: MachineInfo
    var input: String
    var files: [InputFile]
    var inputBytes: Int
    /// Bytes of the tensors the engine quantized (the manifest's decisions).
    var quantizedBytes: Int
    var repeats: Int
    var threads: Int
    var stages: [Stage]
    /// The sum of the stages in the total.
    var stageCoreSecondsPerGB: Double
    var endToEnd: [BenchReport.EndToEnd]
    /// CPU seconds (rusage user + system) of the 1-thread run per GB: the stages plus what joins them.
    var endToEndCPUSecondsPerGB: Double
    /// C of the projection: the larger of the two above.
    var coreSecondsPerGB: Double
    var readBandwidth: ReadBandwidth
    var serialChain: SerialChain
    var projections: [Projection]
    var formula: String
    var commands: [[String]]
    var notes: [String]
}

/// The plain-text report of `--stages`, in the style of `BenchTable`.
enum StageTable {
    static func render(_ r: StageReport) -> String {
        let f = Format.fixed
        var out = [BenchTable.machine(r.machine, version: r.quantdVersion)]
        let largest = r.files.max { $0.bytes < $1.bytes }!
        out.append("input: \(r.input)")
        out.append("  \(r.files.count) file\(r.files.count == 1 ? "" : "s"), \(Format.bytes(r.inputBytes)) "
            + "(largest \(largest.name), \(Format.bytes(largest.bytes))), \(Format.bytes(r.quantizedBytes)) quantized")

        out += BenchTable.table(nil, ["stages, each alone on one thread, best of \(r.repeats)", "CPU s", "core-s/GB",
                                      "GB/s", "what"], widths: [44, 9, 10, 8, 0], r.stages.map { s in
            ["  " + s.name, f(s.seconds, 3), f(s.secondsPerGB, 3), f(s.gbPerSecond, 2), "  " + s.what]
        })
        out.append(BenchTable.row(["  total (all but write + fsync)", "",
                                   f(r.stageCoreSecondsPerGB, 3)], widths: [44, 9, 10]))

        out += BenchTable.endToEnd("quantd quantize \(BenchPath.base(r.input))", r.endToEnd, repeats: r.repeats)
        out.append("  CPU s per GB (user + sys): " + r.endToEnd.map {
            "\(f(($0.best.userSeconds + $0.best.systemSeconds) / (Double(r.inputBytes) / 1e9), 3)) at \($0.threads)"
        }.joined(separator: ", "))
        let read = r.readBandwidth
        out.append("  read with \(read.threads) threads: page cache \(f(read.pageCacheGBPerSecond, 2)) GB/s, disk "
            + "(O_DIRECT) " + (read.diskGBPerSecond.map { f($0, 2) + " GB/s" } ?? "refused by the filesystem"))

        let c = r.serialChain
        out.append("")
        out.append("serial chain (what the engine cannot split): plan + the longest lane's file chains + commit")
        out.append("  file chain = max(hash in, hash out + write) + fsync: a file's input hash and its ordered writer "
            + "run side by side; min(files, max(2, N / 2)) lanes at N >= 2 threads")
        out.append("  every file in a lane of its own: plan \(f(c.planSeconds, 3)) + \(c.file) max("
            + "\(f(c.hashInputSeconds, 3)), \(f(c.hashOutputSeconds, 3)) + \(f(c.writeSeconds, 3))) + "
            + "\(f(c.fsyncSeconds, 3)) + commit \(f(c.commitSeconds, 3)) = \(f(c.seconds, 3)) s = "
            + "\(f(c.secondsPerGB, 3)) s/GB")

        out += BenchTable.table("projection, not measured: \(StageReport.formula)",
                                ["  cores", "lanes", "S(N) s/GB", "GB/s", "bound by", "cold GB/s", "measured GB/s"],
                                widths: [10, 6, 11, 9, 14, 11, 15], r.projections.map { p in
            ["  \(p.cores)", "\(p.lanes)", f(p.serialSecondsPerGB, 3), f(p.gbPerSecond, 2), p.boundBy,
             p.coldGBPerSecond.map { f($0, 2) } ?? "-", p.measuredGBPerSecond.map { f($0, 2) } ?? "-"]
        })
        out.append("  C = \(f(r.coreSecondsPerGB, 3)) (the larger of the stages' \(f(r.stageCoreSecondsPerGB, 3)) and "
            + "end to end's \(f(r.endToEndCPUSecondsPerGB, 3)) at 1 thread), R = "
            + (read.diskGBPerSecond.map { f($0, 2) + " (O_DIRECT, \(read.threads) threads, measured)" } ?? "-"))
        out += BenchTable.notes(r.notes)
        return out.joined(separator: "\n")
    }
}
