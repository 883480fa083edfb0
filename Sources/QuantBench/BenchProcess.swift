import Console
import FoundationEssentials
import QuantSystem
import SystemPackage
import Quantization

/// Why `quantd-bench` stopped.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
    init(_ error: SystemError) { description = error.description }
}

/// One finished child process: wall time from spawn to reap, and its resource usage from wait4().
struct ChildRun: Codable, Sendable {
    var command: [String]
    var seconds: Double
    /// ru_maxrss of the child (Linux reports KiB), in bytes.
    var peakRSSBytes: Int
    var userSeconds: Double
    var systemSeconds: Double
    var status: Int32

    var peakRSSMiB: Double { Double(peakRSSBytes) / 1_048_576 }

    /// CPU time over wall time: how many cores the child kept busy on average.
    var coresBusy: Double { seconds > 0 ? (userSeconds + systemSeconds) / seconds : 0 }

    /// The measurer's one-line report: seconds, peak RSS bytes, user and system seconds, status.
    var line: String { "\(seconds) \(peakRSSBytes) \(userSeconds) \(systemSeconds) \(status)\n" }
}

extension ChildRun {
    init?(line: String) {
        let f = line.split(separator: " ").map { $0.filter { $0 != "\n" } }
        guard f.count == 5, let s = Double(f[0]), let rss = Int(f[1]), let u = Double(f[2]), let y = Double(f[3]),
              let code = Int32(f[4]) else { return nil }
        self.init(command: [], seconds: s, peakRSSBytes: rss, userSeconds: u, systemSeconds: y, status: code)
    }
}

/// Runs programs as children (`ChildProcess`: posix_spawn, reaped with wait4), so that each run's peak RSS and
/// CPU time are its own (Foundation's Process gives neither).
enum Child {
    /// Runs `argv` (argv[0] an absolute path) with stdin from /dev/null and stdout and stderr appended to `log`.
    /// Throws when it cannot start or exits with a non-zero status; the message quotes the log's tail.
    ///
    /// The child is started by a fresh `quantd-bench --measure-child` process, not by this one: a child made by
    /// posix_spawn (vfork-like, sharing the parent's memory until exec) or fork inherits the parent's RSS high-water
    /// mark into its ru_maxrss, and this process holds the 64 MiB kernel matrices. The measurer's own few MiB
    /// are the floor of every figure (see `measurerFloor`).
    @discardableResult
    static func run(_ argv: [String], log: String) throws(BenchError) -> ChildRun {
        appendLog(log, "$ " + argv.joined(separator: " ") + "\n")
        let result = log + ".child"
        try? FileSystem.unlink(FilePath(result))
        _ = try spawn([selfPath, "--measure-child", result, "--"] + argv, log: log)
        guard let line = TextFile.read(result), var run = ChildRun(line: line) else {
            throw BenchError("no measurement of \(argv.joined(separator: " ")):\n" + tail(of: log))
        }
        try? FileSystem.unlink(FilePath(result))
        run.command = argv
        guard run.status == 0 else {
            throw BenchError("\(argv.joined(separator: " ")) exited with status \(run.status):\n" + tail(of: log))
        }
        return run
    }

    /// The measurer's side: runs `argv` with this process's stdio, writes its figures to `result` and returns its
    /// exit status.
    static func measure(_ argv: [String], into result: String) -> Int32 {
        do {
            let run = try spawn(argv, log: nil)
            try TextFile.write(Array(run.line.utf8), to: result)
            return run.status
        } catch {
            Terminal.error(error.description)
            return 70
        }
    }

    /// Spawn and reap: wall time from spawn to reap and the child's rusage. With a `log`, stdin is /dev/null and
    /// stdout and stderr append to the log; without, the child shares this process's stdio.
    static func spawn(_ argv: [String], log: String?) throws(BenchError) -> ChildRun {
        let start = FileSystem.monotonicSeconds()
        let exit: ChildProcess.Exit
        do {
            exit = try ChildProcess.spawn(argv, output: log.map { FilePath($0) }).wait()
        } catch {
            throw BenchError("cannot run \(argv[0]): \(error)")
        }
        return ChildRun(command: argv, seconds: FileSystem.monotonicSeconds() - start, peakRSSBytes: exit.peakRSSBytes,
                        userSeconds: exit.userSeconds, systemSeconds: exit.systemSeconds, status: exit.status)
    }

