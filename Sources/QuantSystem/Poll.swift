internal import Glibc
public import SystemPackage

/// `poll(2)` on descriptors that are waited on for reading: the daemon's loop blocks here, using no CPU, until
/// a signal, a finished job or an inotify event arrives, or the deadline passes.
public enum Poll {
    /// Waits until one of `descriptors` is readable or `seconds` pass (rounded up to a millisecond; EINTR
    /// returns early, which the caller's loop treats like a wake-up).
    public static func waitReadable(_ descriptors: [FileDescriptor], seconds: Double) {
        var fds = descriptors.map { pollfd(fd: $0.rawValue, events: Int16(POLLIN), revents: 0) }
        let milliseconds = max(0, min(Double(Int32.max), (seconds * 1000).rounded(.up)))
        _ = poll(&fds, nfds_t(fds.count), Int32(milliseconds))
    }
}

/// A datagram socket of the Unix family, for sd_notify: one message to one address, a path or (with a leading
/// NUL byte) an abstract name.
public final class UnixDatagramSocket: Sendable {
    private let descriptor: FileDescriptor
    private let address: [UInt8]

    /// The longest address a `sockaddr_un` holds (its path, without the NUL).
    public static let maxAddressLength = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// nil when the address is too long or no socket can be made.
    public init?(address: [UInt8]) {
        guard !address.isEmpty, address.count <= Self.maxAddressLength else { return nil }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        descriptor = FileDescriptor(rawValue: fd)
        self.address = address
    }

    deinit { try? descriptor.close() }

    /// Sends `message` as one datagram; false when it could not be sent (no SIGPIPE either way).
    @discardableResult
    public func send(_ message: [UInt8]) -> Bool {
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sa.sun_path) { path in
            for (i, byte) in address.enumerated() { path[i] = byte }
        }
        // An abstract address is exactly its bytes; a path carries its NUL.
        let pathLength = address.count + (address.first == 0 ? 0 : 1)
        let length = socklen_t(MemoryLayout<sa_family_t>.size + pathLength)
        while true {
            let sent = withUnsafePointer(to: &sa) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddrPointer in
                    message.withUnsafeBytes { body in
                        sendto(descriptor.rawValue, body.baseAddress, body.count, Int32(MSG_NOSIGNAL), sockaddrPointer,
                               length)
                    }
                }
            }
            if sent >= 0 { return true }
            if Errno.current != .interrupted { return false }
        }
    }
}
