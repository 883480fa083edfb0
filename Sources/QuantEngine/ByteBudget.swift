import QuantSystem
/// A budget of bytes in flight, shared by every job of a process: a worker takes what its
/// buffers need before it reads, and gives it back when its output is written.
/// A request larger than the whole budget is granted alone (when nothing else is held),
/// so one big tile cannot deadlock the budget.
public final class ByteBudget: Sendable {
    public let capacity: Int
    private let monitor = Monitor()
    /// Bytes held; read and written only under `monitor`.
    nonisolated(unsafe) private var held = 0

    public init(bytes: Int) {
        precondition(bytes > 0, "a budget must be positive")
        capacity = bytes
    }

    /// Blocks until `bytes` fit in the budget.
    public func acquire(_ bytes: Int) {
        monitor.withLock {
            while held > 0 && held + bytes > capacity { monitor.wait() }
            held += bytes
        }
    }

    public func release(_ bytes: Int) {
        monitor.withLock {
            held -= bytes
            precondition(held >= 0, "budget released more than it held")
            monitor.broadcast()
        }
    }

    /// Bytes currently held.
    public var inUse: Int { monitor.withLock { held } }
}
