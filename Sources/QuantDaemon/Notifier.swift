internal import Glibc

/// sd_notify spoken directly: one datagram per message to `$NOTIFY_SOCKET`, a path or, with a
/// leading `@`, an abstract socket. Without the variable every call does nothing.
public final class Notifier: Sendable {
    private let address: [UInt8]?
    private let fd: Int32
    /// Half of `$WATCHDOG_USEC` in seconds, when the service manager wants pings (and
    /// `$WATCHDOG_PID`, if set, is this process).
    public let watchdogInterval: Double?

    public init(environment: [String: String]) {
        var address: [UInt8]?
        if let socket = environment["NOTIFY_SOCKET"], socket.hasPrefix("/") || socket.hasPrefix("@"),
           socket.utf8.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) {
            var bytes = Array(socket.utf8)
            if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }
            address = bytes
        }
        self.address = address
        fd = address == nil ? -1 : socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let pidMatches = environment["WATCHDOG_PID"].map { Int32($0) == getpid() } ?? true
        if let usec = environment["WATCHDOG_USEC"].flatMap({ Double($0) }), usec > 0, pidMatches {
            watchdogInterval = usec / 2_000_000
        } else {
            watchdogInterval = nil
        }
    }

    deinit { if fd >= 0 { close(fd) } }

    public var isEnabled: Bool { fd >= 0 }

    /// Sends `KEY=VALUE` lines as one datagram. Failures are ignored: the service manager may be gone.
    public func send(_ lines: String...) {
        guard fd >= 0, let address else { return }
        let message = Array(lines.joined(separator: "\n").utf8)
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sa.sun_path) { path in
            for (i, byte) in address.enumerated() { path[i] = byte }
        }
        // An abstract address is exactly its bytes; a path carries its NUL.
        let pathLength = address.count + (address.first == 0 ? 0 : 1)
        let length = socklen_t(MemoryLayout<sa_family_t>.size + pathLength)
        _ = withUnsafePointer(to: &sa) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddrPointer in
                message.withUnsafeBytes { body in
                    sendto(fd, body.baseAddress, body.count, Int32(MSG_NOSIGNAL), sockaddrPointer, length)
                }
            }
        }
    }
}
