/// What may start now: ready entries in arrival order, each unless a backoff holds it, while fewer than
/// `max_jobs` run and it is not already running. The shared byte budget is not a gate here: every running job
/// draws its tiles from the one `ByteBudget` and waits there for bytes, so jobs started together share it
/// rather than take it in turns (a single tile larger than the whole budget is refused by the engine).
struct Admission {
    struct Backoff: Equatable {
        /// Transient failures so far (the next delay doubles with each).
        var attempts: Int
        /// Monotonic time before which the entry is not claimed.
        var until: Double
    }

    private(set) var backoffs: [String: Backoff] = [:]

    /// When `name` may be claimed, if a backoff still holds it at `now`.
    func heldUntil(_ name: String, now: Double) -> Double? {
        guard let wait = backoffs[name], wait.until > now else { return nil }
        return wait.until
    }

    func attempts(_ name: String) -> Int { backoffs[name]?.attempts ?? 0 }

    /// Whether one more job may start, `name`, with `running` jobs in flight.
    static func mayStart(_ name: String, running: some Collection<String>, maxJobs: Int) -> Bool {
        running.count < maxJobs && !running.contains(name)
    }

    /// After a failure `policy` retries: the attempt and its delay from `now`.
    mutating func retry(_ name: String, attempt: Int, delaySeconds: Double, now: Double) {
        backoffs[name] = Backoff(attempts: attempt, until: now + delaySeconds)
    }

    /// Holds `name` until `until` without counting an attempt (its claim failed: the name is still claimed).
    mutating func hold(_ name: String, until: Double) {
        backoffs[name] = Backoff(attempts: attempts(name), until: until)
    }

    /// Committed or quarantined: its history ends.
    mutating func clear(_ name: String) { backoffs[name] = nil }

    /// Backoffs from before a restart (`RetryState`), for entries still in incoming/.
    mutating func restore(_ kept: [String: Backoff], present: Set<String>) {
        for (name, backoff) in kept where present.contains(name) { backoffs[name] = backoff }
    }
}
