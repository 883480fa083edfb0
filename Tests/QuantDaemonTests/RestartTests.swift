import Foundation
import Glibc
import Testing
import TestSupport

/// The moment a log line was written (its `time`, UTC, milliseconds).
func logTime(_ line: LogLine?) throws -> Date {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    guard let text = line?["time"] as? String, let date = formatter.date(from: text) else {
        throw TestError("no time in \(String(describing: line))")
    }
    return date
}

/// What a restart keeps: an entry taken back from active/ is claimed at once; a backoff still running is honoured;
/// a retry state file that cannot be read is set aside with a warning.
@Suite("quantd run: what a restart keeps")
struct RestartTests {
    /// A daemon SIGKILLed in the middle of a job and restarted claims the requeued entry without waiting
    /// settle_seconds: it was complete when it was first claimed.
    @Test func anEntryTakenBackFromActiveIsClaimedWithoutTheSettleWait() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let arguments = ["run", "--spool", scratch.spool, "--set", "instance=crash", "--settle-seconds", "30",
                         "--set", "rescan_seconds=60", "--threads", "1"] + EngineJobTests.slow
        let first = try DaemonProcess(arguments: arguments, scratch: scratch, logFile: scratch.path + "/first.log")
        defer { first.stop() }
        try await first.waitFor("watching")
        try scratch.drop(EngineJobTests.large, as: "big.safetensors")
        try await first.waitFor("claimed")
        try await EngineJobTests().waitForStaging(scratch, "big")
        first.signal(SIGKILL)
        _ = try await first.waitForExit()

        let second = try DaemonProcess(arguments: arguments, scratch: scratch, logFile: scratch.path + "/second.log")
        defer { second.stop() }
        let requeued = try await second.waitFor("requeued")
        #expect(requeued.first?["job"] as? String == "big.safetensors")
        let claimed = try await second.waitFor("claimed", timeout: 25)
        let started = try second.lines().first { $0["event"] as? String == "started" }
        let waited = try logTime(claimed.first).timeIntervalSince(try logTime(started))
        #expect(waited < 10, "claimed \(waited) s after the start, settle_seconds is 30")
    }

    /// A daemon of instance `instance` started on a spool whose retry state file holds `retryState`, with
    /// `inputs` dropped first; returns it and the file's path.
    static func start(_ scratch: TempDir, instance: String, retryState: String, inputs: [String]) throws
        -> (DaemonProcess, String)
    {
        for folder in ["incoming", "active"] {
            try FileManager.default.createDirectory(atPath: scratch.spool + "/" + folder,
                                                    withIntermediateDirectories: true)
        }
        let state = scratch.spool + "/active/.\(instance).retry.json"
        try Data(retryState.utf8).write(to: URL(fileURLWithPath: state))
        for (index, name) in inputs.enumerated() {
            try scratch.drop(Checkpoint.layers(seed: UInt64(31 + index)).bytes, as: name)
        }
        let daemon = try DaemonProcess(
            arguments: ["run", "--spool", scratch.spool, "--set", "instance=\(instance)", "--settle-seconds", "0",
                        "--threads", "1"], scratch: scratch)
        return (daemon, state)
    }

    /// A backoff written by the daemon before its restart (Unix time of the next try) holds the entry until then;
    /// an entry without one is claimed at once. The file goes once no backoff is left.
    @Test func aBackoffFromBeforeTheRestartIsHonoured() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let retryAt = Date().timeIntervalSince1970 + 3
        let held = #"{"attempts":2,"retry_at_unix_seconds":\#(retryAt)}"#
        let (daemon, state) = try Self.start(
            scratch, instance: "r", retryState: #"{"version":1,"entries":{"held.safetensors":\#(held)}}"#,
            inputs: ["held.safetensors", "free.safetensors"])
        defer { daemon.stop() }
        let kept = try await daemon.waitFor("retry_state")
        #expect(kept.first?["job"] as? String == "held.safetensors" && kept.first?["attempt"] as? Int == 2)
        #expect((kept.first?["retry_in_seconds"] as? Double ?? 0) > 0)
        let committed = try await daemon.waitFor("committed", count: 2)
        #expect(committed.compactMap { $0["job"] as? String } == ["free.safetensors", "held.safetensors"])
        let claimed = try daemon.lines().first {
            $0["event"] as? String == "claimed" && $0["job"] as? String == "held.safetensors"
        }
        #expect(try logTime(claimed).timeIntervalSince1970 >= retryAt - 0.05, "not claimed before its retry time")
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
        #expect(!FileManager.default.fileExists(atPath: state), "no backoff left: the file is removed")
    }

    @Test func aCorruptRetryStateIsSetAsideWithAWarning() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let (daemon, state) = try Self.start(
            scratch, instance: "c", retryState: #"{"version":1,"entries":{"a.safetensors":{"attem"#,
            inputs: ["a.safetensors"])
        defer { daemon.stop() }
        let warning = try await daemon.waitFor("retry_state")
        #expect(warning.first?["level"] as? String == "warning")
        #expect((warning.first?["reason"] as? String)?.contains("not a retry state file") == true)
        #expect(warning.first?["path"] as? String == state)
        try await daemon.waitFor("committed")
        #expect(!FileManager.default.fileExists(atPath: state))
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
    }
}
