import QuantSystem
import Dispatch
import Logging
import QuantEngine
import SafeTensors
import Synchronization

/// One job handed to the engine, as the main loop sees it.
struct RunningJob {
    /// The entry name in incoming/ (also the `job` field of the log).
    var name: String
    /// The folder name under out/.
    var outputName: String
    var cancel: CancellationFlag
    var startedAt: Double
    var sourceBytes: Int
}

/// What a job thread hands back to the main loop.
struct Completion: Sendable {
    var name: String
    var result: Result<Manifest, EngineError>
    var seconds: Double
}

/// Finished jobs waiting for the main loop, which a job thread wakes through the pipe.
final class CompletionQueue: Sendable {
    private let items = Mutex<[Completion]>([])
    let wake: WakePipe

    init() throws(SystemError) { wake = try WakePipe() }

    func push(_ completion: Completion) {
        items.withLock { $0.append(completion) }
        wake.wake()
    }

    func take() -> [Completion] {
        wake.drain()
        return items.withLock { items in
            defer { items.removeAll() }
            return items
        }
    }
}

/// Logs `progress` lines for one job, at most every `interval` seconds.
final class ProgressLog: Sendable {
    private let last = Mutex<Double>(0)
    private let logger: Logger
    private let interval: Double
    private let job: String

    init(logger: Logger, interval: Double, job: String) {
        self.logger = logger
        self.interval = interval
        self.job = job
        last.withLock { $0 = FS.monotonicSeconds() }
    }

    func report(_ progress: Progress) {
        let now = FS.monotonicSeconds()
        let due = last.withLock { last in
            guard now - last >= interval else { return false }
            last = now
            return true
        }
        guard due else { return }
        var figures: Logger.Metadata = [
            "job": .string(job),
            "tensors_done": .stringConvertible(progress.tensorsDone),
            "tensors_total": .stringConvertible(progress.tensorsTotal),
            "bytes_done": .stringConvertible(progress.bytesDone),
            "bytes_total": .stringConvertible(progress.bytesTotal),
            "mb_per_s": .stringConvertible(progress.bytesPerSecond / 1e6),
            "elapsed_seconds": .stringConvertible(progress.elapsedSeconds),
        ]
        if let eta = progress.etaSeconds { figures["eta_seconds"] = .stringConvertible(eta) }
        logger.info("progress", metadata: figures)
    }
}

enum JobRunner {
    /// Runs the blocking engine on a Dispatch queue (never on a Swift-concurrency thread) and
    /// pushes the outcome to `completions`.
    static func start(
        name: String, input: String, output: String, options: QuantizeOptions, limits: HeaderLimits,
        budget: ByteBudget, stagingTag: String, cancel: CancellationFlag, progress: ProgressLog, logger: Logger,
        completions: CompletionQueue
    ) {
        DispatchQueue.global(qos: .utility).async {
            let started = FS.monotonicSeconds()
            let result: Result<Manifest, EngineError>
            do throws(EngineError) {
                result = .success(try Engine.quantize(
                    input: input, output: output, options: options, limits: limits, budget: budget,
                    cancel: cancel, stagingTag: stagingTag, maxUnitBytes: budget.capacity, sourceName: name,
                    resume: ResumePolicy(), resumed: { logger.notice("resumed", metadata: JobEvents.resumed(name, output: output, report: $0)) },
                    progress: { progress.report($0) }))
            } catch {
                result = .failure(error)
            }
            completions.push(Completion(name: name, result: result, seconds: FS.monotonicSeconds() - started))
        }
    }
}
