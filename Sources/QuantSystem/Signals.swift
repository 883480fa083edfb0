internal import Glibc
public import SystemPackage

/// Write end of the self-pipe, read by the signal handler (which may run on any thread).
nonisolated(unsafe) private var signalPipeWriteEnd: Int32 = -1

/// Turns SIGTERM, SIGINT and SIGHUP into bytes on a pipe that the main loop polls: the handler
/// only writes one byte, which is async-signal-safe, whatever thread the kernel picked.
public final class SignalPipe {
    public let readEnd: FileDescriptor

    /// The signals a daemon stops or reloads on.
    public static let terminate = SIGTERM, interrupt = SIGINT, hangUp = SIGHUP

    public init(signals: [Int32]) throws(SystemError) {
        let ends = try makePipe()
        readEnd = ends.read
        signalPipeWriteEnd = ends.write.rawValue
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
    public func drain() -> [Int32] {
        var received: [Int32] = []
        var bytes = [UInt8](repeating: 0, count: 64)
        while let n = try? bytes.withUnsafeMutableBytes({ try readEnd.read(into: $0) }), n > 0 {
            received += bytes[0..<n].map { Int32($0) }
        }
        return received
    }

    /// The name of a signal number (`SIGTERM`), for logs.
    public static func name(_ number: Int32) -> String {
        switch number {
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        case SIGHUP: "SIGHUP"
        default: "signal \(number)"
        }
    }
}

/// A pipe that job threads write one byte to when they finish, to wake the main loop.
public final class WakePipe: Sendable {
    public let readEnd: FileDescriptor
    public let writeEnd: FileDescriptor

    public init() throws(SystemError) {
        (readEnd, writeEnd) = try makePipe()
    }

    public func wake() {
        _ = try? writeEnd.writeAll([UInt8(1)])
    }

    public func drain() {
        var bytes = [UInt8](repeating: 0, count: 64)
        while let n = try? bytes.withUnsafeMutableBytes({ try readEnd.read(into: $0) }), n > 0 {}
    }
}

/// A pipe whose both ends are non-blocking and close-on-exec.
private func makePipe() throws(SystemError) -> (read: FileDescriptor, write: FileDescriptor) {
    let ends = try system("pipe", nil) { try FileDescriptor.pipe() }
    for end in [ends.readEnd, ends.writeEnd] {
        _ = fcntl(end.rawValue, F_SETFL, fcntl(end.rawValue, F_GETFL) | O_NONBLOCK)
        _ = fcntl(end.rawValue, F_SETFD, FD_CLOEXEC)
    }
    return (ends.readEnd, ends.writeEnd)
}
