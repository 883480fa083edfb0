import QuantSystem
import ArgumentParser
import FoundationEssentials
import QuantDaemon

extension Quantd {
    /// `quantd run`: the daemon.
    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Watch a spool folder and quantize every checkpoint dropped into its incoming/ folder.",
            discussion: """
                Drop NAME.safetensors (or a folder NAME/ of shards) into SPOOL/incoming/ by renaming it in \
                (cp x SPOOL/incoming/.x.tmp && mv SPOOL/incoming/.x.tmp SPOOL/incoming/x.safetensors). \
                The result appears in SPOOL/out/NAME/. Settings come from the built-in defaults, then \
                --config FILE, then the flags below in order. SIGHUP reloads the file and reopens the log; \
                SIGTERM stops after running jobs finish (within shutdown_grace_seconds).
                """
        )

        @Option(help: "Configuration file (see config/quantd.toml for every key and its default).")
        var config: String?

        @Option(help: "Spool folder (default: $XDG_STATE_HOME/quantd/spool, or ~/.local/state/quantd/spool).")
        var spool: String?

        @Option(help: "JSON Lines log file (default: standard error).")
        var logFile: String?

        @Flag(help: "Rescan on a timer instead of inotify (network filesystems).")
        var poll = false

        @Option(help: "Seconds an entry written in place must stay unchanged before it is taken.")
        var settleSeconds: Double?

        @Option(help: "Jobs at once.")
        var maxJobs: Int?

        @Option(help: "Worker threads per job (0: all cores).")
        var threads: Int?

        @Option(help: "Prometheus textfile to write.")
        var metricsFile: String?

        @Option(name: .customLong("set"), help: ArgumentHelp(
            "Set any configuration key, as in the file (repeatable).", valueName: "KEY=VALUE"))
        var assignments: [String] = []

        func run() throws {
            var overrides: [ConfigOverride] = assignments.map { .assignment($0) }
            if let spool { overrides.append(.flag("--spool", key: "spool", .string(absolute(spool)))) }
            if let logFile { overrides.append(.flag("--log-file", key: "log_file", .string(absolute(logFile)))) }
            if poll { overrides.append(.flag("--poll", key: "poll", .bool(true))) }
            if let settleSeconds {
                overrides.append(.flag("--settle-seconds", key: "settle_seconds", .float(settleSeconds)))
            }
            if let maxJobs { overrides.append(.flag("--max-jobs", key: "max_jobs", .integer(maxJobs))) }
            if let threads { overrides.append(.flag("--threads", key: "quantize.threads", .integer(threads))) }
            if let metricsFile {
                overrides.append(.flag("--metrics-file", key: "metrics_file", .string(absolute(metricsFile))))
            }
            let environment = ProcessInfo.processInfo.environment
            let setup = Daemon.Setup(
                configFile: config.map(absolute), overrides: overrides, environment: environment)
            let code = Daemon.run(setup: setup)
            if code != 0 { throw ExitCode(code) }
        }
    }
}

/// `path` made absolute against the working directory, so that a reload finds the same files.
func absolute(_ path: String) -> String {
    if path.hasPrefix("/") || path.isEmpty { return path }
    guard let cwd = FileSystem.currentDirectory() else { return path }
    return cwd.string + "/" + path
}
