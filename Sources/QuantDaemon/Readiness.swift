import QuantSystem
/// When an entry of incoming/ is ready to be claimed, from what was seen of it: how it arrived (inotify
/// events, scans, recovery), and its signature (kind, size, mtime; a folder's summed over its tree) at each
/// look. A value with no clock and no I/O: the loop passes the time and the facts, and schedules its next wake
/// from the verdict.
struct Readiness {
    /// How an entry came to be seen, which decides when it is ready.
    enum Origin: Equatable {
        /// Renamed in: complete at once.
        case renamedIn
        /// Taken back from active/ (this instance before a restart, or a dead one): it was complete when it was
        /// claimed, so it is ready at once, without the settle window.
        case recovered
        /// Created or written in place and not yet closed by its writer: never ready until closed.
        case writing
        /// Closed by its writer, or found by a scan: ready once unchanged for settle_seconds.
        case settling
    }

    struct Entry: Equatable {
        var origin: Origin
        /// Arrival order: claims go oldest first.
        var sequence: Int
        var signature: QuantSystem.Entry?
        var stableSince: Double
    }

    /// What the loop does with an entry now.
    enum Verdict: Equatable {
        /// Claim it; `signature` is the last one seen (nil when none was needed).
        case ready(signature: QuantSystem.Entry?)
        /// Not yet; look again at `until` (nil: only an event can change that).
        case waiting(until: Double?)
    }

    private(set) var entries: [String: Entry] = [:]
    private var sequence = 0

    var count: Int { entries.count }

    func origin(of name: String) -> Origin? { entries[name]?.origin }

    /// Names in the order they arrived.
    var inArrivalOrder: [String] {
        entries.sorted { $0.value.sequence < $1.value.sequence }.map(\.key)
    }

    mutating func movedIn(_ name: String, now: Double) { note(name, .renamedIn, now: now, override: true) }

    /// inotify does not see writes inside a new folder: a folder created in place waits for its stability.
    mutating func created(_ name: String, isDirectory: Bool, now: Double) {
        note(name, isDirectory ? .settling : .writing, now: now, override: true)
    }

    /// Written again after a close (create, close, reopen, write): wait for the next close.
    mutating func modified(_ name: String, now: Double) {
        guard entries[name]?.origin != .writing else { return }
        note(name, .writing, now: now, override: true)
    }

    mutating func closedWrite(_ name: String, now: Double) { note(name, .settling, now: now, override: true) }

    mutating func recovered(_ name: String, now: Double) { note(name, .recovered, now: now, override: true) }

    mutating func removed(_ name: String) { entries[name] = nil }

    mutating func removeAll() { entries.removeAll() }

    /// A whole read of incoming/ (start, rescan, inotify overflow): new names start their stability window,
    /// known ones keep what events told of them, vanished ones are forgotten.
    mutating func scanned(_ present: [String], now: Double) {
        for name in present { note(name, .settling, now: now, override: false) }
        let kept = Set(present)
        for name in entries.keys where !kept.contains(name) { entries[name] = nil }
    }

    private mutating func note(_ name: String, _ origin: Origin, now: Double, override: Bool) {
        if var known = entries[name] {
            guard override else { return }
            known.origin = origin
            known.signature = nil
            known.stableSince = now
            entries[name] = known
        } else {
            sequence += 1
            entries[name] = Entry(origin: origin, sequence: sequence, signature: nil, stableSince: now)
        }
    }

    /// Whether `name` may be claimed at `now`. `signature` is read only for a settling entry: a change restarts
    /// its window of `settleSeconds`.
    mutating func verdict(_ name: String, now: Double, settleSeconds: Double, signature: () -> QuantSystem.Entry?)
        -> Verdict
    {
        guard var entry = entries[name] else { return .waiting(until: nil) }
        switch entry.origin {
        case .renamedIn, .recovered:
            return .ready(signature: entry.signature)
        case .writing:
            return .waiting(until: nil)
        case .settling:
            let seen = signature()
            if seen != entry.signature {
                entry.signature = seen
                entry.stableSince = now
                entries[name] = entry
            }
            let readyAt = entry.stableSince + settleSeconds
            return now < readyAt ? .waiting(until: readyAt) : .ready(signature: entry.signature)
        }
    }
}
