import Foundation
import Glibc
import Testing
import TestSupport

/// One case of the corpus, as `cases.json` lists it.
struct CorpusCase: Decodable {
    var file: String
    var expect: String
    var why: String
}

/// Writes the corpus into `folder` with the generator script and returns its cases.
func generateCorpus(into folder: String, small: Bool = false) throws -> [CorpusCase] {
    guard let python3 = Shell.which("python3") else { throw TestError("python3 not found") }
    let result = Shell.run(python3, [Paths.root + "/scripts/hostile-corpus.py", folder] + (small ? ["--small"] : []))
    guard result.status == 0 else { throw TestError("hostile-corpus.py failed: \(result.stderr)") }
    let listing = try Data(contentsOf: URL(fileURLWithPath: folder + "/cases.json"))
    return try JSONDecoder().decode([CorpusCase].self, from: listing)
}

/// Watches files for being opened or read (inotify IN_OPEN | IN_ACCESS): proof that nobody followed a link
/// to them.
final class OpenWatch {
    let fd: Int32

    init(_ paths: [String]) throws {
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw TestError("inotify_init1 failed") }
        for path in paths where inotify_add_watch(fd, path, UInt32(IN_OPEN | IN_ACCESS)) < 0 {
            throw TestError("inotify_add_watch(\(path)) failed: \(errno)")
        }
    }

    deinit { close(fd) }

    /// Bytes of events queued so far (0: nobody opened or read the files).
    func eventBytes() -> Int {
        var buffer = [UInt8](repeating: 0, count: 4096)
        var total = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            guard n > 0 else { return total }
            total += n
        }
    }
}

/// Makes a unix socket at `path` and returns its descriptor.
func bindSocket(_ path: String) -> Int32 {
    let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
    }
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
    return listener
}
