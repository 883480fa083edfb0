import Foundation
import Glibc
import Testing
import TestSupport

@Suite("quantd run: poll mode and transient failures")
struct RetryAndPollTests {
    @Test func pollModeFindsEntriesWithoutInotify() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let daemon = try DaemonProcess(
            arguments: ["run", "--spool", scratch.spool, "--poll", "--set", "rescan_seconds=0.3",
                        "--settle-seconds", "0.5", "--threads", "1"],
            scratch: scratch)
        defer { daemon.stop() }
        let watching = try await daemon.waitFor("watching")
        #expect(watching.first?["mode"] as? String == "poll")
        try scratch.drop(Checkpoint.layers(seed: 21).bytes, as: "polled.safetensors")
        try await daemon.waitFor("committed")
        #expect(scratch.names("done") == ["polled.safetensors"])
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
    }

    static let isRoot = getuid() == 0

    /// A spool on a 1 MiB tmpfs: the input fits, its output does not (ENOSPC), so the job goes back to the
    /// queue with a growing delay instead of being quarantined, its staging removed each time; once the
    /// filesystem grows, the job completes by itself.
    @Test(.enabled(if: isRoot, "needs root to mount a small tmpfs"))
    func noSpaceIsTransientRequeuedWithBackoffAndCompletesOnceSpaceReturns() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        try FileManager.default.createDirectory(atPath: scratch.spool, withIntermediateDirectories: true)
        func mount(_ options: String) throws {
            let result = Shell.run("/bin/mount", ["-t", "tmpfs", "-o", options, "tmpfs", scratch.spool])
            try #require(result.status == 0, "mount -o \(options): \(result.stderr)")
        }
        try mount("size=1m")
        defer { umount2(scratch.spool, Int32(MNT_DETACH)) }
        let daemon = try DaemonProcess(
            arguments: ["run", "--spool", scratch.spool, "--settle-seconds", "0", "--threads", "1",
                        "--set", "retry_initial_seconds=0.2", "--set", "retry_max_seconds=0.4"],
            scratch: scratch)
        defer { daemon.stop() }
        try await daemon.waitFor("watching")
        // About 920 KB of fp32 in: its output (about 230 KB) does not fit beside it.
        try scratch.drop(Checkpoint.layers(4, rows: 256, cols: 224, seed: 22).bytes, as: "tight.safetensors")
        let requeued = try await daemon.waitFor("requeued", count: 3)
        #expect(requeued.allSatisfy { $0["errno"] as? Int == Int(ENOSPC) })
        #expect(requeued.allSatisfy { $0["error"] as? String == "No space left on device" })
        #expect(requeued.allSatisfy { $0["job"] as? String == "tight.safetensors" })
        #expect(requeued.prefix(3).compactMap { $0["retry_in_seconds"] as? Double } == [0.2, 0.4, 0.4])
        #expect(requeued.prefix(3).compactMap { $0["attempt"] as? Int } == [1, 2, 3])
        #expect(scratch.names("failed").isEmpty, "not quarantined")
        let queued = scratch.names("incoming") + scratch.names("active").filter { !$0.hasPrefix(".") }
        #expect(queued.count == 1 && queued.allSatisfy { $0.hasSuffix("tight.safetensors") }, "still queued: \(queued)")
        #expect(scratch.names("active").filter { $0.hasSuffix(".retry.json") }.count == 1, "the backoff is kept")

        // Space returns: the next retry commits, with nothing left of the failed attempts.
        try mount("remount,size=16m")
        let committed = try await daemon.waitFor("committed", timeout: 60)
        #expect(committed.first?["job"] as? String == "tight.safetensors")
        #expect(scratch.names("out") == ["tight"], "every failed attempt's staging was removed")
        #expect(Shell.run(Paths.quantd, ["verify", scratch.spool + "/out/tight"]).status == 0)
        #expect(scratch.names("done") == ["tight.safetensors"])
        #expect(try daemon.lines().allSatisfy { $0["event"] as? String != "failed" })
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
        #expect(scratch.names("active").isEmpty, "no backoff left, no retry state")
    }
}
