import QuantSystem
import SystemPackage
import Logging
import QuantEngine
import Quantization

/// `quantd run`: watches `incoming/`, claims ready entries, runs the engine, commits or
/// quarantines, and tells the story in JSON Lines. One thread runs the loop below, blocked in
/// poll() on inotify, the signal pipe and the job-completion pipe; jobs run on Dispatch. What to do is decided
/// by values without I/O (`Readiness`, `Intake`, `Admission`, `RetryPolicy`, `RecoveryPlan`, `Shutdown`,
/// `Reload`); this class feeds them the clock and the facts and carries out their answers.
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

    /// Entries of incoming/ not yet claimed, and when each is ready.
    private var readiness = Readiness()
    private var running: [String: RunningJob] = [:]
    /// Backoffs of entries that failed, kept across restarts in `retryState`.
    private var admission = Admission()
    private var retryState: RetryStateFile
    private var metrics = Metrics()
    private var stopping: Shutdown?
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
        retryState = RetryStateFile(path: spool.retryStatePath)
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
            "kernels": .string(KernelVariant.selectedSummary),
            "pid": .stringConvertible(Int(FileSystem.processID)),
            "config_file": .string(setup.configFile ?? ""),
            "config": .dictionary(config.logMetadata),
        ])
        do {
            try spool.prepare()
            // A restart may overlap the old process's last moments: wait a little for its lock.
            lock = try InstanceLock.acquire(spool.lockPath(config.instance), waitSeconds: 3)
        } catch {
            return startFailed("\(error)", ExitCode.cannotCreate)
        }
        guard let lock else {
            return startFailed("instance '\(config.instance)' is already running on this spool "
                + "(\(spool.lockPath(config.instance)) is locked): give each daemon its own instance",
                ExitCode.cannotCreate)
        }
        lock.describe("pid \(FileSystem.processID) on \(FS.hostName()) since \(FS.timestamp())")
        recover(now: FS.monotonicSeconds())
        if !config.poll {
            do {
                watcher = try InotifyWatcher(directory: FilePath(spool.incoming))
            } catch {
                return startFailed(error.description, ExitCode.software)
            }
        }
        // The watch exists before this scan, so nothing that arrives now is missed.
        let now = FS.monotonicSeconds()
        scan(now: now)
        loadRetryState(now: now)
        nextRescan = now + config.rescanSeconds
        logger.info("watching", metadata: [
            "incoming": .string(spool.incoming),
            "mode": .string(config.poll ? "poll" : "inotify"),
            "queued": .stringConvertible(readiness.count),
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

    /// Logs `start_failed` (and says it on stderr too when the log goes to a file); returns `code`.
    private func startFailed(_ reason: String, _ code: Int32) -> Int32 {
        logger.critical("start_failed", metadata: ["reason": .string(reason)])
        if sink.path != nil { FS.printError("quantd: \(reason)") }
        return code
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
            recover(atStart: false, now: now)
            scan(now: now)
            nextRescan = now + config.rescanSeconds
        }
        schedule(nextRescan)
        if var stop = stopping {
            let (actions, wake) = stop.tick(now: now, running: running.count)
            stopping = stop
            for action in actions { perform(action) }
            schedule(wake)
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
            readiness.movedIn(name, now: now)
        case .created(let raw, let isDirectory):
            guard let name = acceptable(raw) else { return }
            readiness.created(name, isDirectory: isDirectory, now: now)
        case .modified(let raw):
            guard let name = acceptable(raw) else { return }
            readiness.modified(name, now: now)
        case .closedWrite(let raw):
            guard let name = acceptable(raw) else { return }
            readiness.closedWrite(name, now: now)
        case .removed(let raw):
            if let name = String(validating: raw, as: UTF8.self) { readiness.removed(name) }
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

    /// Reads incoming/ whole: new entries start their stability window, vanished ones are forgotten.
    private func scan(now: Double) {
        let names: [[UInt8]]
        do {
            names = try FS.listNames(spool.incoming)
        } catch {
            logger.error("scan_failed", metadata: ["reason": .string(error.description)])
            return
        }
        readiness.scanned(names.compactMap(acceptable), now: now)
    }

    // MARK: Claiming

    private func dispatch(now: Double) {
        guard stopping == nil else { return }
        for name in readiness.inArrivalOrder where readiness.origin(of: name) != nil {
            if let until = admission.heldUntil(name, now: now) {
                schedule(until)
                continue
            }
            let path = spool.incoming + "/" + name
            guard let entry = try? FS.lstatEntry(path) else {
                readiness.removed(name)
                continue
            }
            if let refusal = Intake.refusal(
                name: name, kind: entry.kind, maxNameBytes: spool.maxNameBytes, instance: config.instance,
                maxFolderEntries: config.maxFolderEntries,
                folderEntries: { try? FS.listNames(path, limit: config.maxFolderEntries + 1).count }) {
                quarantineFromIncoming(name, refusal)
                continue
            }
            let signature: Entry?
            switch readiness.verdict(name, now: now, settleSeconds: config.settleSeconds, signature: {
                entry.kind == .directory ? (try? FS.treeSignature(path)) : entry
            }) {
            case .waiting(let until):
                if let until { schedule(until) }
                continue
            case .ready(let seen):
                signature = seen
            }
            if let refusal = Intake.refusalWhenReady(name: name, kind: entry.kind) {
                quarantineFromIncoming(name, refusal)
                continue
            }
            guard Admission.mayStart(name, running: running.keys, maxJobs: config.maxJobs) else { continue }
            start(name, sourceBytes: entry.kind == .directory ? signature?.size ?? 0 : entry.size)
        }
    }

    private func start(_ name: String, sourceBytes: Int) {
        do {
            guard try spool.claim(name) else {
                readiness.removed(name)
                logger.debug("claim_lost", metadata: ["job": .string(name)])
                return
            }
        } catch {
            // EEXIST: the same name is still claimed (a job of it running): try again later.
            logger.warning("claim_failed", metadata: ["job": .string(name), "reason": .string(error.description)])
            admission.hold(name, until: FS.monotonicSeconds() + 5)
            saveRetryState()
            return
        }
        readiness.removed(name)
        let stem = Spool.stem(of: name)
        let outputName = spool.outputName(for: stem, reserved: Set(running.values.map(\.outputName)))
        if outputName != stem {
            logger.notice("output_renamed", metadata: [
                "job": .string(name), "wanted": .string("out/" + stem), "output": .string("out/" + outputName),
                "reason": .string("out/\(stem) exists; nothing is overwritten"),
            ])
        }
        logger.info("claimed", metadata: JobEvents.claimed(name, claim: spool.claimPath(name),
                                                            output: spool.out + "/" + outputName, bytes: sourceBytes))
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
            progress: ProgressLog(logger: logger, interval: config.progressSeconds, job: name), logger: logger,
            completions: completions)
    }

    // MARK: Finishing

    private func finish(_ completion: Completion) {
        guard let job = running.removeValue(forKey: completion.name) else { return }
        let name = completion.name
        metrics.busySeconds += completion.seconds
        switch completion.result {
        case .success(let manifest):
            admission.clear(name)
            var figures = JobEvents.committed(name, output: spool.out + "/" + job.outputName, manifest: manifest)
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
            switch retryPolicy.decide(RetryPolicy.Failure(error), previousAttempts: admission.attempts(name)) {
            case .requeue:
                requeue(name, reason: "cancelled at shutdown", error: error, retry: nil)
            case .retry(let attempt, let delay):
                admission.retry(name, attempt: attempt, delaySeconds: delay, now: FS.monotonicSeconds())
                requeue(name, reason: error.reason, error: error, retry: (attempt, delay))
            case .quarantine:
                admission.clear(name)
                let record = FailureRecord(
                    name: name, reason: error.description, kind: error.kind.rawValue, stage: error.stage,
                    tensor: error.tensor, errno: error.errno, instance: config.instance)
                quarantine(from: spool.claimPath(name), name: name, record: record)
                spool.removeJournal(name)
            }
        }
        saveRetryState()
        writeMetrics()
    }

    private var retryPolicy: RetryPolicy {
        RetryPolicy(initialSeconds: config.retryInitialSeconds, maxSeconds: config.retryMaxSeconds)
    }

    private func requeue(_ name: String, reason: String, error: EngineError, retry: (attempt: Int, delay: Double)?) {
        var figures = JobEvents.requeued(name, reason: reason, error: error, retry: retry)
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
        var figures = JobEvents.failed(name, record: record)
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

    private func quarantineFromIncoming(_ name: String, _ refusal: Intake.Refusal) {
        readiness.removed(name)
        let record = FailureRecord(name: name, reason: refusal.reason, kind: refusal.kind, stage: "scan",
                                   instance: config.instance)
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
        if var stop = stopping {
            let action = stop.signalledAgain(signal, running: running.count)
            stopping = stop
            if let action { perform(action) }
            return
        }
        stopping = Shutdown(now: now, graceSeconds: config.shutdownGraceSeconds)
        readiness.removeAll()
        logger.notice("stopping", metadata: [
            "signal": .string(signal), "running": .stringConvertible(running.count),
            "grace_seconds": .stringConvertible(config.shutdownGraceSeconds),
        ])
        notifier.send("STOPPING=1", "STATUS=stopping: \(running.count) job(s) finishing")
    }

    private func perform(_ action: Shutdown.Action) {
        switch action {
        case .cancel(let reason):
            logger.warning("cancelling", metadata: [
                "jobs": .array(running.keys.sorted().map { .string($0) }), "reason": .string(reason),
            ])
            for job in running.values { job.cancel.cancel() }
        case .extendTimeout(let microseconds):
            notifier.send("EXTEND_TIMEOUT_USEC=\(microseconds)")
        }
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
        let (next, needsRestart) = Reload.merge(running: config, loaded: loaded)
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
        if !needsRestart.isEmpty { figures["needs_restart"] = .array(needsRestart.map { .string($0) }) }
        logger.notice("reloaded", metadata: figures)
    }

    // MARK: Status and metrics

    private func statusLine() -> String {
        "\(readiness.count) queued, \(running.count) running, \(metrics.committed) committed, "
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
        metrics.queueLength = readiness.count
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

    /// Puts right what a dead daemon (or this one before a restart) left; entries taken back from active/ were
    /// complete when claimed: they are ready at once, without the settle window.
    private func recover(atStart: Bool = true, now: Double) {
        let recovery = spool.recover(keepInputs: config.keepInputs, atStart: atStart)
        for (_, _, name) in recovery.requeued { readiness.recovered(name, now: now) }
        metrics.requeued += recovery.requeued.count
        metrics.committed += recovery.finished.count
        for line in recovery.lines(spool: spool) {
            logger.log(level: line.level, "\(line.event)", metadata: line.metadata)
        }
    }

    // MARK: Retry state

    /// Backoffs from before a restart, honoured for entries still in incoming/; a file that cannot be read is
    /// removed with a `retry_state` warning (those entries start with no backoff).
    private func loadRetryState(now: Double) {
        switch retryState.load(now: now, unixNow: FS.unixSeconds(), maxWait: max(config.retryMaxSeconds, 5)) {
        case nil:
            return
        case .failure(let corrupt):
            logger.warning("retry_state", metadata: [
                "path": .string(retryState.path), "reason": .string(corrupt.description),
                "kept": .string("nothing: every entry starts with no backoff"),
            ])
        case .success(let state):
            admission.restore(state.backoffs, present: Set(readiness.entries.keys))
            for (name, backoff) in admission.backoffs.sorted(by: { $0.key < $1.key }) {
                logger.notice("retry_state", metadata: [
                    "job": .string(name), "attempt": .stringConvertible(backoff.attempts),
                    "retry_in_seconds": .stringConvertible(max(backoff.until - now, 0)),
                    "reason": .string("a backoff from before the restart"),
                ])
            }
            saveRetryState()
        }
    }

    private func saveRetryState() {
        do {
            try retryState.save(admission.backoffs, now: FS.monotonicSeconds(), unixNow: FS.unixSeconds())
        } catch {
            logger.warning("retry_state", metadata: [
                "path": .string(retryState.path), "reason": .string(error.description),
                "risk": .string("a restart now would forget the backoffs"),
            ])
        }
    }
}
