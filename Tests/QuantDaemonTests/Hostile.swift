import Foundation
import Glibc
import Testing

/// The package root, from this file's path.
let packageRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// `python3` on the PATH, which runs `scripts/hostile-corpus.py`.
let python3: String? = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
    .map { $0 + "/python3" }.first { FileManager.default.isExecutableFile(atPath: $0) }

/// One case of the corpus, as `cases.json` lists it.
struct CorpusCase: Decodable {
    var file: String
    var expect: String
    var why: String
}

/// Writes the corpus into `folder` with the generator script and returns its cases.
func generateCorpus(into folder: String, small: Bool = false) throws -> [CorpusCase] {
    guard let python3 else { throw TestFailure("python3 not found") }
    let result = try runTool(python3, [packageRoot + "/scripts/hostile-corpus.py", folder] + (small ? ["--small"] : []))
    guard result.status == 0 else { throw TestFailure("hostile-corpus.py failed: \(result.stderr)") }
    let listing = try Data(contentsOf: URL(fileURLWithPath: folder + "/cases.json"))
    return try JSONDecoder().decode([CorpusCase].self, from: listing)
}

/// Runs a program to its end; its output goes through files, so that a large one cannot block it.
func runTool(_ executable: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let base = NSTemporaryDirectory() + "/quantd-tool-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    FileManager.default.createFile(atPath: base + ".out", contents: nil)
    FileManager.default.createFile(atPath: base + ".err", contents: nil)
    defer {
        unlink(base + ".out")
        unlink(base + ".err")
    }
    process.standardOutput = FileHandle(forWritingAtPath: base + ".out")
    process.standardError = FileHandle(forWritingAtPath: base + ".err")
    try process.run()
    process.waitUntilExit()
    let out = (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? ""
    let err = (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? ""
    return (process.terminationStatus, out, err)
}

/// Watches files for being opened or read (inotify IN_OPEN | IN_ACCESS): proof that nobody followed a link
/// to them.
final class OpenWatch {
    let fd: Int32

    init(_ paths: [String]) throws {
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw TestFailure("inotify_init1 failed") }
        for path in paths where inotify_add_watch(fd, path, UInt32(IN_OPEN | IN_ACCESS)) < 0 {
            throw TestFailure("inotify_add_watch(\(path)) failed: \(errno)")
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

extension Scratch {
    /// Waits until no entry is left to do in incoming/ and active/ (ignored names aside).
    func waitUntilDrained(_ daemon: DaemonProcess, timeout: Double) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let left = names("incoming").filter { !$0.hasPrefix(".") } + names("active").filter { !$0.hasPrefix(".") }
            // A quarantined entry is moved first and its record written just after: wait for the records too.
            let failed = Set(names("failed"))
            let unrecorded = failed.filter {
                !$0.hasPrefix(".") && !$0.hasSuffix(".error.json") && !failed.contains($0 + ".error.json")
            }
            if left.isEmpty && unrecorded.isEmpty { return }
            if !daemon.process.isRunning { throw TestFailure("the daemon died; stderr:\n\(daemon.stderr)") }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("still queued after \(timeout) s: \(names("incoming")) \(names("active"))")
    }

    func record(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: spool + "/failed/" + name + ".error.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }
}
