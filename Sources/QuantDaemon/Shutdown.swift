/// The stop after SIGTERM or SIGINT: running jobs may finish for `shutdown_grace_seconds`, then are cancelled
/// (and requeued); a second signal cancels at once. While jobs run, systemd is asked every 5 s for time until
/// the grace ends plus 30 s for the cancelling.
struct Shutdown: Equatable {
    var deadline: Double
    var nextExtend: Double
    var cancelled = false

    enum Action: Equatable {
        case cancel(reason: String)
        /// `EXTEND_TIMEOUT_USEC=`.
        case extendTimeout(microseconds: Int)
    }

    init(now: Double, graceSeconds: Double) {
        deadline = now + graceSeconds
        nextExtend = now
    }

    /// What is due at `now` with `running` jobs, and when to look again.
    mutating func tick(now: Double, running: Int) -> (actions: [Action], wake: Double) {
        var actions: [Action] = []
        if now >= deadline && !cancelled && running > 0 {
            cancelled = true
            actions.append(.cancel(reason: "shutdown_grace_seconds elapsed"))
        }
        if now >= nextExtend && running > 0 {
            actions.append(.extendTimeout(microseconds: Int((max(deadline - now, 0) + 30) * 1_000_000)))
            nextExtend = now + 5
        }
        return (actions, cancelled ? now + 5 : min(deadline, nextExtend))
    }

    /// Another SIGTERM or SIGINT (`signal`) while stopping: cancel now, unless done already or nothing runs.
    mutating func signalledAgain(_ signal: String, running: Int) -> Action? {
        guard running > 0 && !cancelled else { return nil }
        cancelled = true
        return .cancel(reason: "second \(signal)")
    }
}
