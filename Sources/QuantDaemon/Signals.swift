internal import Glibc

/// Write end of the self-pipe, read by the signal handler (which may run on any thread).
nonisolated(unsafe) private var signalPipeWriteEnd: Int32 = -1

/// Turns SIGTERM, SIGINT and SIGHUP into bytes on a pipe that the main loop polls: the handler
/// only writes one byte, which is async-signal-safe, whatever thread the kernel picked.
final class SignalPipe {
    let readEnd: Int32

    init(signals: [Int32]) throws(SystemError) {
        var fds: [Int32] = [-1, -1]
        try makePipe(&fds)
        readEnd = fds[0]
        signalPipeWriteEnd = fds[1]
        signal(SIGPIPE, SIG_IGN)
        // A parent may have started us with these blocked (the mask is inherited through exec).
        var unblock = sigset_t()
        sigemptyset(&unblock)
        for number in signals { sigaddset(&unblock, number) }
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        for number in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                let saved = errno
                var byte = UInt8(truncatingIfNeeded: number)
                _ = write(signalPipeWriteEnd, &byte, 1)
                errno = saved
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(number, &action, nil)
        }
    }

    /// The signals received since the last call, in order.
    func drain() -> [Int32] {
        var received: [Int32] = []
        var bytes = [UInt8](repeating: 0, count: 64)
        while true {
            let n = bytes.withUnsafeMutableBytes { read(readEnd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return received }
            received += bytes[0..<n].map { Int32($0) }
        }
    }
}

/// A pipe that job threads write one byte to when they finish, to wake the main loop.
final class WakePipe: Sendable {
    let readEnd: Int32
    let writeEnd: Int32

    init() throws(SystemError) {
        var fds: [Int32] = [-1, -1]
        try makePipe(&fds)
        readEnd = fds[0]
        writeEnd = fds[1]
    }

    func wake() {
        var byte: UInt8 = 1
        _ = write(writeEnd, &byte, 1)
    }

    func drain() {
        var bytes = [UInt8](repeating: 0, count: 64)
        while bytes.withUnsafeMutableBytes({ read(readEnd, $0.baseAddress!, $0.count) }) > 0 {}
    }
}

/// A pipe whose both ends are non-blocking and close-on-exec (`pipe2` needs _GNU_SOURCE).
private func makePipe(_ fds: inout [Int32]) throws(SystemError) {
    guard pipe(&fds) == 0 else { throw SystemError("pipe", path: "", errno: errno) }
    for fd in fds {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    }
}
