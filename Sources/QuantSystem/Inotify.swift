internal import Glibc
public import SystemPackage

/// What inotify said about an entry of the watched folder.
public enum WatchEvent: Equatable, Sendable {
    /// Created in place (a writer opened a new file, or mkdir).
    case created(name: [UInt8], isDirectory: Bool)
    /// Written to: a writer is at work, wait for its close.
    case modified(name: [UInt8])
    /// A writer closed it: a file written in place may be complete.
    case closedWrite(name: [UInt8])
    /// Renamed in: complete at once.
    case movedIn(name: [UInt8])
    /// Gone (renamed away or deleted).
    case removed(name: [UInt8])
    /// Events were lost: rescan everything.
    case overflow
}

/// inotify on one folder, non-blocking; its descriptor goes into the daemon's poll().
/// IN_MODIFY costs little: the kernel merges identical consecutive events of one writer.
public final class InotifyWatcher {
    public let descriptor: FileDescriptor
    public let directory: FilePath
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)

    public init(directory: FilePath) throws(SystemError) {
        let fd = try retrying("inotify_init1", directory) { inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC)) }
        descriptor = FileDescriptor(rawValue: fd)
        self.directory = directory
        let mask = UInt32(IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR)
        do {
            _ = try retrying("inotify_add_watch", directory) {
                directory.withPlatformString { inotify_add_watch(fd, $0, mask) }
            }
        } catch {
            try? descriptor.close()
            throw error
        }
    }

    deinit { try? descriptor.close() }

    /// Every event queued now; returns at once when there is none. A failed read (other than "nothing
    /// queued") is reported as an overflow, so that the caller rescans.
    public func readEvents() -> [WatchEvent] {
        var events: [WatchEvent] = []
        while true {
            let count: Int
            do {
                count = try buffer.withUnsafeMutableBytes { try descriptor.read(into: $0) }
            } catch {
                if (error as? Errno) != .resourceTemporarilyUnavailable { events.append(.overflow) }
                return events
            }
            if count == 0 { return events }
            Self.parse(buffer[0..<count], into: &events)
        }
    }

    public static func parse(_ bytes: ArraySlice<UInt8>, into events: inout [WatchEvent]) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            let header = MemoryLayout<inotify_event>.size
            while offset + header <= raw.count {
                let mask = raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                let length = Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                let nameBytes = raw[(offset + header)..<min(offset + header + length, raw.count)]
                let name = Array(nameBytes.prefix(while: { $0 != 0 }))
                offset += header + length
                if mask & UInt32(IN_Q_OVERFLOW) != 0 || mask & UInt32(IN_IGNORED) != 0 {
                    events.append(.overflow)
                } else if name.isEmpty {
                    continue
                } else if mask & UInt32(IN_MOVED_TO) != 0 {
                    events.append(.movedIn(name: name))
                } else if mask & UInt32(IN_CLOSE_WRITE) != 0 {
                    events.append(.closedWrite(name: name))
                } else if mask & UInt32(IN_MODIFY) != 0 {
                    events.append(.modified(name: name))
                } else if mask & UInt32(IN_CREATE) != 0 {
                    events.append(.created(name: name, isDirectory: mask & UInt32(IN_ISDIR) != 0))
                } else if mask & UInt32(IN_MOVED_FROM | IN_DELETE) != 0 {
                    events.append(.removed(name: name))
                }
            }
        }
    }
}
