import Foundation
import Glibc
import Testing
import TestSupport

/// The real `quantd run` binary, real files, signals and sockets: what does not need the
/// engine to succeed.
@Suite("quantd run: lifecycle, signals, logs, spool hygiene")
struct DaemonLifecycleTests {
    static let fast = ["--set", "rescan_seconds=30", "--settle-seconds", "1"]

    @Test func sdNotifyReadyWatchdogStatusAndStoppingOnARealSocket() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let socket = try NotifySocket(path: scratch.path + "/notify.sock")
        let daemon = try DaemonProcess(
            arguments: ["run", "--spool", scratch.spool] + Self.fast, scratch: scratch,
            environment: ["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "400000"])
        defer { daemon.stop() }
        let early = try await socket.receive(timeout: 20) { messages in
            messages.contains { $0.contains("READY=1") } && messages.filter { $0 == "WATCHDOG=1" }.count >= 3
        }
        #expect(early.contains { $0.split(separator: "\n").contains("READY=1") })
        #expect(early.contains { $0.contains("STATUS=0 queued, 0 running") })
        #expect(early.filter { $0 == "WATCHDOG=1" }.count >= 3, "pings at half of WATCHDOG_USEC")
        daemon.signal(SIGTERM)
        let late = try await socket.receive(timeout: 20) { $0.contains { $0.contains("STOPPING=1") } }
        #expect(late.contains { $0.contains("STOPPING=1") })
        #expect(try await daemon.waitForExit() == 0)
        try await daemon.waitFor("stopped")
    }

    @Test func abstractNotifySocketIsSupported() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let name = "quantd-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let socket = try NotifySocket(abstract: name)
        let daemon = try DaemonProcess(
            arguments: ["run", "--spool", scratch.spool] + Self.fast, scratch: scratch,
            environment: ["NOTIFY_SOCKET": "@" + name])
        defer { daemon.stop() }
        let messages = try await socket.receive(timeout: 20) { $0.contains { $0.contains("READY=1") } }
        #expect(messages.contains { $0.contains("READY=1") })
        daemon.signal(SIGINT)
        #expect(try await daemon.waitForExit() == 0)
    }

