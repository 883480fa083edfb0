import Foundation
import Glibc
import Testing

/// The unit under a real systemd 252 (Debian root booted with systemd-nspawn), through
/// scripts/systemd-test.sh. Root only, and opt-in with QUANTD_SYSTEMD_TEST=1: it builds the
/// release binary and a Debian root (minutes the first time).
@Suite("quantd under systemd")
struct SystemdTests {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let enabled = getuid() == 0 && ProcessInfo.processInfo.environment["QUANTD_SYSTEMD_TEST"] == "1"

    @Test(.enabled(if: enabled, "needs root and QUANTD_SYSTEMD_TEST=1 (debootstrap + systemd-nspawn)"),
          .timeLimit(.minutes(30)))
    func serviceStartsCommitsReloadsAndStopsCleanly() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let checkpoint = scratch.path + "/check.safetensors"
        try Data(smallCheckpoint(seed: 42, layers: 3, rows: 128, cols: 128)).write(to: URL(fileURLWithPath: checkpoint))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.packageRoot + "/scripts/systemd-test.sh")
        var arguments = ["--checkpoint", checkpoint]
        if let binary = ProcessInfo.processInfo.environment["QUANTD_RELEASE_BIN"] { arguments += ["--binary", binary] }
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("systemd-test: PASS"))
    }
}
