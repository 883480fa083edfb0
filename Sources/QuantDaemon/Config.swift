import QuantSystem
import Logging
import QuantEngine
import SafeTensors

/// Everything `quantd run` can be told, with its built-in default. The file format is a strict
/// subset of TOML (see `ConfigFile`); `config/quantd.toml` documents every key.
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
        for entry in try ConfigFile.parse(fileText, source: source) {
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
        let value = (try? ConfigFile.parseValue(text)) ?? .string(text)
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

/// One configuration key: its name, how a value is checked and stored, how it is read back.
struct ConfigKeySpec: Sendable {
    struct Refusal: Error { var reason: String }
    var name: String
    var apply: @Sendable (inout DaemonConfig, ConfigValue) throws(Refusal) -> Void
    var read: @Sendable (DaemonConfig) -> Logger.MetadataValue
}

extension DaemonConfig {
    typealias Refusal = ConfigKeySpec.Refusal

    private static func string(_ v: ConfigValue) throws(Refusal) -> String {
        guard case .string(let s) = v else { throw Refusal(reason: "expected a quoted string") }
        return s
    }

    private static func path(_ v: ConfigValue) throws(Refusal) -> String {
        let s = try string(v)
        guard s.hasPrefix("/") else { throw Refusal(reason: "expected an absolute path, got \"\(s)\"") }
        return s
    }

    private static func optionalPath(_ v: ConfigValue) throws(Refusal) -> String? {
        try string(v).isEmpty ? nil : path(v)
    }

    private static func bool(_ v: ConfigValue) throws(Refusal) -> Bool {
        guard case .bool(let b) = v else { throw Refusal(reason: "expected true or false") }
        return b
    }

    private static func int(_ v: ConfigValue, _ range: ClosedRange<Int>) throws(Refusal) -> Int {
        guard case .integer(let i) = v else { throw Refusal(reason: "expected an integer") }
        guard range.contains(i) else {
            throw Refusal(reason: "must be between \(range.lowerBound) and \(range.upperBound), got \(i)")
        }
        return i
    }

    /// An integer or a float, as a Double.
    private static func numeric(_ v: ConfigValue) -> Double? {
        switch v {
        case .integer(let i): Double(i)
        case .float(let f): f
        default: nil
        }
    }

    private static func seconds(_ v: ConfigValue, minimum: Double) throws(Refusal) -> Double {
        guard let d = numeric(v) else { throw Refusal(reason: "expected a number of seconds") }
        guard d.isFinite, d >= minimum, d <= 86_400 * 7 else {
            throw Refusal(reason: "must be between \(minimum) and 604800 seconds, got \(d)")
        }
        return d
    }

    /// One of an enumeration's raw values.
    private static func choice<E: RawRepresentable & CaseIterable>(_ v: ConfigValue, _: E.Type) throws(Refusal) -> E
        where E.RawValue == String
    {
        let s = try string(v)
        guard let e = E(rawValue: s) else {
            let names = E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
            throw Refusal(reason: "expected one of \(names), got \"\(s)\"")
        }
        return e
    }

    private static func real(_ v: ConfigValue, _ range: ClosedRange<Double>) throws(Refusal) -> Double {
        guard let d = numeric(v) else { throw Refusal(reason: "expected a number") }
        guard d.isFinite, range.contains(d) else {
            throw Refusal(reason: "must be between \(range.lowerBound) and \(range.upperBound), got \(d)")
        }
        return d
    }

    private static func patterns(_ v: ConfigValue) throws(Refusal) -> [String] {
        guard case .strings(let list) = v else { throw Refusal(reason: "expected an array of quoted strings") }
        for pattern in list {
            do {
                _ = try Regex(pattern)
            } catch {
                throw Refusal(reason: "invalid regular expression \"\(pattern)\"")
            }
        }
        return list
    }

    private static func number(_ d: Double) -> Logger.MetadataValue { .stringConvertible(d) }
    private static func number(_ i: Int) -> Logger.MetadataValue { .stringConvertible(i) }
    private static func flag(_ b: Bool) -> Logger.MetadataValue { .stringConvertible(b) }

    /// Every key, in the order of `config/quantd.toml`.
    static let keys: [ConfigKeySpec] = [
        ConfigKeySpec(name: "spool", apply: { c, v throws(Refusal) in c.spool = try path(v) },
                      read: { .string($0.spool) }),
        ConfigKeySpec(name: "instance", apply: { c, v throws(Refusal) in
            let s = try string(v)
            guard isValidInstance(s) else {
                throw Refusal(reason: "expected 1 to 64 letters, digits, '-' or '_', got \"\(s)\"")
            }
            c.instance = s
        }, read: { .string($0.instance) }),
        ConfigKeySpec(name: "poll", apply: { c, v throws(Refusal) in c.poll = try bool(v) },
                      read: { flag($0.poll) }),
        ConfigKeySpec(name: "settle_seconds",
                      apply: { c, v throws(Refusal) in c.settleSeconds = try seconds(v, minimum: 0) },
                      read: { number($0.settleSeconds) }),
        ConfigKeySpec(name: "rescan_seconds",
                      apply: { c, v throws(Refusal) in c.rescanSeconds = try seconds(v, minimum: 0.1) },
                      read: { number($0.rescanSeconds) }),
        ConfigKeySpec(name: "max_jobs", apply: { c, v throws(Refusal) in c.maxJobs = try int(v, 1...64) },
                      read: { number($0.maxJobs) }),
        ConfigKeySpec(name: "memory_budget_mib",
                      apply: { c, v throws(Refusal) in c.memoryBudgetMiB = try int(v, 16...(1 << 24)) },
                      read: { number($0.memoryBudgetMiB) }),
        ConfigKeySpec(name: "keep_inputs", apply: { c, v throws(Refusal) in c.keepInputs = try bool(v) },
                      read: { flag($0.keepInputs) }),
        ConfigKeySpec(name: "shutdown_grace_seconds",
                      apply: { c, v throws(Refusal) in c.shutdownGraceSeconds = try seconds(v, minimum: 0) },
                      read: { number($0.shutdownGraceSeconds) }),
        ConfigKeySpec(name: "retry_initial_seconds",
                      apply: { c, v throws(Refusal) in c.retryInitialSeconds = try seconds(v, minimum: 0.1) },
                      read: { number($0.retryInitialSeconds) }),
        ConfigKeySpec(name: "retry_max_seconds",
                      apply: { c, v throws(Refusal) in c.retryMaxSeconds = try seconds(v, minimum: 0.1) },
                      read: { number($0.retryMaxSeconds) }),
        ConfigKeySpec(name: "log_file", apply: { c, v throws(Refusal) in c.logFile = try optionalPath(v) },
                      read: { .string($0.logFile ?? "") }),
        ConfigKeySpec(name: "log_level", apply: { c, v throws(Refusal) in
            let s = try string(v)
            guard let level = Logger.Level(rawValue: s) else {
                throw Refusal(reason: "expected one of trace, debug, info, notice, warning, error, critical")
            }
            c.logLevel = level
        }, read: { .string($0.logLevel.rawValue) }),
        ConfigKeySpec(name: "progress_seconds",
                      apply: { c, v throws(Refusal) in c.progressSeconds = try seconds(v, minimum: 0.1) },
                      read: { number($0.progressSeconds) }),
        ConfigKeySpec(name: "metrics_file",
                      apply: { c, v throws(Refusal) in c.metricsFile = try optionalPath(v) },
                      read: { .string($0.metricsFile ?? "") }),
        ConfigKeySpec(name: "quantize.scheme", apply: { c, v throws(Refusal) in
            let s = try string(v)
            guard let scheme = QuantizeOptions.Scheme(name: s) else {
                throw Refusal(reason: "expected \"W8A16\" or \"W8A8\", got \"\(s)\"")
            }
            c.quantize.scheme = scheme
            if !c.refined.contains("granularity") { c.quantize.granularity = scheme.defaults.granularity }
            if !c.refined.contains("group_size") { c.quantize.groupSize = scheme.defaults.groupSize }
        }, read: { .string($0.quantize.scheme.rawValue) }),
        ConfigKeySpec(name: "quantize.granularity", apply: { c, v throws(Refusal) in
            let s = try string(v)
            guard let g = QuantizeOptions.Granularity(rawValue: s) else {
                throw Refusal(reason: "expected \"tensor\", \"channel\" or \"group\", got \"\(s)\"")
            }
            c.quantize.granularity = g
            c.refined.insert("granularity")
        }, read: { .string($0.quantize.granularity.rawValue) }),
        ConfigKeySpec(name: "quantize.calibration",
                      apply: { c, v throws(Refusal) in
                          c.quantize.calibration = try choice(v, QuantizeOptions.Calibration.self)
                      },
                      read: { .string($0.quantize.calibration.rawValue) }),
        ConfigKeySpec(name: "quantize.percentile",
                      apply: { c, v throws(Refusal) in c.quantize.percentile = try real(v, QuantizeOptions.Ranges.percentile) },
                      read: { number($0.quantize.percentile) }),
        ConfigKeySpec(name: "quantize.scale_dtype",
                      apply: { c, v throws(Refusal) in
                          c.quantize.scaleDtype = try choice(v, QuantizeOptions.ScaleDtype.self)
                      },
                      read: { .string($0.quantize.scaleDtype.rawValue) }),
        ConfigKeySpec(name: "quantize.min_sqnr",
                      apply: { c, v throws(Refusal) in
                          let db = try real(v, 0...200)
                          c.quantize.minSQNR = db > 0 ? db : nil
                      },
                      read: { number($0.quantize.minSQNR ?? 0) }),
        ConfigKeySpec(name: "quantize.fallback",
                      apply: { c, v throws(Refusal) in
                          c.quantize.fallback = try choice(v, QuantizeOptions.Fallback.self)
                      },
                      read: { .string($0.quantize.fallback.rawValue) }),
        ConfigKeySpec(name: "quantize.min_elements",
                      apply: { c, v throws(Refusal) in c.quantize.minElements = try int(v, QuantizeOptions.Ranges.minElements) },
                      read: { number($0.quantize.minElements) }),
        ConfigKeySpec(name: "quantize.group_size",
                      apply: { c, v throws(Refusal) in
                          c.quantize.groupSize = try int(v, QuantizeOptions.Ranges.groupSize)
                          c.refined.insert("group_size")
                      },
                      read: { number($0.quantize.groupSize) }),
        ConfigKeySpec(name: "quantize.symmetric",
                      apply: { c, v throws(Refusal) in c.quantize.symmetric = try bool(v) },
                      read: { flag($0.quantize.symmetric) }),
        ConfigKeySpec(name: "quantize.level",
                      apply: { c, v throws(Refusal) in c.quantize.level = try int(v, QuantizeOptions.Ranges.level) },
                      read: { number($0.quantize.level) }),
        ConfigKeySpec(name: "quantize.threads",
                      apply: { c, v throws(Refusal) in c.quantize.threads = try int(v, QuantizeOptions.Ranges.threads) },
                      read: { number($0.quantize.threads) }),
        ConfigKeySpec(name: "quantize.include",
                      apply: { c, v throws(Refusal) in c.quantize.include = try patterns(v) },
                      read: { .array($0.quantize.include.map { .string($0) }) }),
        ConfigKeySpec(name: "quantize.exclude",
                      apply: { c, v throws(Refusal) in c.quantize.exclude = try patterns(v) },
                      read: { .array($0.quantize.exclude.map { .string($0) }) }),
        ConfigKeySpec(name: "quantize.keep_non_finite",
                      apply: { c, v throws(Refusal) in c.quantize.keepNonFinite = try bool(v) },
                      read: { flag($0.quantize.keepNonFinite) }),
        ConfigKeySpec(name: "limits.max_header_bytes",
                      apply: { c, v throws(Refusal) in c.limits.maxHeaderBytes = try int(v, 64...(1 << 31)) },
                      read: { number($0.limits.maxHeaderBytes) }),
        ConfigKeySpec(name: "limits.max_tensors",
                      apply: { c, v throws(Refusal) in c.limits.maxTensors = try int(v, 1...(1 << 24)) },
                      read: { number($0.limits.maxTensors) }),
        ConfigKeySpec(name: "limits.max_rank",
                      apply: { c, v throws(Refusal) in c.limits.maxRank = try int(v, 1...64) },
                      read: { number($0.limits.maxRank) }),
        ConfigKeySpec(name: "limits.max_folder_entries",
                      apply: { c, v throws(Refusal) in c.maxFolderEntries = try int(v, 1...(1 << 20)) },
                      read: { number($0.maxFolderEntries) }),
    ]
}

/// The configuration file: a strict subset of TOML. Lines are blank, `# comments`, a table
/// header `[quantize]`, or `key = value` with a value that is a basic "string", an integer, a
/// float, true/false, or a one-line array of strings. Anything else is refused with its line.
/// Why not a TOML library: the file is a flat list of scalars; this subset needs no
/// dependency, reads with any TOML parser, and can name the key and line of every mistake.
enum ConfigFile {
    struct Entry: Equatable {
        var key: String
        var value: ConfigValue
        var line: Int
    }

    static func parse(_ text: String, source: String) throws(ConfigError) -> [Entry] {
        var entries: [Entry] = []
        var table = ""
        var seen = Set<String>()
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNumber = index + 1
            func refuse(_ key: String?, _ reason: String) -> ConfigError {
                ConfigError(key: key, reason: reason, source: source, line: lineNumber)
            }
            let line = String(rawLine).trimmed
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("[") {
                var header = Substring(line)
                if let hash = header.firstIndex(of: "#") { header = header[..<hash] }
                let name = header.trimmed
                guard name.hasSuffix("]"), name.count > 2 else { throw refuse(nil, "malformed table header") }
                table = String(name.dropFirst().dropLast()).trimmed
                guard table == "quantize" || table == "limits" else { throw refuse(nil, "unknown table [\(table)]") }
                continue
            }
            guard let equals = line.firstIndex(of: "=") else { throw refuse(nil, "expected key = value") }
            let bare = String(line[..<equals]).trimmed
            guard !bare.isEmpty, bare.unicodeScalars.allSatisfy({ isBareKeyScalar($0) }) else {
                throw refuse(nil, "invalid key \"\(bare)\"")
            }
            let key = table.isEmpty ? bare : table + "." + bare
            guard seen.insert(key).inserted else { throw refuse(key, "set twice") }
            let valueText = String(line[line.index(after: equals)...]).trimmed
            do {
                entries.append(Entry(key: key, value: try parseValue(valueText), line: lineNumber))
            } catch {
                throw refuse(key, error.reason)
            }
        }
        return entries
    }

    private static func isBareKeyScalar(_ s: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(s) || ("A"..."Z").contains(s) || ("0"..."9").contains(s) || s == "_" || s == "-"
    }

    /// One value, optionally followed by a `# comment`.
    static func parseValue(_ text: String) throws(ConfigKeySpec.Refusal) -> ConfigValue {
        var scanner = Scanner(Array(text.unicodeScalars))
        let value = try scanner.value()
        scanner.skipSpaces()
        guard scanner.atEnd || scanner.peek == "#" else {
            throw ConfigKeySpec.Refusal(reason: "unexpected text after the value")
        }
        return value
    }

    private struct Scanner {
        typealias Refusal = ConfigKeySpec.Refusal
        let scalars: [Unicode.Scalar]
        var position = 0

        init(_ scalars: [Unicode.Scalar]) { self.scalars = scalars }

        var atEnd: Bool { position >= scalars.count }
        var peek: Unicode.Scalar? { atEnd ? nil : scalars[position] }

        mutating func skipSpaces() {
            while let c = peek, c == " " || c == "\t" { position += 1 }
        }

        mutating func value() throws(Refusal) -> ConfigValue {
            skipSpaces()
            guard let c = peek else { throw Refusal(reason: "missing value") }
            if c == "\"" { return .string(try string()) }
            if c == "[" { return .strings(try array()) }
            var word = ""
            while let c = peek, c != " ", c != "\t", c != "#", c != ",", c != "]" {
                word.unicodeScalars.append(c)
                position += 1
            }
            if word == "true" { return .bool(true) }
            if word == "false" { return .bool(false) }
            let digits = String(word.filter { $0 != "_" })
            if let i = Int(digits) { return .integer(i) }
            if word.contains(where: { $0.isNumber }), let d = Double(digits), d.isFinite { return .float(d) }
            throw Refusal(reason: "expected a quoted string, a number, true, false or [\"...\"], got \(word)")
        }

        mutating func string() throws(Refusal) -> String {
            position += 1
            var out = ""
            while let c = peek {
                position += 1
                switch c {
                case "\"": return out
                case "\\":
                    guard let e = peek else { break }
                    position += 1
                    switch e {
                    case "\"": out += "\""
                    case "\\": out += "\\"
                    case "n": out += "\n"
                    case "t": out += "\t"
                    case "u":
                        let hex = String(String.UnicodeScalarView(scalars[position..<min(position + 4, scalars.count)]))
                        guard hex.count == 4, let v = UInt32(hex, radix: 16), let s = Unicode.Scalar(v) else {
                            throw Refusal(reason: "invalid \\u escape")
                        }
                        out.unicodeScalars.append(s)
                        position += 4
                    default: throw Refusal(reason: "invalid escape \\\(e)")
                    }
                default:
                    if c.value < 0x20 { throw Refusal(reason: "control character in a string") }
                    out.unicodeScalars.append(c)
                }
            }
            throw Refusal(reason: "unterminated string")
        }

        mutating func array() throws(Refusal) -> [String] {
            position += 1
            var items: [String] = []
            while true {
                skipSpaces()
                guard let c = peek else { throw Refusal(reason: "unterminated array") }
                if c == "]" { position += 1; return items }
                guard c == "\"" else { throw Refusal(reason: "arrays hold quoted strings only") }
                items.append(try string())
                skipSpaces()
                if peek == "," { position += 1 } else if peek != "]" {
                    throw Refusal(reason: "expected , or ] in the array")
                }
            }
        }
    }
}

extension StringProtocol {
    var trimmed: String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" && $0 != "\r" }) else { return "" }
        let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" && $0 != "\r" })!
        return String(String.UnicodeScalarView(scalars[first...last]))
    }
}
