import Foundation

/// A mutex with one condition variable (Foundation's `NSCondition`): the pipeline's shared state lives behind
/// it, and every change that someone may wait for is followed by `broadcast()`.
final class Monitor: @unchecked Sendable {
    // @unchecked: NSCondition is thread-safe; it is only used through lock/unlock/wait/broadcast.
    private let condition = NSCondition()

    func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        condition.lock()
        defer { condition.unlock() }
        return try body()
    }

    /// Waits for a broadcast; call only inside `withLock`.
    func wait() { condition.wait() }

    func broadcast() { condition.broadcast() }
}
