import ArgumentParser
import Console
import FoundationEssentials
import QuantEngine
import QuantSystem
import SystemPackage
import Quantization

@main
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantd-bench",
        abstract: "Measure quantd on a generated LLaMA-shaped checkpoint, beside zstd, sha256 and numpy baselines.",
        discussion: """
            Generates (or reuses) a deterministic fp32 checkpoint in DIR, times the kernels in process, runs \
            `quantd quantize` on it as a child (the quantd beside this program, or --quantd) with 1 thread (pinned with taskset when present) and with all \
            threads, runs the baselines (zstd on the int8 payload, one sha256 pass over the input, the numpy \
            script when python3 has numpy, safetensors and zstandard), and prints a table of figures and ratios \
            against the targets of the design. Every figure goes to a JSON file too. Use a quiet machine.
            """
    )

    @Option(help: "Checkpoint size (K, M, G suffixes are binary units).")
    var size: String = "2G"

    @Option(help: "Extra sizes to run end to end with all threads, comma-separated (peak RSS as the size grows).")
    var sizes: String?

    @Option(help: "Threads for the all-threads runs (default: all cores).")
    var threads: Int?

    @Option(help: "Folder for the checkpoint and outputs (default: $TMPDIR/quantd-bench or /tmp/quantd-bench).")
    var dir: String?

    @Option(help: "The JSON report to write (default: DIR/bench.json).")
    var json: String?

    @Option(name: .customLong("repeat"), help: "Runs per end-to-end figure and baseline; the best counts.")
    var repeats: Int = 3

    @Option(name: .customLong("kernel-repeat"), help: "Runs per in-process kernel figure; the best counts.")
    var kernelRepeats: Int = 10

    @Option(help: "Seed of the generated weights.")
    var seed: UInt64 = 1

    @Flag(inversion: .prefixedNo, help: "Keep the generated checkpoints for the next run.")
    var keep = true

    @Flag(help: "Do not run the numpy baseline.")
    var skipPython = false

    @Option(help: "Checkpoints dropped into a running daemon, one at a time, for its latency (0: skip).")
    var daemonJobs: Int = 20

    @Option(help: """
        The checkpoint dropped into the daemon (default: ../shared/fixtures/minilm/model.safetensors when \
        found, else a generated 90 MB one).
        """)
    var daemonCheckpoint: String?

    @Option(help: "The quantd binary timed end to end and run as the daemon (default: quantd beside this program).")
    var quantd: String?

    @Option(help: "Seconds the daemon is left idle while its CPU time is measured.")
    var idleSeconds: Double = 10

    @Option(help: "The numpy baseline script (default: scripts/bench_numpy.py found above the binary or here).")
    var numpyScript: String?

    @Flag(help: """
        Measure the engine's stages alone on one thread over the bytes of --input (read, quantize, compress, hash, \
        write: core-seconds per GB), `quantd quantize` of it with 1 and all threads, the serial chain, and the \
        throughput projected from them at 8, 16 and 64 cores. Writes DIR/bench-stages.json.
        """)
    var stages = false

    @Option(help: "With --stages: the checkpoint measured, a .safetensors file or a folder of shards.")
    var input: String?

    @Option(help: .hidden)
    var measureChild: String?

    @Argument(parsing: .postTerminator, help: .hidden)
    var childCommand: [String] = []

    func validate() throws {
        if measureChild != nil { return }
        do { _ = try KernelVariant.fromEnvironment() } catch { throw ValidationError("\(error)") }
        if repeats < 1 { throw ValidationError("--repeat must be at least 1") }
        if kernelRepeats < 1 { throw ValidationError("--kernel-repeat must be at least 1") }
        if daemonJobs < 0 { throw ValidationError("--daemon-jobs must be 0 (skip) or more") }
        if idleSeconds < 0 { throw ValidationError("--idle-seconds must not be negative") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if ByteSize.parse(size) == nil { throw ValidationError("--size: cannot read '\(size)' (try 2G or 512M)") }
        for s in extraSizes where ByteSize.parse(s) == nil {
            throw ValidationError("--sizes: cannot read '\(s)' (try 1G,2G,4G)")
        }
        if stages && input == nil { throw ValidationError("--stages needs --input (a .safetensors file or a folder)") }
        if let input {
            guard stages else { throw ValidationError("--input goes with --stages") }
            guard FileSystem.exists(FilePath(input)) else { throw ValidationError("--input: nothing at \(input)") }
        }
        if !FileSystem.canExecute(FilePath(quantdPath)) {
            throw ValidationError("no quantd program at \(quantdPath) (build it with `swift build`, or pass --quantd)")
        }
    }

    /// --quantd, else the quantd in this program's folder.
    fileprivate var quantdPath: String { quantd ?? BenchPath.directory(Child.selfPath) + "/quantd" }

    private var extraSizes: [String] {
        (sizes ?? "").split(separator: ",").map { $0.filter { $0 != " " } }.filter { !$0.isEmpty }
    }

    func run() throws {
        if let measureChild {
            // The measurer (see `Child.run`): a fresh small process, so that the child's peak RSS is its own.
            throw ExitCode(Child.measure(childCommand, into: measureChild))
        }
        do {
            let runner = try BenchRunner(self)
            if stages, let input {
                print(StageTable.render(try runner.runStages(input: input)))
            } else {
                print(BenchTable.render(try runner.run()))
            }
            print("\nJSON: \(runner.jsonPath)")
        } catch {
            Terminal.error(error.description)
            throw ExitCode(70)
        }
    }

    fileprivate var settings: (dir: String, json: String, threads: Int) {
        let tmp = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        let dir = self.dir ?? tmp + "/quantd-bench"
        return (dir, json ?? dir + (stages ? "/bench-stages.json" : "/bench.json"), threads ?? Engine.cores)
    }

    fileprivate var sizeLabels: [String] { extraSizes }
}

