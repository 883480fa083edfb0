import Foundation
import Glibc
import Testing

/// The `quantd` binary built beside the test runner (or `$QUANTD_BIN`).
let quantdBinary: String = {
    if let path = ProcessInfo.processInfo.environment["QUANTD_BIN"] { return path }
    let runner = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    return runner.appendingPathComponent("quantd").path
}()

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A fresh folder for one test, removed by `cleanUp()`.
struct Scratch {
    let path: String

    init() throws {
        var template = Array("/tmp/quantd-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp failed") }
        path = String(cString: made)
    }

    func cleanUp() { try? FileManager.default.removeItem(atPath: path) }

    var spool: String { path + "/spool" }
    var incoming: String { spool + "/incoming" }
    var log: String { path + "/quantd.log" }

    func names(_ folder: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: spool + "/" + folder)) ?? []).sorted()
    }

    /// Writes `bytes` beside incoming/ under a dot-name, then renames it in: the documented way.
    func drop(_ bytes: [UInt8], as name: String) throws {
        let temp = incoming + "/." + name + ".tmp"
        try Data(bytes).write(to: URL(fileURLWithPath: temp))
        guard rename(temp, incoming + "/" + name) == 0 else { throw TestFailure("rename failed: \(errno)") }
    }

    func write(_ text: String, to name: String) throws -> String {
        let file = path + "/" + name
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }
}

/// A small safetensors file made by hand: F32 2-D `layerK.weight` tensors from a seeded generator.
func makeSafetensors(tensors: [(name: String, rows: Int, cols: Int)], seed: UInt64) -> [UInt8] {
    var state = seed &* 6364136223846793005 &+ 1442695040888963407
    var header = "{"
    var data: [UInt8] = []
    for (index, tensor) in tensors.enumerated() {
        let begin = data.count
        for _ in 0..<(tensor.rows * tensor.cols) {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let value = Float(Int64(bitPattern: state >> 11) % 2_000_001 - 1_000_000) / 1_000_000
            withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) }
        }
        if index > 0 { header += "," }
        header += "\"\(tensor.name)\":{\"dtype\":\"F32\",\"shape\":[\(tensor.rows),\(tensor.cols)],"
            + "\"data_offsets\":[\(begin),\(data.count)]}"
    }
    header += "}"
    var headerBytes = Array(header.utf8)
    while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
    var file: [UInt8] = []
    withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { file.append(contentsOf: $0) }
    return file + headerBytes + data
}

func smallCheckpoint(seed: UInt64, layers: Int = 2, rows: Int = 64, cols: Int = 64) -> [UInt8] {
    makeSafetensors(tensors: (0..<layers).map { ("layer\($0).weight", rows, cols) }, seed: seed)
}

/// One line of the JSON Lines log.
typealias LogLine = [String: Any]

func readLog(_ path: String) throws -> [LogLine] {
    guard let data = FileManager.default.contents(atPath: path) else { return [] }
    let text = String(decoding: data, as: UTF8.self)
    var lines: [LogLine] = []
    for line in text.split(separator: "\n") {
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
        guard let dictionary = object as? LogLine else { throw TestFailure("not an object: \(line)") }
        lines.append(dictionary)
    }
    return lines
}

/// A running `quantd run`, killed by `stop()` in every case.
final class DaemonProcess {
    let process = Process()
    let stderrPath: String
    let logPath: String?

    /// `logFile` overrides the scratch folder's log (several daemons, one log each).
    init(arguments: [String], scratch: Scratch, environment: [String: String] = [:], logToFile: Bool = true,
         logFile: String? = nil) throws {
        process.executableURL = URL(fileURLWithPath: quantdBinary)
        var arguments = arguments
        let log = logFile ?? scratch.log
        if logToFile { arguments += ["--log-file", log] }
        logPath = logToFile ? log : nil
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["NOTIFY_SOCKET"] = nil
        env["WATCHDOG_USEC"] = nil
        env["WATCHDOG_PID"] = nil
        for (key, value) in environment { env[key] = value }
        process.environment = env
        stderrPath = scratch.path + "/stderr-\(UInt32.random(in: 0...UInt32.max)).txt"
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    func signal(_ number: Int32) { kill(pid, number) }

    /// Kills the daemon if it still runs and reaps it.
    func stop() {
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }

    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    func lines() throws -> [LogLine] { try readLog(logPath ?? stderrPath) }

    /// Waits until the log holds `count` lines with `event` (and matching `where`), or fails after `timeout`.
    @discardableResult
    func waitFor(
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
        throw TestFailure("no \(count) '\(event)' line(s); log:\n\(try lines())\nstderr:\n\(stderr)")
    }

    /// Waits for the process to exit and returns its status.
    func waitForExit(timeout: Double = 30) async throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        guard !process.isRunning else { throw TestFailure("quantd did not exit in \(timeout) s") }
        return process.terminationStatus
    }
}

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
        guard fd >= 0 else { throw TestFailure("socket failed") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in bytes.enumerated() { raw[i] = byte }
        }
        let length = bytes.first == 0 ? MemoryLayout<sa_family_t>.size + bytes.count : MemoryLayout<sockaddr_un>.size
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(length)) }
        }
        guard result == 0 else { throw TestFailure("bind failed: \(errno)") }
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
