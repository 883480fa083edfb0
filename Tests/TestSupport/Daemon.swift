import Foundation
import QuantSystem
import SystemPackage

/// One line of the daemon's JSON Lines log.
public typealias LogLine = [String: Any]

/// Every line of a JSON Lines log (none when there is no file); throws at the first line that is not an object.
///
/// `live`: a process may be writing the log as it is read. A `write` to a regular file is not atomic against a
/// concurrent `read`, so the read can end inside the line being written: its unterminated tail is left for the
/// next read. Read without `live` (the writer is gone), an unterminated last line is a torn line and throws.
public func readLog(_ path: String, live: Bool = false) throws -> [LogLine] {
    guard let data = FileManager.default.contents(atPath: path) else { return [] }
    var text = Substring(String(decoding: data, as: UTF8.self))
    if let last = text.last, last != "\n" {
        guard live else { throw TestError("\(path): its last line is torn (no newline): \(text.suffix(200))") }
        text = text.lastIndex(of: "\n").map { text[...$0] } ?? ""
    }
    var lines: [LogLine] = []
    for line in text.split(separator: "\n") {
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
        guard let dictionary = object as? LogLine else { throw TestError("not an object: \(line)") }
        lines.append(dictionary)
    }
    return lines
}

/// A test's folder as the daemon's: a spool under it and the log beside the spool.
extension TempDir {
    public var spool: String { path + "/spool" }
    public var incoming: String { spool + "/incoming" }
    public var log: String { path + "/quantd.log" }

    /// Names in a folder of the spool (`out`, `out/mini`, ...), sorted.
    public func names(_ folder: String) -> [String] {
        TempDir.list(spool + "/" + folder)
    }

    /// Writes `bytes` beside incoming/ under a dot-name, then renames it in: the documented way.
    public func drop(_ bytes: [UInt8], as name: String) throws {
        let temp = incoming + "/." + name + ".tmp"
        try TempDir.write(bytes, to: temp)
        try FileSystem.rename(FilePath(temp), FilePath(incoming + "/" + name))
    }

    /// The record quarantine wrote for `name` (`failed/NAME.error.json`).
    public func record(_ name: String) throws -> [String: Any] {
        let data = Data(try TempDir.read(spool + "/failed/" + name + ".error.json"))
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TestError("failed/\(name).error.json is not a JSON object")
        }
        return object
    }

    /// Waits until no entry is left to do in incoming/ and active/ (ignored names aside).
    public func waitUntilDrained(_ daemon: DaemonProcess, timeout: Double) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let left = names("incoming").filter { !$0.hasPrefix(".") } + names("active").filter { !$0.hasPrefix(".") }
            // A quarantined entry is moved first and its record written just after: wait for the records too.
            let failed = Set(names("failed"))
            let unrecorded = failed.filter {
                !$0.hasPrefix(".") && !$0.hasSuffix(".error.json") && !failed.contains($0 + ".error.json")
            }
            if left.isEmpty && unrecorded.isEmpty { return }
            if !daemon.process.isRunning { throw TestError("the daemon died; stderr:\n\(daemon.stderr)") }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestError("still queued after \(timeout) s: \(names("incoming")) \(names("active"))")
    }
}

/// A running `quantd run` (the built binary), its standard error kept in a file of the test's folder; killed by
/// `stop()` in every case.
public final class DaemonProcess {
    public let process: Process
    public let stderrPath: String
    public let logPath: String?

    /// `logFile` overrides the folder's log (several daemons, one log each). The daemon does not inherit this
    /// process's systemd variables: `environment` sets what a test wants.
    public init(arguments: [String], scratch: TempDir, environment: [String: String] = [:], logToFile: Bool = true,
                logFile: String? = nil) throws {
        var arguments = arguments
        let log = logFile ?? scratch.log
        if logToFile { arguments += ["--log-file", log] }
        logPath = logToFile ? log : nil
        var env = ProcessInfo.processInfo.environment
        env["NOTIFY_SOCKET"] = nil
        env["WATCHDOG_USEC"] = nil
        env["WATCHDOG_PID"] = nil
        for (key, value) in environment { env[key] = value }
        stderrPath = scratch.path + "/stderr-\(UInt32.random(in: 0...UInt32.max)).txt"
        process = try Shell.start(Paths.quantd, arguments, environment: env, stdout: nil, stderr: stderrPath)
    }

    public var pid: Int32 { process.processIdentifier }

    /// Sends signal `number` with kill(2): Foundation's Process sends only SIGTERM and SIGINT, QuantSystem none.
    public func signal(_ number: Int32) { kill(pid, number) }

    /// Kills the daemon if it still runs and reaps it.
    public func stop() {
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }

    public var stderr: String { String(decoding: (try? TempDir.read(stderrPath)) ?? [], as: UTF8.self) }

    /// The log's complete lines; while the daemon runs, the line it may be writing is left for the next call.
    public func lines() throws -> [LogLine] { try readLog(logPath ?? stderrPath, live: process.isRunning) }

    /// Waits until the log holds `count` lines with `event` (and matching `where`), or fails after `timeout`.
    @discardableResult
    public func waitFor(
        _ event: String, count: Int = 1, timeout: Double = 30, where predicate: (LogLine) -> Bool = { _ in true }
    ) async throws -> [LogLine] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let matching = try lines().filter { $0["event"] as? String == event && predicate($0) }
            if matching.count >= count { return matching }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let matching = try lines().filter { $0["event"] as? String == event && predicate($0) }
        if matching.count >= count { return matching }
        throw TestError("no \(count) '\(event)' line(s); log:\n\(try lines())\nstderr:\n\(stderr)")
    }

    /// Waits for the process to exit and returns its status.
    public func waitForExit(timeout: Double = 30) async throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        guard !process.isRunning else { throw TestError("quantd did not exit in \(timeout) s") }
        return process.terminationStatus
    }
}
