import QuantSystem
import SystemPackage
import Logging
import QuantEngine

/// `quantd run`: watches `incoming/`, claims ready entries, runs the engine, commits or
/// quarantines, and tells the story in JSON Lines. One thread runs the loop below, blocked in
/// poll() on inotify, the signal pipe and the job-completion pipe; jobs run on Dispatch.
public final class Daemon {
    /// Where the configuration came from, kept to reload it on SIGHUP.
    public struct Setup: Sendable {
        public var configFile: String?
        /// Command-line settings, applied over the file in order (`--set KEY=VALUE` and flags).
        public var overrides: [ConfigOverride]
        public var environment: [String: String]

        public init(configFile: String?, overrides: [ConfigOverride], environment: [String: String]) {
            self.configFile = configFile
            self.overrides = overrides
            self.environment = environment
        }
    }

    /// How an entry of incoming/ came to be seen, which decides when it is ready.
    enum Origin: Equatable {
        /// Renamed in: complete at once.
        case renamedIn
        /// Created or written in place and not yet closed by its writer.
        case writing
        /// Closed by its writer, or found by a scan: ready once unchanged for settle_seconds.
        case settling
    }

    struct Candidate {
        var origin: Origin
        var sequence: Int
        var signature: EntryStat?
        var stableSince = 0.0
    }

    struct Backoff {
        var attempts: Int
        var until: Double
    }

    struct Stopping {
        var deadline: Double
        var nextExtend: Double
        var cancelled = false
    }

    private var config: DaemonConfig
    private let setup: Setup
    private let spool: Spool
    private let sink: LogSink
    private var logger: Logger
    private let notifier: Notifier
    private let budget: ByteBudget
    private let signals: SignalPipe
    private let completions: CompletionQueue
    private var watcher: InotifyWatcher?
    /// `locks/<instance>.lock`, held until exit: tells other daemons on the spool this instance is alive.
    private var lock: InstanceLock?

    private var candidates: [String: Candidate] = [:]
    private var sequence = 0
    private var running: [String: RunningJob] = [:]
    private var backoff: [String: Backoff] = [:]
    private var metrics = Metrics()
    private var stopping: Stopping?
    private var nextRescan = 0.0
    private var nextWatchdog: Double?
    private var nextWake = 0.0
    private var lastStatus = ""
    private var metricsWarned = false

    /// Exit codes of `run`, from sysexits(3).
    public enum ExitCode {
        public static let ok: Int32 = 0
        public static let software: Int32 = 70
        public static let cannotCreate: Int32 = 73
        public static let config: Int32 = 78
    }

    private init(config: DaemonConfig, setup: Setup, sink: LogSink, signals: SignalPipe) throws(SystemError) {
        self.config = config
        self.setup = setup
        self.sink = sink
        self.signals = signals
        spool = Spool(root: config.spool, instance: config.instance)
        var logger = Logger(label: "quantd") { _ in JSONLinesLogHandler(sink: sink, level: config.logLevel) }
        logger.logLevel = config.logLevel
        self.logger = logger
        notifier = Notifier(environment: setup.environment)
        budget = ByteBudget(bytes: config.memoryBudgetMiB << 20)
        completions = try CompletionQueue()
    }

    /// Loads the configuration, prepares the spool and runs until SIGTERM or SIGINT.
    /// Returns the process exit code: 0 after a clean stop, 78 for an invalid configuration,
    /// 73 when the spool or the log file cannot be used.
    public static func run(setup: Setup) -> Int32 {
        let config: DaemonConfig
        do {
            config = try DaemonConfig.load(
                file: setup.configFile, overrides: setup.overrides, environment: setup.environment)
        } catch {
            FS.printError("quantd: invalid configuration: \(error)")
            return ExitCode.config
        }
        let sink: LogSink
        do {
            sink = try LogSink(path: config.logFile)
        } catch {
            FS.printError("quantd: cannot open the log file: \(error)")
            return ExitCode.cannotCreate
        }
        let daemon: Daemon
        do {
            let signals = try SignalPipe(signals: [SignalPipe.terminate, SignalPipe.interrupt, SignalPipe.hangUp])
            daemon = try Daemon(config: config, setup: setup, sink: sink, signals: signals)
        } catch {
            FS.printError("quantd: \(error)")
            return ExitCode.software
        }
        return daemon.main()
    }

