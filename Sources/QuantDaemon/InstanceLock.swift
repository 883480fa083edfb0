internal import Glibc

/// `locks/<instance>.lock`, held with `flock(LOCK_EX)` for as long as a daemon runs. The kernel drops the
/// lock when the process dies however it dies (SIGKILL, OOM, crash), so a lock file nobody holds belongs to a
/// dead instance: its claims in `active/` and its staging in `out/` may be taken back by any other daemon.
/// On one host this is exact; over NFS it holds only where the server supports locks (NFSv4, or v3 with
/// lockd) and the client maps flock to them (Linux does since 2.6.12).
final class InstanceLock {
    private let fd: Int32
    let path: String

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    /// Takes the lock at `path` (created when missing, with `create`), trying for `waitSeconds`; nil when
    /// another live process holds it all that time. Another instance's lock is opened read-only (flock needs
    /// no write access), so that daemons of different users in one group can judge each other.
    static func acquire(_ path: String, waitSeconds: Double, create: Bool = true) throws(SystemError)
        -> InstanceLock? {
        let fd = create ? open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o640)
            : open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw SystemError("open", path: path, errno: errno) }
        let deadline = FS.monotonicSeconds() + waitSeconds
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            guard code == EWOULDBLOCK || code == EINTR else {
                close(fd)
                throw SystemError("flock", path: path, errno: code)
            }
            guard FS.monotonicSeconds() < deadline else {
                close(fd)
                return nil
            }
            usleep(50_000)
        }
        return InstanceLock(fd: fd, path: path)
    }

    /// Writes `text` (who holds it) into the file, for people looking at the spool.
    func describe(_ text: String) {
        var line = text + "\n"
        _ = ftruncate(fd, 0)
        line.withUTF8 { _ = pwrite(fd, $0.baseAddress, $0.count, 0) }
    }
}