/// Binary-unit sizes as given on the command line: "64M", "2G", "1.5G", "4GiB".
enum ByteSize {
    static func parse(_ text: String) -> Int? {
        var t = text.uppercased()
        for suffix in ["IB", "B"] where t.hasSuffix(suffix) { t.removeLast(suffix.count); break }
        let units: [Character: Double] = ["K": 1024, "M": 1_048_576, "G": 1_073_741_824, "T": 1_099_511_627_776]
        var scale = 1.0
        if let last = t.last, let unit = units[last] {
            scale = unit
            t.removeLast()
        }
        guard let value = Double(t), value > 0 else { return nil }
        return Int(value * scale)
    }
}

/// One benchmark run: the steps in order, each appending its figures.
final class BenchRunner {
    let options: Bench
    let dir: String
    let jsonPath: String
    let threads: Int
    let log: String
    let quantd: String
    var commands: [[String]] = []
    var notes: [String] = []

    init(_ options: Bench) throws(BenchError) {
        self.options = options
        (dir, jsonPath, threads) = options.settings
        quantd = options.quantdPath
        log = dir + "/bench.log"
        do { try FileSystem.makeDirectory(FilePath(dir)) } catch { throw BenchError(error) }
        try? FileSystem.unlink(FilePath(log))
    }