    private func main() -> Int32 {
        logger.info("started", metadata: [
            "version": .string(QuantEngine.quantdVersion),
            "pid": .stringConvertible(Int(FileSystem.processID)),
            "config_file": .string(setup.configFile ?? ""),
            "config": .dictionary(config.logMetadata),
        ])
        do {
            try spool.prepare()
        } catch {
            logger.critical("start_failed", metadata: ["reason": .string(error.description)])
            if sink.path != nil { FS.printError("quantd: \(error)") }
            return ExitCode.cannotCreate
        }
        do {
            // A restart may overlap the old process's last moments: wait a little for its lock.
            lock = try InstanceLock.acquire(spool.lockPath(config.instance), waitSeconds: 3)
        } catch {
            logger.critical("start_failed", metadata: ["reason": .string(error.description)])
            if sink.path != nil { FS.printError("quantd: \(error)") }
            return ExitCode.cannotCreate
        }
        guard let lock else {
            let reason = "instance '\(config.instance)' is already running on this spool "
                + "(\(spool.lockPath(config.instance)) is locked): give each daemon its own instance"
            logger.critical("start_failed", metadata: ["reason": .string(reason)])
            if sink.path != nil { FS.printError("quantd: \(reason)") }
            return ExitCode.cannotCreate
        }
        lock.describe("pid \(FileSystem.processID) on \(FS.hostName()) since \(FS.timestamp())")
        recover()
        if !config.poll {
            do {
                watcher = try InotifyWatcher(directory: FilePath(spool.incoming))
            } catch {
                logger.critical("start_failed", metadata: ["reason": .string(error.description)])
                if sink.path != nil { FS.printError("quantd: \(error)") }
                return ExitCode.software
            }
        }
        // The watch exists before this scan, so nothing that arrives now is missed.
        let now = FS.monotonicSeconds()
        scan(now: now)
        nextRescan = now + config.rescanSeconds
        logger.info("watching", metadata: [
            "incoming": .string(spool.incoming),
            "mode": .string(config.poll ? "poll" : "inotify"),
            "queued": .stringConvertible(candidates.count),
        ])
        notifier.send("READY=1", "STATUS=" + statusLine())
        if let interval = notifier.watchdogInterval {
            notifier.send("WATCHDOG=1")
            nextWatchdog = now + interval
        }
        loop()
        writeMetrics()
        logger.notice("stopped", metadata: [
            "committed": .stringConvertible(metrics.committed),
            "failed": .stringConvertible(metrics.failed),
            "requeued": .stringConvertible(metrics.requeued),
        ])
        return ExitCode.ok
    }

    // MARK: The loop

    private func loop() {
        while true {
            let now = FS.monotonicSeconds()
            if stopping != nil && running.isEmpty { return }
            nextWake = now + max(config.rescanSeconds, 0.1)
            tickTimers(now: now)
            dispatch(now: now)
            publishStatus()
            waitForWork(until: nextWake)
            for signal in signals.drain() { handle(signal: signal) }
            for completion in completions.take() { finish(completion) }
            if let watcher {
                for event in watcher.readEvents() { handle(event: event) }
            }
        }
    }

    private func schedule(_ time: Double) { nextWake = min(nextWake, time) }

    /// Blocks in poll() until a descriptor is readable or `deadline` passes: no CPU while idle.
    private func waitForWork(until deadline: Double) {
        let descriptors = [signals.readEnd, completions.wake.readEnd] + (watcher.map { [$0.descriptor] } ?? [])
        Poll.waitReadable(descriptors, seconds: deadline - FS.monotonicSeconds())
    }

