import Logging
import QuantEngine

/// One configuration key: its name, how a value is checked and stored, how it is read back.
struct ConfigKeySpec: Sendable {
    typealias Refusal = ConfigRefusal
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
