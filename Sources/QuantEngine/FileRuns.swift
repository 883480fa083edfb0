import Dispatch
import Synchronization

/// The files (shards) of one job, several at once. Each file runs its own pipeline (workers, ordered writer,
/// input hasher) under the job's shared byte budget, so a sharded checkpoint is no longer one serial stream of
/// hashing and writing: every file's SHA-256 chains run beside the others'. A file's output does not depend on
/// what runs beside it, so the bytes are the same whatever the thread count.
package enum FileRuns {
    /// Files in flight with `threads` workers: a file's serial chains (its writer hashing the output, its hasher
    /// the input: one SHA-256 stream each, 1.4-1.8 GB/s on the machines measured) keep up with about two workers,
    /// so one file runs per pair of workers, and two from 2 threads on: at 2 threads one file at a time left the
    /// cores idle while its chains caught up (4 shards of 2.34 GB on 2 cores, against the same bytes in one file:
    /// 0.98 of its time one at a time, 0.94 two at a time; `scripts/ab-quantize.sh` with `NEW_INPUT`, README).
    package static func width(files: Int, threads: Int) -> Int {
        max(1, min(files, threads < 2 ? 1 : max(2, threads / 2)))
    }

    /// The workers of lane `lane` of `width`: `threads` dealt out so that every thread has a lane.
    static func workers(lane: Int, of width: Int, threads: Int) -> Int {
        max(1, threads / width + (lane < threads % width ? 1 : 0))
    }

    /// Runs `body` for every index in `0..<count`, `width(files: count, threads:)` at once (each on a thread of its
    /// own), in index order of starting, each with its lane's share of `threads` workers. The first failure cancels
    /// the others (through the flag handed to `body`, which is also cancelled with `cancel`); once all have
    /// stopped it is thrown: the first that was not a cancellation.
    static func run<R: Sendable>(
        count: Int, threads: Int, cancel: CancellationFlag?,
        _ body: @escaping @Sendable (_ index: Int, _ workers: Int, _ cancel: CancellationFlag) throws(EngineError) -> R
    ) throws(EngineError) -> [R] {
        let shared = CancellationFlag(parent: cancel)
        let next = Atomic<Int>(0)
        let results = Mutex<[R?]>(Array(repeating: nil, count: count))
        let failures = Mutex<[EngineError]>([])
        let group = DispatchGroup()
        let lanes = width(files: count, threads: threads)
        for lane in 0..<lanes {
            let workers = workers(lane: lane, of: lanes, threads: threads)
            // Serial queues overcommit: each lane gets a thread, as the pipeline's workers do.
            DispatchQueue(label: "quantd.file.\(lane)").async(group: group) {
                while !shared.isCancelled {
                    let index = next.add(1, ordering: .relaxed).oldValue
                    guard index < count else { return }
                    do throws(EngineError) {
                        let result = try body(index, workers, shared)
                        results.withLock { $0[index] = result }
                    } catch {
                        failures.withLock { $0.append(error) }
                        shared.cancel()
                        return
                    }
                }
            }
        }
        group.wait()
        let errors = failures.withLock { $0 }
        if let first = errors.first(where: { $0.kind != .cancelled }) ?? errors.first { throw first }
        if cancel?.isCancelled == true {
            throw EngineError(.cancelled, file: "", reason: "cancelled", stage: "quantize")
        }
        return results.withLock { $0.map { $0! } }
    }
}