    /// The best (shortest) of `count` runs of `argv`, after `prepare` before each one (not timed).
    static func best(of count: Int, _ argv: [String], log: String, prepare: () throws(BenchError) -> Void = {})
        throws(BenchError) -> ChildRun
    {
        var best: ChildRun?
        for _ in 0..<max(1, count) {
            try prepare()
            let run = try run(argv, log: log)
            if best == nil || run.seconds < best!.seconds { best = run }
        }
        return best!
    }

    /// The absolute path of `name` on $PATH, if it is there.
    static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileSystem.canExecute(FilePath(candidate)) { return candidate }
        }
        return nil
    }

    /// This program's own path (/proc/self/exe resolved, else argv[0]): the measurer it re-executes, and where quantd
    /// is looked for.
    static var selfPath: String {
        FileSystem.resolvingSymlinks(FilePath("/proc/self/exe"))?.string ?? CommandLine.arguments[0]
    }

    static func appendLog(_ log: String, _ text: String) {
        guard let fd = try? FileDescriptor.openFile(FilePath(log), .writeOnly, options: [.create, .append],
                                                    permissions: TextFile.mode) else { return }
        defer { try? fd.close() }
        _ = try? fd.writeAll(text.utf8)
    }

    /// The last lines of a log, for an error message.
    private static func tail(of log: String) -> String {
        let lines = (TextFile.read(log) ?? "").split(separator: "\n", omittingEmptySubsequences: false)
        return lines.suffix(12).joined(separator: "\n")
    }
}

/// Small whole-file reads and writes (logs, /proc files, the JSON report).
enum TextFile {
    /// rw-r--r--
    static let mode: FilePermissions = [.ownerReadWrite, .groupRead, .otherRead]

    static func read(_ path: String) -> String? {
        guard let bytes = try? FileSystem.readFile(FilePath(path), limit: 1 << 30) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Writes `bytes` over what is at `path`, without fsync.
    static func write(_ bytes: [UInt8], to path: String) throws(BenchError) {
        do throws(SystemError) {
            let fd = try FileDescriptor.openFile(FilePath(path), .writeOnly, options: [.create, .truncate],
                                                 permissions: mode)
            defer { try? fd.close() }
            try bytes.withUnsafeBytes { raw in
                Result { () throws(SystemError) in try fd.writeFully(raw, path: FilePath(path)) }
            }.get()
        } catch {
            throw BenchError(error)
        }
    }
}

/// The machine the figures were measured on.
struct MachineInfo: Codable, Sendable {
    var cores: Int
    var cpuModel: String
    /// The CPU flags that decide kernel and hash speed (AVX2, AVX-512, SHA extensions).
    var cpuFeatures: [String]
    var kernel: String
    /// The build of the fast kernels the in-process figures ran (`KernelVariant.selectedSummary`).
    var kernelVariant: String
    var memoryGiB: Double
    /// /proc/loadavg's 1-minute figure when the run began: above zero, other work shared the cores.
    var loadAverage: Double

    static func current(cores: Int) -> MachineInfo {
        let cpuinfo = TextFile.read("/proc/cpuinfo") ?? ""
        func field(_ name: String) -> String? {
            for line in cpuinfo.split(separator: "\n") where line.hasPrefix(name) {
                if let colon = line.firstIndex(of: ":") {
                    return String(line[line.index(after: colon)...].drop { $0 == " " })
                }
            }
            return nil
        }
        let flags = Set((field("flags") ?? "").split(separator: " ").map(String.init))
        let wanted = ["avx2", "avx512f", "avx512bw", "avx512_vnni", "sha_ni", "vaes"]
        let memKiB = (TextFile.read("/proc/meminfo") ?? "").split(separator: "\n")
            .first { $0.hasPrefix("MemTotal:") }
            .flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
        return MachineInfo(cores: cores, cpuModel: field("model name") ?? "unknown",
                           cpuFeatures: wanted.filter(flags.contains), kernel: FileSystem.kernel(),
                           kernelVariant: KernelVariant.selectedSummary,
                           memoryGiB: Double(memKiB) / 1_048_576,
                           loadAverage: (TextFile.read("/proc/loadavg") ?? "").split(separator: " ").first
                            .flatMap { Double($0) } ?? 0)
    }
}
