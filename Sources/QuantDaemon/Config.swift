import QuantSystem
import Logging
import QuantEngine
import SafeTensors

/// Everything `quantd run` can be told, with its built-in default. The file format is a strict
/// subset of TOML (see `TOMLSubset`), every key is checked by its entry in `DaemonConfig.keys`
/// (ConfigKeys.swift); `config/quantd.toml` documents every key.
public struct DaemonConfig: Sendable, Equatable {
    /// The spool folder holding incoming/, active/, out/, done/ and failed/.
    public var spool: String
    /// Rescan on a timer instead of inotify (network filesystems, where inotify sees nothing).
    public var poll = false
    /// How long an entry written in place must stay unchanged before it is taken.
    public var settleSeconds = 5.0
    /// Full rescan period; in poll mode also the polling period.
    public var rescanSeconds = 60.0
    /// Jobs at once.
    public var maxJobs = 1
    /// Bytes in flight across all jobs, in MiB.
    public var memoryBudgetMiB = 2048
    /// Move inputs to done/ after commit (true) or delete them (false).
    public var keepInputs = true
    /// How long running jobs may go on after SIGTERM before they are cancelled and requeued.
    public var shutdownGraceSeconds = 60.0
    /// First delay before a job that failed for a transient reason is tried again; doubles each time.
    public var retryInitialSeconds = 30.0
    /// Upper bound of that delay.
    public var retryMaxSeconds = 1800.0
    /// JSON Lines log file; nil writes to standard error.
    public var logFile: String?
    public var logLevel: Logger.Level = .info
    /// Seconds between `progress` lines of a running job.
    public var progressSeconds = 5.0
    /// Prometheus textfile; nil writes none.
    public var metricsFile: String?
    /// Names this daemon's claims in active/ (`active/<instance>.<NAME>`), so that several daemons
    /// can share a spool and each requeues only its own claims at start.
    public var instance: String
    /// How checkpoints are quantized (the `[quantize]` table). `scheme` sets the preset's granularity and group
    /// size unless `granularity` or `group_size` are given too, wherever they stand.
    public var quantize = QuantizeOptions()
    /// The `[quantize]` refinements set explicitly, which `scheme` leaves as they are.
    var refined = Refinements()
    /// Bounds on what one input's headers may make the daemon allocate (the `[limits]` table): header
    /// bytes, tensors per file and rank. A tensor row (or header) needing more bytes at once than the whole
    /// memory budget is refused too (the engine checks its plan against `memory_budget_mib`).
    public var limits = DaemonConfig.defaultLimits
    /// Entries a folder input may hold (shards and side files): each shard is an open file and a header.
    public var maxFolderEntries = 1024

    /// The built-in header bounds: the reference reader's 100 MB header, at most 100 000 tensors per file
    /// and rank 16.
    public static let defaultLimits: HeaderLimits = {
        var limits = HeaderLimits()
        limits.maxHeaderBytes = 100_000_000
        limits.maxTensors = 100_000
        limits.maxRank = 16
        return limits
    }()

    /// The built-in defaults: a spool under `$XDG_STATE_HOME` (or `~/.local/state`), so that it
    /// works without root.
    public init(environment: [String: String]) {
        let stateHome = environment["XDG_STATE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (environment["HOME"] ?? "/tmp") + "/.local/state"
        spool = stateHome + "/quantd/spool"
        let host = FS.hostName().split(separator: ".").first.map(String.init) ?? "quantd"
        instance = Self.isValidInstance(host) ? host : "quantd"
    }

    static func isValidInstance(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_"
        }
    }

    /// Applies `key = value`, checking the value; the error names the key and the reason.
    public mutating func set(_ key: String, _ value: ConfigValue) throws(ConfigError) {
        guard let spec = Self.keys.first(where: { $0.name == key }) else {
            throw ConfigError(key: key, reason: "unknown key")
        }
        do {
            try spec.apply(&self, value)
        } catch {
            throw ConfigError(key: key, reason: error.reason)
        }
    }