    private func tickTimers(now: Double) {
        if let next = nextWatchdog, let interval = notifier.watchdogInterval {
            if now >= next {
                notifier.send("WATCHDOG=1")
                nextWatchdog = now + interval
            }
            schedule(nextWatchdog!)
        }
        if stopping == nil && now >= nextRescan {
            recover(atStart: false)
            scan(now: now)
            nextRescan = now + config.rescanSeconds
        }
        schedule(nextRescan)
        if var stop = stopping {
            if now >= stop.deadline && !stop.cancelled && !running.isEmpty {
                stop.cancelled = true
                cancelAll(reason: "shutdown_grace_seconds elapsed")
            }
            if now >= stop.nextExtend && !running.isEmpty {
                // Ask for time until the grace ends, plus what cancelling takes.
                let usec = Int((max(stop.deadline - now, 0) + 30) * 1_000_000)
                notifier.send("EXTEND_TIMEOUT_USEC=\(usec)")
                stop.nextExtend = now + 5
            }
            schedule(stop.cancelled ? now + 5 : min(stop.deadline, stop.nextExtend))
            stopping = stop
        }
    }

    // MARK: Watching

    private func handle(event: WatchEvent) {
        let now = FS.monotonicSeconds()
        switch event {
        case .overflow:
            logger.warning("rescan", metadata: ["reason": .string("inotify queue overflow")])
            scan(now: now)
        case .movedIn(let raw):
            guard let name = acceptable(raw) else { return }
            note(name, origin: .renamedIn, now: now, override: true)
        case .created(let raw, let isDirectory):
            guard let name = acceptable(raw) else { return }
            // inotify does not see writes inside a new folder: its stability decides.
            note(name, origin: isDirectory ? .settling : .writing, now: now, override: true)
        case .modified(let raw):
            // Written again after a close (create, close, reopen, write): wait for the next close.
            guard let name = acceptable(raw), candidates[name]?.origin != .writing else { return }
            note(name, origin: .writing, now: now, override: true)
        case .closedWrite(let raw):
            guard let name = acceptable(raw) else { return }
            note(name, origin: .settling, now: now, override: true)
        case .removed(let raw):
            if let name = String(validating: raw, as: UTF8.self) { candidates[name] = nil }
        }
    }

    /// A name worth a look: valid UTF-8 (otherwise quarantined at once) and not ignored.
    private func acceptable(_ raw: [UInt8]) -> String? {
        guard let name = String(validating: raw, as: UTF8.self) else {
            quarantineBadName(raw)
            return nil
        }
        guard !Spool.isIgnored(name), stopping == nil else { return nil }
        return name
    }

    private func note(_ name: String, origin: Origin, now: Double, override: Bool) {
        if var known = candidates[name] {
            guard override else { return }
            known.origin = origin
            known.signature = nil
            known.stableSince = now
            candidates[name] = known
        } else {
            sequence += 1
            candidates[name] = Candidate(origin: origin, sequence: sequence, stableSince: now)
        }
    }

    /// Reads incoming/ whole: new entries start their stability window, vanished ones are forgotten.
    private func scan(now: Double) {
        let names: [[UInt8]]
        do {
            names = try FS.listNames(spool.incoming)
        } catch {
            logger.error("scan_failed", metadata: ["reason": .string(error.description)])
            return
        }
        var present = Set<String>()
        for raw in names {
            guard let name = acceptable(raw) else { continue }
            present.insert(name)
            note(name, origin: .settling, now: now, override: false)
        }
        for name in candidates.keys where !present.contains(name) { candidates[name] = nil }
    }

    // MARK: Claiming

