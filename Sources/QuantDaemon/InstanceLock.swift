internal import QuantSystem
import SystemPackage

/// `locks/<instance>.lock`, held with `flock(LOCK_EX)` for as long as a daemon runs. The kernel drops the
/// lock when the process dies however it dies (SIGKILL, OOM, crash), so a lock file nobody holds belongs to a
/// dead instance: its claims in `active/` and its staging in `out/` may be taken back by any other daemon.
/// On one host this is exact; over NFS it holds only where the server supports locks (NFSv4, or v3 with
/// lockd) and the client maps flock to them (Linux does since 2.6.12).
final class InstanceLock {
    private let descriptor: FileDescriptor
    let path: String

    private init(descriptor: FileDescriptor, path: String) {
        self.descriptor = descriptor
        self.path = path
    }

    deinit { try? descriptor.close() }

    /// Takes the lock at `path` (created when missing, with `create`), trying for `waitSeconds`; nil when
    /// another live process holds it all that time. Another instance's lock is opened read-only (flock needs
    /// no write access), so that daemons of different users in one group can judge each other.
    static func acquire(_ path: String, waitSeconds: Double, create: Bool = true) throws(SystemError)
        -> InstanceLock? {
        let file = FilePath(path)
        let descriptor = create
            ? try FileDescriptor.openFile(file, .readWrite, options: [.create, .noFollow],
                                          permissions: [.ownerReadWrite, .groupRead])
            : try FileDescriptor.openFile(file, .readOnly, options: .noFollow)
        let deadline = FileSystem.monotonicSeconds() + waitSeconds
        do {
            while try !descriptor.lock(path: file) {
                guard FileSystem.monotonicSeconds() < deadline else {
                    try? descriptor.close()
                    return nil
                }
                FileSystem.sleep(seconds: 0.05)
            }
        } catch {
            try? descriptor.close()
            throw error
        }
        return InstanceLock(descriptor: descriptor, path: path)
    }

    /// Writes `text` (who holds it) into the file, for people looking at the spool.
    func describe(_ text: String) {
        let line = Array((text + "\n").utf8)
        try? descriptor.resize(to: 0, path: nil)
        try? line.withUnsafeBytes { raw in
            Result { () throws(SystemError) in try descriptor.writeFully(raw, at: 0, path: nil) }
        }.get()
    }
}
