import Console
import Quantization
#if canImport(Glibc)
import Glibc
#endif

/// Why `quantd-bench` stopped.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
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

    /// The measurer's one-line report: seconds, peak RSS bytes, user and system seconds, status.
    var line: String { "\(seconds) \(peakRSSBytes) \(userSeconds) \(systemSeconds) \(status)\n" }

    init(command: [String], seconds: Double, peakRSSBytes: Int, userSeconds: Double, systemSeconds: Double,
         status: Int32) {
        self.command = command
        self.seconds = seconds
        self.peakRSSBytes = peakRSSBytes
        self.userSeconds = userSeconds
        self.systemSeconds = systemSeconds
        self.status = status
    }

    init?(line: String) {
        let f = line.split(separator: " ").map { $0.filter { $0 != "\n" } }
        guard f.count == 5, let s = Double(f[0]), let rss = Int(f[1]), let u = Double(f[2]), let y = Double(f[3]),
              let code = Int32(f[4]) else { return nil }
        self.init(command: [], seconds: s, peakRSSBytes: rss, userSeconds: u, systemSeconds: y, status: code)
    }
    /// CPU time over wall time: how many cores the child kept busy on average.
    var coresBusy: Double { seconds > 0 ? (userSeconds + systemSeconds) / seconds : 0 }
}

/// Runs programs as children with posix_spawn and reaps them with wait4, so that each run's peak RSS and CPU
/// time are its own (Foundation's Process gives neither).
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
        _ = unlink(result)
        _ = try spawn([selfPath, "--measure-child", result, "--"] + argv, log: log)
        guard let line = TextFile.read(result), var run = ChildRun(line: line) else {
            throw BenchError("no measurement of \(argv.joined(separator: " ")):\n" + tail(of: log))
        }
        _ = unlink(result)
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

    /// posix_spawn and wait4: wall time from spawn to reap and the child's rusage. With a `log`, stdin is
    /// /dev/null and stdout and stderr append to the log; without, the child shares this process's stdio.
    static func spawn(_ argv: [String], log: String?) throws(BenchError) -> ChildRun {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let log {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cArgs.append(nil)
        defer { for p in cArgs { free(p) } }
        var pid: pid_t = 0
        let start = now()
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, cArgs, environ)
        guard spawned == 0 else {
            throw BenchError("cannot run \(argv[0]): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            guard errno == EINTR else { throw BenchError("wait4 for \(argv[0]): \(String(cString: strerror(errno)))") }
        }
        let seconds = now() - start
        let signal = status & 0x7f
        return ChildRun(command: argv, seconds: seconds, peakRSSBytes: usage.ru_maxrss * 1024,
                        userSeconds: Self.seconds(usage.ru_utime), systemSeconds: Self.seconds(usage.ru_stime),
                        status: signal == 0 ? (status >> 8) & 0xff : 128 + signal)
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
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// This program's own path (/proc/self/exe, else argv[0]): the measurer it re-executes, and where quantd is
    /// looked for.
    static var selfPath: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if n > 0 { return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        return CommandLine.arguments[0]
    }

    /// Monotonic seconds.
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    private static func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) * 1e-6 }

    static func appendLog(_ log: String, _ text: String) {
        let fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var text = text
        text.withUTF8 { _ = write(fd, $0.baseAddress, $0.count) }
    }

    /// The last lines of a log, for an error message.
    private static func tail(of log: String) -> String {
        let lines = (TextFile.read(log) ?? "").split(separator: "\n", omittingEmptySubsequences: false)
        return lines.suffix(12).joined(separator: "\n")
    }
}

/// Small whole-file reads and writes (logs, /proc files, the JSON report).
enum TextFile {
    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = Glibc.read(fd, &chunk, chunk.count)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func write(_ bytes: [UInt8], to path: String) throws(BenchError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw BenchError("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            guard n > 0 else { throw BenchError("cannot write \(path): \(String(cString: strerror(errno)))") }
            done += n
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
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: name.release) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        let sysname = withUnsafeBytes(of: name.sysname) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        let memKiB = (TextFile.read("/proc/meminfo") ?? "").split(separator: "\n")
            .first { $0.hasPrefix("MemTotal:") }
            .flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
        return MachineInfo(cores: cores, cpuModel: field("model name") ?? "unknown",
                           cpuFeatures: wanted.filter(flags.contains), kernel: "\(sysname) \(release)",
                           kernelVariant: KernelVariant.selectedSummary,
                           memoryGiB: Double(memKiB) / 1_048_576,
                           loadAverage: (TextFile.read("/proc/loadavg") ?? "").split(separator: " ").first
                            .flatMap { Double($0) } ?? 0)
    }
}
