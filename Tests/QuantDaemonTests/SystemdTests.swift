import Foundation
import Glibc
import Testing
import TestSupport

/// The unit under a real systemd 252 (Debian root booted with systemd-nspawn), through
/// scripts/systemd-test.sh. Root only, and opt-in with QUANTD_SYSTEMD_TEST=1: it builds the
/// release binary and a Debian root (minutes the first time).
@Suite("quantd under systemd")
struct SystemdTests {
    static let enabled = getuid() == 0 && ProcessInfo.processInfo.environment["QUANTD_SYSTEMD_TEST"] == "1"

    @Test(.enabled(if: enabled, "needs root and QUANTD_SYSTEMD_TEST=1 (debootstrap + systemd-nspawn)"),
          .timeLimit(.minutes(30)))
    func serviceStartsCommitsReloadsAndStopsCleanly() throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let checkpoint = scratch.path + "/check.safetensors"
        try Checkpoint.layers(3, rows: 128, cols: 128, seed: 42).write(to: checkpoint)
        var arguments = ["--checkpoint", checkpoint]
        if let binary = ProcessInfo.processInfo.environment["QUANTD_RELEASE_BIN"] { arguments += ["--binary", binary] }
        let result = Shell.run(Paths.root + "/scripts/systemd-test.sh", arguments)
        let text = result.stdout + result.stderr
        #expect(result.status == 0, "\(text)")
        #expect(text.contains("systemd-test: PASS"))
    }
}