    private func dispatch(now: Double) {
        guard stopping == nil else { return }
        for name in candidates.keys.sorted(by: { candidates[$0]!.sequence < candidates[$1]!.sequence }) {
            guard var candidate = candidates[name] else { continue }
            if let wait = backoff[name], wait.until > now {
                schedule(wait.until)
                continue
            }
            let path = spool.incoming + "/" + name
            guard let entry = try? FS.lstatEntry(path) else {
                candidates[name] = nil
                continue
            }
            switch entry.kind {
            case .file, .directory: break
            default:
                let what = entry.kind.rawValue
                quarantineFromIncoming(name, kind: "notRegular", stage: "scan",
                                       reason: "a \(what) is not a checkpoint; it was not opened or followed")
                continue
            }
            if name.utf8.count > spool.maxNameBytes {
                quarantineFromIncoming(name, kind: "nameTooLong", stage: "scan",
                                       reason: "the name is \(name.utf8.count) bytes; with instance "
                                        + "'\(config.instance)' names of at most \(spool.maxNameBytes) bytes fit "
                                        + "the claim, staging and record names (255 bytes each)")
                continue
            }
            if entry.kind == .directory, let count = try? FS.listNames(path, limit: config.maxFolderEntries + 1).count,
               count > config.maxFolderEntries {
                quarantineFromIncoming(name, kind: "tooManyEntries", stage: "scan",
                                       reason: "the folder holds more than \(config.maxFolderEntries) entries "
                                        + "(limits.max_folder_entries)")
                continue
            }
            switch candidate.origin {
            case .renamedIn: break
            case .writing: continue
            case .settling:
                let signature = entry.kind == .directory ? (try? FS.treeSignature(path)) : entry
                if signature != candidate.signature {
                    candidate.signature = signature
                    candidate.stableSince = now
                    candidates[name] = candidate
                }
                let readyAt = candidate.stableSince + config.settleSeconds
                if now < readyAt {
                    schedule(readyAt)
                    continue
                }
            }
            if entry.kind == .file && !name.hasSuffix(".safetensors") {
                quarantineFromIncoming(name, kind: "notSafetensors", stage: "scan",
                                       reason: "a file must be named *.safetensors (or be a folder of shards)")
                continue
            }
            guard running.count < config.maxJobs, running[name] == nil else { continue }
            start(name, sourceBytes: entry.kind == .directory ? candidate.signature?.size ?? 0 : entry.size)
        }
    }

    private func start(_ name: String, sourceBytes: Int) {
        do {
            guard try spool.claim(name) else {
                candidates[name] = nil
                logger.debug("claim_lost", metadata: ["job": .string(name)])
                return
            }
        } catch {
            // EEXIST: the same name is still claimed (a job of it running): try again later.
            logger.warning("claim_failed", metadata: ["job": .string(name), "reason": .string(error.description)])
            backoff[name] = Backoff(attempts: backoff[name]?.attempts ?? 0, until: FS.monotonicSeconds() + 5)
            return
        }
        candidates[name] = nil
        let stem = Spool.stem(of: name)
        let outputName = spool.outputName(for: stem, reserved: Set(running.values.map(\.outputName)))
        if outputName != stem {
            logger.notice("output_renamed", metadata: [
                "job": .string(name), "wanted": .string("out/" + stem), "output": .string("out/" + outputName),
                "reason": .string("out/\(stem) exists; nothing is overwritten"),
            ])
        }
        logger.info("claimed", metadata: [
            "job": .string(name), "claim": .string(spool.claimPath(name)),
            "output": .string(spool.out + "/" + outputName), "bytes": .stringConvertible(sourceBytes),
        ])
        do {
            try spool.writeJournal(name, output: outputName)
        } catch {
            logger.warning("journal_failed", metadata: [
                "job": .string(name), "reason": .string(error.description),
                "risk": .string("a crash right after the commit would quantize it again, under another name"),
            ])
        }
        let job = RunningJob(name: name, outputName: outputName, cancel: CancellationFlag(),
                             startedAt: FS.monotonicSeconds(), sourceBytes: sourceBytes)
        running[name] = job
        JobRunner.start(
            name: name, input: spool.claimPath(name), output: spool.out + "/" + outputName,
            options: config.quantize, limits: config.limits, budget: budget, stagingTag: config.instance,
            cancel: job.cancel,
            progress: ProgressLog(logger: logger, interval: config.progressSeconds, job: name),
            completions: completions)
    }