    func run() throws(BenchError) -> BenchReport {
        let startedAt = Date.now.ISO8601Format()
        try cleanOutputs()
        let machine = currentMachine()
        let floor = try run(["/bin/true"])

        status("kernels in process (\(options.kernelRepeats) runs each)")
        let kernels = try KernelBench.run(threads: threads, repeats: options.kernelRepeats, level: 3)

        let primaryLabel = options.size
        let (checkpoint, spec) = try prepare(label: primaryLabel)

        let endToEnd = try endToEnd(checkpoint.path, bytes: checkpoint.bytes)
        let outputName = BenchPath.base(checkpoint.path) + ".zst"
        let allOutput = "\(dir)/out-t\(threads)/\(outputName)"
        let identical: Bool? = threads > 1 ? try sameBytes(dir + "/out-t1/" + outputName, allOutput) : nil

        // Baselines.
        var baselines: [BenchReport.Baseline] = []
        guard let zstd = Child.which("zstd") else { throw BenchError("the zstd command is needed (apt install zstd)") }
        status("baselines: zstd, sha256")
        let payload = dir + "/payload.safetensors"
        try run([zstd, "-d", "-q", "-f", allOutput, "-o", payload])
        let payloadBytes = BenchPath.size(payload)
        let zstdRun = try timed([zstd, "-3", "-T\(threads)", "-q", "-f", payload, "-o", dir + "/payload.zst"])
        baselines.append(.init(name: "zstd -3 -T\(threads) on the int8 payload", tool: "zstd",
                               inputBytes: payloadBytes, best: zstdRun))
        let hasher: (argv: [String], tool: String)
        if let openssl = Child.which("openssl") {
            hasher = ([openssl, "dgst", "-sha256", checkpoint.path], "openssl dgst -sha256")
        } else if let sha256sum = Child.which("sha256sum") {
            hasher = ([sha256sum, checkpoint.path], "sha256sum")
        } else {
            throw BenchError("neither openssl nor sha256sum is on PATH")
        }
        let shaRun = try timed(hasher.argv)
        baselines.append(.init(name: "sha256 over the input", tool: hasher.tool, inputBytes: checkpoint.bytes,
                               best: shaRun))
        if let numpy = try numpyBaseline(checkpoint.path) {
            baselines.append(.init(name: "numpy script, \(threads) zstd threads", tool: numpy.tool,
                                   inputBytes: checkpoint.bytes, best: numpy.run))
        }
        try cleanOutputs()

        // Other sizes, all threads: time and peak RSS as the checkpoint grows.
        var sizeRuns: [BenchReport.SizeRun] = []
        let all = endToEnd.last!
        for label in options.sizeLabels {
            if ByteSize.parse(label) == spec {
                sizeRuns.append(.init(label: label, bytes: checkpoint.bytes, threads: threads, best: all.best,
                                      gbPerSecond: all.gbPerSecond))
                continue
            }
            let (other, _) = try prepare(label: label)
            status("quantd quantize \(label), \(threads) thread(s)")
            let out = dir + "/out-size"
            let best = try timed([quantd, "quantize", other.path, "-o", out, "--threads", "\(threads)"]) {
                () throws(BenchError) in try self.remove(out)
            }
            try remove(out)
            if !options.keep { try? FileSystem.unlink(FilePath(other.path)) }
            sizeRuns.append(.init(label: label, bytes: other.bytes, threads: threads, best: best,
                                  gbPerSecond: Double(other.bytes) / best.seconds / 1e9))
        }
        if !options.keep { try? FileSystem.unlink(FilePath(checkpoint.path)) }

        var daemon: DaemonFigures?
        if options.daemonJobs > 0 {
            let dropped = try daemonCheckpoint()
            status("daemon latency: \(options.daemonJobs) jobs of \(BenchPath.base(dropped)), then idle")
            daemon = try DaemonBench.run(quantd: quantd, checkpoint: dropped, jobs: options.daemonJobs,
                                         idleSeconds: options.idleSeconds, dir: dir)
        }
        Terminal.endStatus()

        let defaults = QuantizeOptions()
        let report = BenchReport(
            quantdVersion: quantdVersion, startedAt: startedAt, machine: machine,
            settings: .init(size: options.size, sizes: options.sizeLabels, threads: threads, repeats: options.repeats,
                            kernelRepeats: options.kernelRepeats, seed: options.seed, dir: dir,
                            scheme: "quantize defaults: \(defaults.schemeDescription), zstd level \(defaults.level)"),
            checkpoint: checkpoint, kernels: kernels, endToEnd: endToEnd, outputsIdentical: identical,
            baselines: baselines,
            ratios: ratios(endToEnd: endToEnd, baselines: baselines, kernels: kernels, sizes: sizeRuns,
                           zstd: zstdRun, sha: shaRun, daemon: daemon),
            sizes: sizeRuns, daemon: daemon, measurerFloorRSSBytes: floor.peakRSSBytes, commands: commands,
            notes: notes + ["peak RSS figures include the measuring process's floor: /bin/true reports "
                + "\(Format.fixed(floor.peakRSSMiB, 1)) MiB"])
        try writeJSON(report)
        return report
    }

    /// The machine, with a note when other work was running at the start.
    func currentMachine() -> MachineInfo {
        let machine = MachineInfo.current(cores: Engine.cores)
        if machine.loadAverage > 0.5 {
            notes.append("load average \(Format.fixed(machine.loadAverage, 2)) at the start: other work shared the "
                + "cores, so the figures (above all the multi-thread ones) are low")
        }
        return machine
    }

    /// `quantd quantize` of `input`, best of the repeats, with one thread (pinned) and all threads; the outputs
    /// stay in DIR/out-tN for what follows.
    func endToEnd(_ input: String, bytes: Int) throws(BenchError) -> [BenchReport.EndToEnd] {
        var endToEnd: [BenchReport.EndToEnd] = []
        let taskset = Child.which("taskset")
        if taskset == nil { notes.append("taskset not found: the 1-thread run is not pinned to one core") }
        for t in threads > 1 ? [1, threads] : [1] {
            status("quantd quantize, \(t) thread(s)")
            let out = dir + "/out-t\(t)"
            var argv = [quantd, "quantize", input, "-o", out, "--threads", "\(t)"]
            let pinned = t == 1 && taskset != nil
            if pinned, let taskset { argv = [taskset, "-c", "0"] + argv }
            let best = try timed(argv) { () throws(BenchError) in try self.remove(out) }
            endToEnd.append(.init(threads: t, pinned: pinned, best: best,
                                  gbPerSecond: Double(bytes) / best.seconds / 1e9))
        }
        return endToEnd
    }

