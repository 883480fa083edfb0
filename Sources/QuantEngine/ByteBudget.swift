import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A budget of bytes in flight, shared by every job of a process: a worker takes what its
/// buffers need before it reads, and gives it back when its output is written.
/// A request larger than the whole budget is granted alone (when nothing else is held),
/// so one big tile cannot deadlock the budget.
public final class ByteBudget: @unchecked Sendable {
    // @unchecked: all state is behind `mutex` and `cond`.
    public let capacity: Int
    private var held = 0
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()

    public init(bytes: Int) {
        precondition(bytes > 0, "a budget must be positive")
        capacity = bytes
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&cond, nil)
    }

    deinit {
        pthread_cond_destroy(&cond)
        pthread_mutex_destroy(&mutex)
    }

    /// Blocks until `bytes` fit in the budget.
    public func acquire(_ bytes: Int) {
        pthread_mutex_lock(&mutex)
        while held > 0 && held + bytes > capacity {
            pthread_cond_wait(&cond, &mutex)
        }
        held += bytes
        pthread_mutex_unlock(&mutex)
    }

    public func release(_ bytes: Int) {
        pthread_mutex_lock(&mutex)
        held -= bytes
        precondition(held >= 0, "budget released more than it held")
        pthread_cond_broadcast(&cond)
        pthread_mutex_unlock(&mutex)
    }

    /// Bytes currently held.
    public var inUse: Int {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return held
    }
}