    /// Parses a whole file's text and applies it over `self`.
    public mutating func apply(fileText: String, source: String) throws(ConfigError) {
        for entry in try TOMLSubset.parse(fileText, source: source) {
            do {
                try set(entry.key, entry.value)
            } catch {
                var located = error
                located.source = source
                located.line = entry.line
                throw located
            }
        }
    }

    /// Applies `KEY=VALUE` from the command line (`--set`); VALUE is a TOML value, or a bare word
    /// taken as a string.
    public mutating func apply(assignment: String) throws(ConfigError) {
        guard let equals = assignment.firstIndex(of: "=") else {
            throw ConfigError(key: assignment, reason: "expected KEY=VALUE", source: "--set")
        }
        let key = String(assignment[..<equals]).trimmed
        let text = String(assignment[assignment.index(after: equals)...]).trimmed
        let value = (try? TOMLSubset.parseValue(text)) ?? .string(text)
        do {
            try set(key, value)
        } catch {
            var located = error
            located.source = "--set"
            throw located
        }
    }

    /// Loads the defaults, then `file` when given, then the command-line overrides in order.
    public static func load(
        file: String?, overrides: [ConfigOverride], environment: [String: String]
    ) throws(ConfigError) -> DaemonConfig {
        var config = DaemonConfig(environment: environment)
        if let file {
            let bytes: [UInt8]
            do {
                bytes = try FS.readFile(file, limit: 1 << 20)
            } catch {
                throw ConfigError(key: nil, reason: error.description, source: file)
            }
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw ConfigError(key: nil, reason: "not UTF-8 text", source: file)
            }
            try config.apply(fileText: text, source: file)
        }
        for override in overrides {
            switch override {
            case .assignment(let text):
                try config.apply(assignment: text)
            case .flag(let name, let key, let value):
                do {
                    try config.set(key, value)
                } catch {
                    var located = error
                    located.source = name
                    throw located
                }
            }
        }
        // The ranges and combinations of the [quantize] keys are the engine's, checked once for flags and keys alike.
        do throws(EngineError) { try config.quantize.validate() } catch {
            let flag = String(error.file.drop { $0 == "-" }.map { $0 == "-" ? "_" : $0 })
            let key = "quantize." + (flag == "asymmetric" ? "symmetric" : flag)
            throw ConfigError(key: key, reason: error.reason, source: file)
        }
        return config
    }

    /// The configuration as figures for the `started` log line.
    public var logMetadata: Logger.Metadata {
        var figures: Logger.Metadata = [:]
        for spec in Self.keys { figures[spec.name] = spec.read(self) }
        return figures
    }
}

/// Which keys were given, not what they hold: two configurations with the same values are equal however they
/// were written.
struct Refinements: Sendable, Equatable {
    private var keys: Set<String> = []
    func contains(_ key: String) -> Bool { keys.contains(key) }
    mutating func insert(_ key: String) { keys.insert(key) }
    static func == (_: Refinements, _: Refinements) -> Bool { true }
}

/// A setting from the command line, applied over the file.
public enum ConfigOverride: Sendable, Equatable {
    /// `--set KEY=VALUE`.
    case assignment(String)
    /// A dedicated flag (`--spool DIR` gives `.flag("--spool", key: "spool", .string(DIR))`).
    case flag(String, key: String, ConfigValue)
}

/// A value in the configuration file.
public enum ConfigValue: Sendable, Equatable {
    case string(String)
    case integer(Int)
    case float(Double)
    case bool(Bool)
    case strings([String])
}

/// Why one value was refused, before the key, file and line are known.
struct ConfigRefusal: Error, Equatable {
    var reason: String
}

/// Why a configuration was refused: the key (when there is one), the reason, and where.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var key: String?
    public var reason: String
    public var source: String?
    public var line: Int?

    public init(key: String?, reason: String, source: String? = nil, line: Int? = nil) {
        self.key = key
        self.reason = reason
        self.source = source
        self.line = line
    }

    public var description: String {
        var text = ""
        if let source { text += source + (line.map { ":\($0)" } ?? "") + ": " }
        if let key { text += "key '\(key)': " }
        return text + reason
    }
}