    // MARK: Finishing

    private func finish(_ completion: Completion) {
        guard let job = running.removeValue(forKey: completion.name) else { return }
        let name = completion.name
        metrics.busySeconds += completion.seconds
        switch completion.result {
        case .success(let manifest):
            backoff[name] = nil
            var figures: Logger.Metadata = [
                "job": .string(name),
                "output": .string(spool.out + "/" + job.outputName),
                "source_bytes": .stringConvertible(manifest.totals.sourceBytes),
                "compressed_bytes": .stringConvertible(manifest.totals.compressedBytes),
                "ratio": .stringConvertible(manifest.totals.compressionRatio),
                "seconds": .stringConvertible(manifest.timings.totalSeconds),
                "tensors": .stringConvertible(manifest.totals.tensors),
                "quantized": .stringConvertible(manifest.totals.quantized),
            ]
            if let worst = manifest.totals.worstTensor { figures["worst_tensor"] = .string(worst) }
            if let sqnr = manifest.totals.worstSqnrDb { figures["worst_sqnr_db"] = .stringConvertible(sqnr) }
            do {
                let moved = try spool.finish(name, keepInput: config.keepInputs)
                figures["input"] = .string(moved ?? "deleted")
            } catch {
                figures["input"] = .string(spool.claimPath(name))
                logger.error("finish_failed", metadata: ["job": .string(name), "reason": .string(error.description)])
            }
            metrics.committed += 1
            metrics.inputBytes += manifest.totals.sourceBytes
            metrics.outputBytes += manifest.totals.compressedBytes
            metrics.lastCommitUnixSeconds = FS.unixSeconds()
            logger.info("committed", metadata: figures)
            spool.removeJournal(name)
        case .failure(let error):
            if error.kind == .cancelled {
                requeue(name, reason: "cancelled at shutdown", error: error, delay: nil)
            } else if error.isTransient || (error.kind == .cannotCreateOutput && error.errno == Errno.fileExists.rawValue) {
                let attempts = (backoff[name]?.attempts ?? 0) + 1
                let delay = error.isTransient
                    ? min(config.retryInitialSeconds * Double(1 << min(attempts - 1, 30)), config.retryMaxSeconds)
                    : 0
                backoff[name] = Backoff(attempts: attempts, until: FS.monotonicSeconds() + delay)
                requeue(name, reason: error.reason, error: error, delay: delay)
            } else {
                backoff[name] = nil
                let record = FailureRecord(
                    name: name, reason: error.description, kind: error.kind.rawValue, stage: error.stage,
                    tensor: error.tensor, errno: error.errno, instance: config.instance)
                quarantine(from: spool.claimPath(name), name: name, record: record)
                spool.removeJournal(name)
            }
        }
        writeMetrics()
    }

    private func requeue(_ name: String, reason: String, error: EngineError, delay: Double?) {
        var figures: Logger.Metadata = [
            "job": .string(name), "reason": .string(reason), "stage": .string(error.stage),
        ]
        if let errno = error.errno {
            figures["errno"] = .stringConvertible(Int(errno))
            figures["error"] = .string(Errno(rawValue: errno).description)
        }
        if let delay {
            figures["retry_in_seconds"] = .stringConvertible(delay)
            figures["attempt"] = .stringConvertible(backoff[name]?.attempts ?? 1)
        }
        do {
            let used = try spool.requeue(name)
            if used != name { figures["requeued_as"] = .string(used) }
            metrics.requeued += 1
            logger.notice("requeued", metadata: figures)
        } catch {
            figures["reason"] = .string(reason + "; requeue failed: \(error) (requeued at next start)")
            logger.error("requeue_failed", metadata: figures)
        }
    }