    /// Writes `report` to the JSON file, keys sorted.
    func writeJSON(_ report: some Encodable) throws(BenchError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do { try TextFile.write(Array(try encoder.encode(report)) + [0x0a], to: jsonPath) } catch let e as BenchError {
            throw e
        } catch {
            throw BenchError("cannot encode the report: \(error)")
        }
    }

    private func ratios(endToEnd: [BenchReport.EndToEnd], baselines: [BenchReport.Baseline],
                        kernels: [KernelFigure], sizes: [BenchReport.SizeRun], zstd: ChildRun, sha: ChildRun,
                        daemon: DaemonFigures?) -> [BenchReport.Ratio]
    {
        let all = endToEnd.last!
        var ratios: [BenchReport.Ratio] = []
        let floor = zstd.seconds + sha.seconds / 2
        ratios.append(.atMost("end to end / floor (zstd + sha256 / 2)", all.best.seconds / floor, 1.25))
        if let numpy = baselines.first(where: { $0.name.hasPrefix("numpy") }) {
            ratios.append(.atLeast("numpy script / quantd", numpy.best.seconds / all.best.seconds, 2.5))
        }
        if let one = endToEnd.first, one.threads == 1, all.threads > 1 {
            ratios.append(.atLeast("\(all.threads) threads vs 1 thread, end to end",
                                   one.best.seconds / all.best.seconds, 1.7))
        }
        let rss = (endToEnd.map(\.best) + sizes.map(\.best)).map(\.peakRSSMiB).max() ?? 0
        ratios.append(.atMost("peak RSS, MiB (largest of all runs)", rss, 512))
        if sizes.count > 1, let small = sizes.min(by: { $0.bytes < $1.bytes }),
           let large = sizes.max(by: { $0.bytes < $1.bytes }) {
            ratios.append(.atMost("peak RSS \(large.label) / \(small.label)",
                                  large.best.peakRSSMiB / small.best.peakRSSMiB, 1.1))
        }
        // The unit in cache: what the kernel sees in a job, a unit that its worker has just read.
        if let channel = kernels.first(where: {
            $0.name.hasPrefix("per channel, symmetric") && $0.threads == 1 && $0.rows == KernelBench.unitRows
        }) {
            ratios.append(.atLeast("per-channel kernel, 1 thread, unit in cache, GB/s", channel.gbPerSecond, 18))
        }
        if let daemon {
            ratios.append(.atMost("daemon: rename in to commit, median ms", daemon.medianMilliseconds, 300))
            ratios.append(.atMost("daemon: idle CPU s over \(Format.fixed(daemon.idleSeconds, 0)) s",
                                  daemon.idleCPUSeconds, 0.05))
        }
        return ratios
    }

    /// The checkpoint for `label`, generated unless an identical one is in the folder, then read once (to make
    /// the page cache hot) and once more (timed).
    private func prepare(label: String) throws(BenchError) -> (BenchReport.CheckpointInfo, Int) {
        let target = ByteSize.parse(label)!
        let spec = BenchCheckpoint(targetBytes: target, seed: options.seed)
        let path = spec.path(in: dir, label: label)
        let reused = spec.matches(path)
        var generateSeconds: Double?
        if !reused {
            status("generating \(Format.bytes(spec.fileSize)) checkpoint \(path)")
            let start = FileSystem.monotonicSeconds()
            try spec.write(to: path, threads: threads)
            generateSeconds = FileSystem.monotonicSeconds() - start
        }
        status("reading \(path) into the page cache")
        _ = try readPass(path)
        let seconds = try readPass(path)
        let info = BenchReport.CheckpointInfo(label: label, path: path, bytes: spec.fileSize,
                                              tensors: spec.tensors.count, weightBytes: spec.weightBytes,
                                              reused: reused, generateSeconds: generateSeconds,
                                              readPassGBPerSecond: Double(spec.fileSize) / seconds / 1e9)
        return (info, target)
    }

    /// Best of the configured repeats; records the command.
    func timed(_ argv: [String], prepare: () throws(BenchError) -> Void = {}) throws(BenchError)
        -> ChildRun
    {
        commands.append(argv)
        return try Child.best(of: options.repeats, argv, log: log, prepare: prepare)
    }

    @discardableResult
    func run(_ argv: [String]) throws(BenchError) -> ChildRun {
        commands.append(argv)
        return try Child.run(argv, log: log)
    }

