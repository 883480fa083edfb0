internal import QuantSystem

/// sd_notify spoken directly: one datagram per message to `$NOTIFY_SOCKET`, a path or, with a
/// leading `@`, an abstract socket. Without the variable every call does nothing.
public final class Notifier: Sendable {
    private let socket: UnixDatagramSocket?
    /// Half of `$WATCHDOG_USEC` in seconds, when the service manager wants pings (and
    /// `$WATCHDOG_PID`, if set, is this process).
    public let watchdogInterval: Double?

    public init(environment: [String: String]) {
        var address: [UInt8]?
        if let socket = environment["NOTIFY_SOCKET"], socket.hasPrefix("/") || socket.hasPrefix("@") {
            var bytes = Array(socket.utf8)
            if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }
            address = bytes
        }
        socket = address.flatMap { UnixDatagramSocket(address: $0) }
        let pidMatches = environment["WATCHDOG_PID"].map { Int32($0) == FileSystem.processID } ?? true
        if let usec = environment["WATCHDOG_USEC"].flatMap({ Double($0) }), usec > 0, pidMatches {
            watchdogInterval = usec / 2_000_000
        } else {
            watchdogInterval = nil
        }
    }

    public var isEnabled: Bool { socket != nil }

    /// Sends `KEY=VALUE` lines as one datagram. Failures are ignored: the service manager may be gone.
    public func send(_ lines: String...) {
        socket?.send(Array(lines.joined(separator: "\n").utf8))
    }
}