    private func quarantine(from path: String, name: String, record: FailureRecord) {
        quarantine(raw: Array(path.utf8), name: name, record: record)
    }

    private func quarantine(raw: [UInt8], name: String, record: FailureRecord) {
        var figures: Logger.Metadata = [
            "job": .string(name), "reason": .string(record.reason), "kind": .string(record.kind),
            "stage": .string(record.stage),
        ]
        if let tensor = record.tensor { figures["tensor"] = .string(tensor) }
        do {
            let used = try spool.quarantine(from: raw, as: name, record: record)
            figures["moved_to"] = .string(spool.failed + "/" + used)
            figures["record"] = .string(spool.failed + "/" + used + ".error.json")
            metrics.failed += 1
            logger.error("failed", metadata: figures)
        } catch where error.errno == .noSuchFileOrDirectory {
            logger.debug("claim_lost", metadata: ["job": .string(name)])
        } catch {
            figures["reason"] = .string(record.reason + "; quarantine failed: \(error)")
            logger.error("quarantine_failed", metadata: figures)
        }
    }

    private func quarantineFromIncoming(_ name: String, kind: String, stage: String, reason: String) {
        candidates[name] = nil
        let record = FailureRecord(name: name, reason: reason, kind: kind, stage: stage, instance: config.instance)
        quarantine(from: spool.incoming + "/" + name, name: name, record: record)
    }

    /// A name that is not UTF-8 cannot be logged or recorded as it is: it is quarantined under
    /// its lossy rendering (U+FFFD for the bad bytes).
    private func quarantineBadName(_ raw: [UInt8]) {
        let lossy = String(decoding: raw, as: UTF8.self)
        let record = FailureRecord(name: lossy, reason: "the file name is not valid UTF-8", kind: "badName",
                                   stage: "scan", instance: config.instance)
        quarantine(raw: Array(spool.incoming.utf8) + [UInt8(ascii: "/")] + raw, name: lossy, record: record)
    }

    // MARK: Signals and stopping

    private func handle(signal: Int32) {
        switch signal {
        case SignalPipe.hangUp: reload()
        case SignalPipe.terminate, SignalPipe.interrupt: beginStopping(signal: SignalPipe.name(signal))
        default: break
        }
    }

    private func beginStopping(signal: String) {
        let now = FS.monotonicSeconds()
        if stopping != nil {
            if !running.isEmpty && stopping?.cancelled == false {
                stopping?.cancelled = true
                cancelAll(reason: "second \(signal)")
            }
            return
        }
        stopping = Stopping(deadline: now + config.shutdownGraceSeconds, nextExtend: now)
        candidates.removeAll()
        logger.notice("stopping", metadata: [
            "signal": .string(signal), "running": .stringConvertible(running.count),
            "grace_seconds": .stringConvertible(config.shutdownGraceSeconds),
        ])
        notifier.send("STOPPING=1", "STATUS=stopping: \(running.count) job(s) finishing")
    }

    private func cancelAll(reason: String) {
        logger.warning("cancelling", metadata: [
            "jobs": .array(running.keys.sorted().map { .string($0) }), "reason": .string(reason),
        ])
        for job in running.values { job.cancel.cancel() }
    }