    /// The numpy script's best run, or nil (with a note saying why) when it cannot run here.
    private func numpyBaseline(_ checkpoint: String) throws(BenchError) -> (run: ChildRun, tool: String)? {
        if options.skipPython {
            notes.append("numpy baseline skipped (--skip-python)")
            return nil
        }
        guard let python = Child.which("python3") else {
            notes.append("numpy baseline skipped: python3 not found")
            return nil
        }
        guard let script = options.numpyScript ?? findScript() else {
            notes.append("numpy baseline skipped: scripts/bench_numpy.py not found (pass --numpy-script)")
            return nil
        }
        do {
            try Child.run([python, "-c", "import numpy, safetensors, zstandard"], log: log)
        } catch {
            notes.append("numpy baseline skipped: python3 lacks numpy, safetensors or zstandard")
            return nil
        }
        status("baseline: numpy script")
        let out = dir + "/numpy-out.bin"
        let best = try timed([python, script, checkpoint, out, "--threads", "\(threads)"])
        return (best, "python3 " + BenchPath.base(script))
    }

    /// What the daemon step drops: --daemon-checkpoint, the MiniLM fixture, or a generated 90 MB checkpoint.
    private func daemonCheckpoint() throws(BenchError) -> String {
        if let path = options.daemonCheckpoint { return path }
        if let fixture = findAbove("../shared/fixtures/minilm/model.safetensors") { return fixture }
        let (generated, _) = try prepare(label: "90M")
        return generated.path
    }

    /// scripts/bench_numpy.py in a folder above the binary or above the working directory.
    private func findScript() -> String? { findAbove("scripts/bench_numpy.py") }

    /// `relative` under a folder above the binary or above the working directory.
    private func findAbove(_ relative: String) -> String? {
        let here = FileSystem.currentDirectory()?.string ?? "."
        for start in [BenchPath.directory(Child.selfPath), here] {
            var folder = start
            while true {
                let candidate = folder + "/" + relative
                if FileSystem.canRead(FilePath(candidate)) { return candidate }
                let parent = BenchPath.directory(folder)
                if parent == folder { break }
                folder = parent
            }
        }
        return nil
    }

    /// Reads the whole file with pread into one reused 8 MiB buffer; returns the seconds it took.
    func readPass(_ path: String) throws(BenchError) -> Double {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        do throws(SystemError) {
            let file = FilePath(path)
            let fd = try FileDescriptor.openFile(file, .readOnly)
            defer { try? fd.close() }
            let start = FileSystem.monotonicSeconds()
            var offset = 0
            while true {
                let n = try fd.read(into: buffer, at: offset, path: file)
                if n == 0 { break }
                offset += n
            }
            return FileSystem.monotonicSeconds() - start
        } catch {
            throw BenchError(error)
        }
    }

    /// Whether two files hold the same bytes.
    private func sameBytes(_ a: String, _ b: String) throws(BenchError) -> Bool {
        let size = 4 << 20
        let ba = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 64)
        let bb = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 64)
        defer { ba.deallocate(); bb.deallocate() }
        do throws(SystemError) {
            let fa = try FileDescriptor.openFile(FilePath(a), .readOnly)
            defer { try? fa.close() }
            let fb = try FileDescriptor.openFile(FilePath(b), .readOnly)
            defer { try? fb.close() }
            var offset = 0
            while true {
                let na = try fa.readFully(into: ba, at: offset, path: FilePath(a), allowShort: true)
                let nb = try fb.readFully(into: bb, at: offset, path: FilePath(b), allowShort: true)
                if na != nb || !ba[0..<na].elementsEqual(bb[0..<nb]) { return false }
                if na < size { return true }
                offset += na
            }
        } catch {
            throw BenchError(error)
        }
    }

    /// Removes what a previous run left besides the checkpoints, the log and the report.
    func cleanOutputs() throws(BenchError) {
        for name in ["out-t1", "out-t\(threads)", "out-size", "payload.safetensors", "payload.zst", "numpy-out.bin",
                     StagePass.outputName] {
            try remove(dir + "/" + name)
        }
    }

    func remove(_ path: String) throws(BenchError) {
        do { try FileSystem.removeTree(FilePath(path)) } catch { throw BenchError(error) }
    }

    func status(_ text: String) {
        if Terminal.isInteractive {
            Terminal.status("quantd bench: " + text)
        } else {
            Terminal.write("quantd bench: " + text + "\n")
        }
    }
}

/// Path pieces without Foundation's URL.
enum BenchPath {
    static func base(_ path: String) -> String { path.split(separator: "/").last.map(String.init) ?? path }

    static func directory(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// The size of the file at `path`, following symlinks (0 when there is none).
    static func size(_ path: String) -> Int {
        FileSystem.resolvingSymlinks(FilePath(path)).flatMap { try? FileSystem.entry($0).size } ?? 0
    }
}
