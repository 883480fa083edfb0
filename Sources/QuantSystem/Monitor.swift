internal import Glibc

/// A mutex with one condition variable: the pipeline's shared state lives behind it, and every change
/// that someone may wait for is followed by `broadcast()`.
public final class Monitor: @unchecked Sendable {
    // @unchecked: the pthread objects are heap-allocated once and only used through lock/unlock.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let cond: UnsafeMutablePointer<pthread_cond_t>

    public init() {
        mutex = .allocate(capacity: 1)
        cond = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        cond.deallocate()
    }

    public func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits for a broadcast; call only inside `withLock`.
    public func wait() { pthread_cond_wait(cond, mutex) }

    public func broadcast() { pthread_cond_broadcast(cond) }
}