    @Test func sigtermWhenIdleExitsZeroAndSaysStopping() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let daemon = try DaemonProcess(arguments: ["run", "--spool", scratch.spool] + Self.fast, scratch: scratch)
        defer { daemon.stop() }
        try await daemon.waitFor("watching")
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
        let stopping = try await daemon.waitFor("stopping")
        #expect(stopping.first?["signal"] as? String == "SIGTERM")
        for folder in ["incoming", "active", "out", "done", "failed"] {
            #expect(FileManager.default.fileExists(atPath: scratch.spool + "/" + folder))
        }
    }

    @Test func logIsReopenedAfterRotationAndEveryLineIsJSON() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let daemon = try DaemonProcess(arguments: ["run", "--spool", scratch.spool] + Self.fast, scratch: scratch)
        defer { daemon.stop() }
        try await daemon.waitFor("watching")
        // logrotate's `create`: move the file away, then SIGHUP.
        let rotated = scratch.log + ".1"
        #expect(rename(scratch.log, rotated) == 0)
        daemon.signal(SIGHUP)
        try await daemon.waitFor("reloaded")
        // An odd name, quarantined as not a checkpoint: its lines go to the new file.
        let odd = "odd \"name\"\nwith newline ü 🤖.txt"
        try scratch.drop([1, 2, 3], as: odd)
        let failed = try await daemon.waitFor("failed")
        #expect(failed.first?["job"] as? String == odd)
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
        let old = try readLog(rotated)
        #expect(old.contains { $0["event"] as? String == "started" })
        #expect(!old.contains { $0["event"] as? String == "failed" })
        let new = try readLog(scratch.log)
        #expect(new.map { $0["event"] as? String } .contains("stopped"))
        #expect(new.allSatisfy { $0["time"] is String && $0["level"] is String && $0["event"] is String })
    }

    @Test func invalidConfigRefusesToStartNamingTheKey() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let file = try scratch.write("spool = \"\(scratch.spool)\"\nmax_jobs = 0\n", as: "bad.toml")
        let daemon = try DaemonProcess(arguments: ["run", "--config", file], scratch: scratch, logToFile: false)
        defer { daemon.stop() }
        #expect(try await daemon.waitForExit() == 78)
        #expect(daemon.stderr.contains("bad.toml:2: key 'max_jobs': must be between 1 and 64, got 0"))
        #expect(!FileManager.default.fileExists(atPath: scratch.spool), "nothing created before refusing")
        let flag = try DaemonProcess(arguments: ["run", "--spool", scratch.spool, "--set", "settle_seconds=soon"],
                                     scratch: scratch, logToFile: false)
        defer { flag.stop() }
        #expect(try await flag.waitForExit() == 78)
        #expect(flag.stderr.contains("key 'settle_seconds'"))
    }

    @Test func invalidReloadKeepsTheRunningConfiguration() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let file = try scratch.write(
            "spool = \"\(scratch.spool)\"\nsettle_seconds = 1\nrescan_seconds = 30\n", as: "quantd.toml")
        let daemon = try DaemonProcess(arguments: ["run", "--config", file], scratch: scratch)
        defer { daemon.stop() }
        try await daemon.waitFor("watching")
        _ = try scratch.write("spool = \"\(scratch.spool)\"\nsettle_seconds = \"often\"\n", as: "quantd.toml")
        daemon.signal(SIGHUP)
        let warning = try await daemon.waitFor("reload_failed")
        #expect((warning.first?["reason"] as? String)?.contains("key 'settle_seconds'") == true)
        #expect(warning.first?["level"] as? String == "warning")
        // Still running on the old settings: a valid reload is then taken.
        _ = try scratch.write("spool = \"\(scratch.spool)\"\nsettle_seconds = 2\nmax_jobs = 2\n", as: "quantd.toml")
        daemon.signal(SIGHUP)
        let reloaded = try await daemon.waitFor("reloaded")
        let config = try #require(reloaded.first?["config"] as? [String: Any])
        #expect(config["max_jobs"] as? Int == 2 && config["settle_seconds"] as? Int == 2)
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
    }

    @Test func nonRegularEntriesAreQuarantinedWithoutBeingOpened() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        try FileManager.default.createDirectory(atPath: scratch.incoming, withIntermediateDirectories: true)
        // A FIFO would block whoever opened it; a symlink points at a FIFO and at a secret.
        #expect(mkfifo(scratch.incoming + "/pipe.safetensors", 0o644) == 0)
        #expect(symlink(scratch.incoming + "/pipe.safetensors", scratch.incoming + "/to-pipe.safetensors") == 0)
        #expect(symlink("/etc/shadow", scratch.incoming + "/secret.safetensors") == 0)
        let listener = bindSocket(scratch.incoming + "/sock.safetensors")
        defer { close(listener) }
        // Ignored names stay where they are.
        for ignored in [".hidden.safetensors", "a.safetensors.partial", "b.tmp", "c.incomplete"] {
            FileManager.default.createFile(atPath: scratch.incoming + "/" + ignored, contents: Data([1]))
        }
        let daemon = try DaemonProcess(arguments: ["run", "--spool", scratch.spool] + Self.fast, scratch: scratch)
        defer { daemon.stop() }
        let failed = try await daemon.waitFor("failed", count: 4)
        #expect(Set(failed.compactMap { $0["kind"] as? String }) == ["notRegular"])
        #expect(scratch.names("failed") == [
            "pipe.safetensors", "pipe.safetensors.error.json", "secret.safetensors", "secret.safetensors.error.json",
            "sock.safetensors", "sock.safetensors.error.json", "to-pipe.safetensors",
            "to-pipe.safetensors.error.json",
        ])
        var info = stat()
        #expect(lstat(scratch.spool + "/failed/secret.safetensors", &info) == 0 && info.st_mode & S_IFMT == S_IFLNK)
        let record = try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: scratch.spool + "/failed/pipe.safetensors.error.json")))
        let fields = try #require(record as? [String: Any])
        #expect(fields["kind"] as? String == "notRegular" && fields["quantd_version"] is String)
        #expect((fields["reason"] as? String)?.contains("fifo") == true && fields["time"] is String)
        #expect(scratch.names("incoming") == [".hidden.safetensors", "a.safetensors.partial", "b.tmp", "c.incomplete"])
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
    }

    @Test func restartRequeuesOwnClaimsAndRemovesStaleStaging() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        // Staging of this instance, of another one (no lock file: unknown, maybe alive elsewhere), and of a
        // `quantd quantize` run (a pid, no instance).
        for folder in ["incoming", "active", "out/.x.tmp-me-1234", "out/.y.tmp-other-99", "out/.z.tmp-4321", "done",
                       "failed", "locks"] {
            try FileManager.default.createDirectory(
                atPath: scratch.spool + "/" + folder, withIntermediateDirectories: true)
        }
        _ = FileManager.default.createFile(atPath: scratch.spool + "/out/.x.tmp-me-1234/part", contents: Data([1]))
        _ = FileManager.default.createFile(atPath: scratch.spool + "/active/me.x.txt", contents: Data([1]))
        _ = FileManager.default.createFile(atPath: scratch.spool + "/active/other.y.safetensors", contents: Data([1]))
        // A journal whose claim is gone (the job had finished), and an entry of failed/ without its record.
        _ = FileManager.default.createFile(atPath: scratch.spool + "/active/.me.w.safetensors.job",
                                           contents: Data("w".utf8))
        _ = FileManager.default.createFile(atPath: scratch.spool + "/failed/lost.safetensors", contents: Data([1]))
        let daemon = try DaemonProcess(
            arguments: ["run", "--spool", scratch.spool, "--set", "instance=me"] + Self.fast, scratch: scratch)
        defer { daemon.stop() }
        let requeued = try await daemon.waitFor("requeued")
        #expect(requeued.first?["job"] as? String == "x.txt")
        try await daemon.waitFor("staging_removed")
        #expect(scratch.names("out") == [".y.tmp-other-99", ".z.tmp-4321"], "only this instance's staging goes")
        #expect(scratch.names("active") == ["other.y.safetensors"], "another instance's claim is left alone")
        let recovered = try await daemon.waitFor("record_recovered")
        #expect((recovered.first?["path"] as? String)?.hasSuffix("failed/lost.safetensors.error.json") == true)
        #expect(try scratch.record("lost.safetensors")["kind"] as? String == "unknown")
        #expect(scratch.names("locks") == ["me.lock"])
        // The requeued entry goes its way (here: quarantined, it is no checkpoint).
        try await daemon.waitFor("failed") { $0["job"] as? String == "x.txt" }
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
    }

    @Test func inPlaceWriterIsNotTakenBeforeItClosesAndSettles() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let daemon = try DaemonProcess(
            arguments: ["run", "--spool", scratch.spool] + Self.fast, scratch: scratch)
        defer { daemon.stop() }
        try await daemon.waitFor("watching")
        let bytes = Checkpoint.layers(seed: 7).bytes
        // Written in place like `cp` does: create, write half, pause, write the rest, close.
        let fd = open(scratch.incoming + "/slow.safetensors", O_WRONLY | O_CREAT | O_EXCL, 0o644)
        #expect(fd >= 0)
        let half = bytes.count / 2
        #expect(bytes.withUnsafeBytes { write(fd, $0.baseAddress, half) } == half)
        // The writer pauses longer than settle_seconds with the file open, then again once it is complete.
        // Readiness decides what that means (ReadinessTests); here the kernel's events must reach it: the claim
        // comes after the close, whatever the pauses and the machine's speed.
        try await Task.sleep(for: .seconds(2.5))
        #expect(bytes.withUnsafeBytes { write(fd, $0.baseAddress! + half, bytes.count - half) } == bytes.count - half)
        #expect(fsync(fd) == 0)
        try await Task.sleep(for: .seconds(1.5))
        let closing = Date()
        close(fd)
        let claimed = try await daemon.waitFor("claimed")
        #expect(claimed.first?["bytes"] as? Int == bytes.count, "claimed whole")
        #expect(try logTime(claimed.first) >= closing.addingTimeInterval(-0.05), "claimed after the close")
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
    }

    @Test func statusPrintsTheQueueAndTheLastJobs() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let daemon = try DaemonProcess(
            arguments: ["run", "--spool", scratch.spool, "--metrics-file", scratch.path + "/q.prom"] + Self.fast,
            scratch: scratch)
        defer { daemon.stop() }
        try await daemon.waitFor("watching")
        try scratch.drop([0], as: "notes.txt")
        try await daemon.waitFor("failed")
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
        FileManager.default.createFile(atPath: scratch.incoming + "/waiting.safetensors", contents: Data([1, 2]))
        let metrics = try String(contentsOfFile: scratch.path + "/q.prom", encoding: .utf8)
        #expect(metrics.contains("quantd_jobs_failed_total{instance="))
        let failedLine = #"quantd_jobs_failed_total\{instance="[^"]+"\} 1\n"#
        #expect(metrics.range(of: failedLine, options: .regularExpression) != nil)
        let status = Shell.run(Paths.quantd, ["status", "--spool", scratch.spool])
        let output = status.stdout
        #expect(status.status == 0)
        #expect(output.contains("queue: 1 waiting in incoming/, 0 in active/"))
        #expect(output.contains("waiting  waiting.safetensors"))
        #expect(output.contains("failed") && output.contains("notes.txt") && output.contains("notSafetensors"))
    }
}
