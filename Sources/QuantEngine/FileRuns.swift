import Dispatch
import Synchronization

/// The files (shards) of one job, several at once. Each file runs its own pipeline (workers, ordered writer,
/// input hasher) under the job's shared byte budget, so a sharded checkpoint is no longer one serial stream of
/// hashing and writing: every file's SHA-256 chains run beside the others'. A file's output does not depend on
/// what runs beside it, so the bytes are the same whatever the thread count.
enum FileRuns {
    /// Files in flight with `threads` workers: a file's serial chains (its writer hashing the output, its hasher
    /// the input: one SHA-256 stream each, ~1.4 GB/s here) keep up with about two workers, so the workers are
    /// dealt out in pairs, one file per pair; one file at a time below 3 threads.
    static func width(files: Int, threads: Int) -> Int { max(1, min(files, (threads + 1) / 2)) }

    /// Runs `body` for every index in `0..<count`, at most `width` at once (each on a thread of its own), in index
    /// order of starting. The first failure cancels the others (through the flag handed to `body`, which is also
    /// cancelled with `cancel`); once all have stopped it is thrown: the first that was not a cancellation.
    static func run<R: Sendable>(
        count: Int, width: Int, cancel: CancellationFlag?,
        _ body: @escaping @Sendable (_ index: Int, _ cancel: CancellationFlag) throws(EngineError) -> R
    ) throws(EngineError) -> [R] {
        let shared = CancellationFlag(parent: cancel)
        let next = Atomic<Int>(0)
        let results = Mutex<[R?]>(Array(repeating: nil, count: count))
        let failures = Mutex<[EngineError]>([])
        let group = DispatchGroup()
        for lane in 0..<max(1, min(width, count)) {
            // Serial queues overcommit: each lane gets a thread, as the pipeline's workers do.
            DispatchQueue(label: "quantd.file.\(lane)").async(group: group) {
                while !shared.isCancelled {
                    let index = next.add(1, ordering: .relaxed).oldValue
                    guard index < count else { return }
                    do throws(EngineError) {
                        let result = try body(index, shared)
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
