internal import Glibc
public import SystemPackage

/// A program run as a child: started with `posix_spawn` (this process's environment) and reaped with `wait4`,
/// which gives what it used: CPU time and peak RSS, which Foundation's `Process` does not report.
public struct ChildProcess: Sendable {
    public let id: Int32

    /// How a child ended, and its resource usage from `wait4`.
    public struct Exit: Sendable, Equatable {
        /// The exit status, or 128 + the number of the signal that ended it (as a shell reports it).
        public var status: Int32
        public var userSeconds: Double
        public var systemSeconds: Double
        /// `ru_maxrss` (Linux counts KiB), in bytes.
        public var peakRSSBytes: Int
    }

    /// Starts `argv` (`argv[0]` an absolute path). With `output`, stdin is /dev/null and stdout and stderr append
    /// to `output` (created with mode 0644); without, the child shares this process's stdio.
    public static func spawn(_ argv: [String], output: FilePath? = nil) throws(SystemError) -> ChildProcess {
        precondition(!argv.isEmpty, "spawn needs a program")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let output {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            _ = output.withPlatformString {
                posix_spawn_file_actions_addopen(&actions, 1, $0, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            }
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        var arguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        arguments.append(nil)
        defer { for pointer in arguments { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, argv[0], &actions, nil, arguments, environ)
        guard result == 0 else {
            throw SystemError("posix_spawn", path: FilePath(argv[0]), errno: Errno(rawValue: result))
        }
        return ChildProcess(id: pid)
    }

    /// Waits for the child to end (`wait4`, retried on EINTR).
    public func wait() throws(SystemError) -> Exit {
        var status: Int32 = 0
        var usage = rusage()
        _ = try retrying("wait4 for process \(id)", nil) { wait4(id, &status, 0, &usage) }
        let signal = status & 0x7f
        return Exit(status: signal == 0 ? (status >> 8) & 0xff : 128 + signal,
                    userSeconds: Self.seconds(usage.ru_utime), systemSeconds: Self.seconds(usage.ru_stime),
                    peakRSSBytes: usage.ru_maxrss * 1024)
    }

    /// Sends signal `number` (`kill`); false when the child is gone.
    @discardableResult
    public func signal(_ number: Int32) -> Bool { kill(id, number) == 0 }

    /// User plus system CPU seconds a running process has used so far, from /proc/PID/stat (fields 14 and 15, in
    /// clock ticks); nil when it cannot be read.
    public static func cpuSeconds(of id: Int32) -> Double? {
        guard let bytes = try? FileSystem.readFile(FilePath("/proc/\(id)/stat"), limit: 1 << 16) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    private static func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) * 1e-6 }
}
