import Foundation
import Glibc
import Testing
import TestSupport

/// A unix datagram socket standing in for systemd's notify socket.
final class NotifySocket {
    let fd: Int32
    let path: String

    convenience init(path: String) throws {
        try self.init(address: Array(path.utf8), path: path)
    }

    /// An abstract socket: `@name` in NOTIFY_SOCKET, a leading NUL in the address.
    convenience init(abstract name: String) throws {
        try self.init(address: [0] + Array(name.utf8), path: "@" + name)
    }

    private init(address bytes: [UInt8], path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw TestError("socket failed") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in bytes.enumerated() { raw[i] = byte }
        }
        let length = bytes.first == 0 ? MemoryLayout<sa_family_t>.size + bytes.count : MemoryLayout<sockaddr_un>.size
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(length)) }
        }
        guard result == 0 else { throw TestError("bind failed: \(errno)") }
    }

    deinit { close(fd) }

    /// Every datagram received until `until` returns true for the list so far, or `timeout` passes.
    func receive(timeout: Double, until done: ([String]) -> Bool) async throws -> [String] {
        var messages: [String] = []
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 4096)
        // Drain the socket once more after the deadline: a test runner starved of threads may wake up late, and
        // what the daemon sent is still queued there.
        while true {
            let expired = Date() >= deadline
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                guard n > 0 else { break }
                messages.append(String(decoding: buffer[0..<n], as: UTF8.self))
            }
            if done(messages) || expired { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        return messages
    }
}