    /// SIGHUP: reopen the log (logrotate moved it away), then reload the configuration; an
    /// invalid one is refused with a warning and the running one stays.
    private func reload() {
        do {
            try sink.reopen(path: config.logFile)
        } catch {
            FS.printError("quantd: cannot reopen the log: \(error)")
        }
        let loaded: DaemonConfig
        do {
            loaded = try DaemonConfig.load(
                file: setup.configFile, overrides: setup.overrides, environment: setup.environment)
        } catch {
            logger.warning("reload_failed", metadata: [
                "reason": .string(error.description), "kept": .string("the running configuration"),
            ])
            return
        }
        var next = loaded
        var needsRestart: [Logger.MetadataValue] = []
        if next.spool != config.spool { needsRestart.append("spool"); next.spool = config.spool }
        if next.instance != config.instance { needsRestart.append("instance"); next.instance = config.instance }
        if next.poll != config.poll { needsRestart.append("poll"); next.poll = config.poll }
        if next.memoryBudgetMiB != config.memoryBudgetMiB {
            needsRestart.append("memory_budget_mib")
            next.memoryBudgetMiB = config.memoryBudgetMiB
        }
        if next.logFile != config.logFile {
            do {
                try sink.reopen(path: next.logFile)
            } catch {
                logger.warning("reload_failed", metadata: [
                    "reason": .string("log_file: \(error)"), "kept": .string("the running configuration"),
                ])
                return
            }
        }
        config = next
        logger.logLevel = config.logLevel
        nextRescan = min(nextRescan, FS.monotonicSeconds() + config.rescanSeconds)
        var figures: Logger.Metadata = ["config": .dictionary(config.logMetadata)]
        if !needsRestart.isEmpty { figures["needs_restart"] = .array(needsRestart) }
        logger.notice("reloaded", metadata: figures)
    }

    // MARK: Status and metrics

    private func statusLine() -> String {
        "\(candidates.count) queued, \(running.count) running, \(metrics.committed) committed, "
            + "\(metrics.failed) failed"
    }

    private func publishStatus() {
        let status = stopping == nil ? statusLine() : "stopping: \(running.count) job(s) finishing"
        guard status != lastStatus else { return }
        lastStatus = status
        notifier.send("STATUS=" + status)
        writeMetrics()
    }

    private func writeMetrics() {
        guard let path = config.metricsFile else { return }
        metrics.queueLength = candidates.count
        metrics.running = running.count
        do {
            try metrics.write(to: path, instance: config.instance)
            metricsWarned = false
        } catch {
            if !metricsWarned {
                logger.warning("metrics_failed", metadata: ["reason": .string(error.description)])
            }
            metricsWarned = true
        }
    }

    // MARK: Recovery

    private func recover(atStart: Bool = true) {
        let recovery = spool.recover(keepInputs: config.keepInputs, atStart: atStart)
        for owner in recovery.deadInstances {
            logger.notice("instance_dead", metadata: [
                "instance": .string(owner), "lock": .string(spool.lockPath(owner)),
                "reason": .string("its lock is free: its claims and staging are taken back"),
            ])
        }
        for (owner, from, to) in recovery.requeued {
            metrics.requeued += 1
            logger.notice("requeued", metadata: [
                "job": .string(to), "claim": .string(spool.active + "/" + from), "instance": .string(owner),
                "reason": .string(owner == config.instance ? "claimed by this instance before a restart"
                                    : "claimed by instance '\(owner)', which is dead"),
            ])
        }
        for (owner, name, output, input) in recovery.finished {
            metrics.committed += 1
            logger.notice("commit_recovered", metadata: [
                "job": .string(name), "output": .string(spool.out + "/" + output), "instance": .string(owner),
                "input": .string(input ?? "deleted"),
                "reason": .string("committed before a crash; its manifest matches the claimed input"),
            ])
        }
        for name in recovery.removedStaging {
            logger.notice("staging_removed", metadata: [
                "path": .string(spool.out + "/" + name), "reason": .string("left by an interrupted job"),
            ])
        }
        for name in recovery.recordsWritten {
            logger.warning("record_recovered", metadata: [
                "path": .string(spool.failed + "/" + name + ".error.json"),
                "reason": .string("a quarantined entry had no record (a crash between the move and the record)"),
            ])
        }
        for problem in recovery.problems {
            logger.error("recovery_failed", metadata: ["reason": .string(problem)])
        }
    }
}
