import Foundation
import Glibc
import Testing
import TestSupport

/// Several daemons on one spool: every job committed exactly once; a dead daemon's leftovers are taken back by
/// a live one, a live one's are left alone.
@Suite("quantd run: several daemons on one spool")
struct SharedSpoolTests {
    static let fast = ["--settle-seconds", "0", "--threads", "1", "--set", "rescan_seconds=1"]

    /// Rename-dropped jobs, some there before the daemons start (each daemon's first scan races the others),
    /// the rest while they all watch (all three see each inotify event at once).
    @Test func threeDaemonsThirtyJobsEachCommittedExactlyOnce() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        try FileManager.default.createDirectory(atPath: scratch.incoming, withIntermediateDirectories: true)
        let names = (0..<30).map { String(format: "job%02d.safetensors", $0) }
        for (index, name) in names.prefix(12).enumerated() {
            try scratch.drop(Checkpoint.layers(1 + index % 3, seed: UInt64(100 + index)).bytes, as: name)
        }
        var daemons: [DaemonProcess] = []
        defer { for daemon in daemons { daemon.stop() } }
        for instance in ["a", "b", "c"] {
            daemons.append(try DaemonProcess(
                arguments: ["run", "--spool", scratch.spool, "--set", "instance=\(instance)", "--max-jobs", "2"]
                    + Self.fast,
                scratch: scratch, logFile: scratch.path + "/\(instance).log"))
        }
        for daemon in daemons { try await daemon.waitFor("watching") }
        for (index, name) in names.enumerated().dropFirst(12) {
            try scratch.drop(Checkpoint.layers(1 + index % 3, seed: UInt64(100 + index)).bytes, as: name)
        }
        let deadline = Date().addingTimeInterval(120)
        while scratch.names("done").count < names.count && Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        for daemon in daemons { daemon.signal(SIGTERM) }
        for daemon in daemons { #expect(try await daemon.waitForExit() == 0) }
        #expect(scratch.names("done") == names)
        #expect(scratch.names("out") == names.map { String($0.dropLast(".safetensors".count)) }, "one output each")
        #expect(scratch.names("failed").isEmpty)
        #expect(scratch.names("incoming").isEmpty && scratch.names("active").isEmpty)
        var committed: [String] = []
        for daemon in daemons {
            let lines = try daemon.lines()
            committed += lines.filter { $0["event"] as? String == "committed" }.compactMap { $0["job"] as? String }
            #expect(!lines.contains { ["failed", "claim_failed", "requeued"].contains($0["event"] as? String) })
        }
        #expect(committed.sorted() == names, "each job committed by exactly one daemon")
        #expect(scratch.names("locks") == ["a.lock", "b.lock", "c.lock"])
    }

    /// Daemon `live` starts while daemon `dead` is in the middle of a job (stopped there) and leaves it alone
    /// over several rescans; once `dead` is killed, `live` (at its next rescan) takes back its claim and
    /// staging and commits the job.
    @Test func liveInstanceIsLeftAloneDeadOneIsTakenBack() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        try FileManager.default.createDirectory(atPath: scratch.incoming, withIntermediateDirectories: true)
        func daemon(_ instance: String) throws -> DaemonProcess {
            try DaemonProcess(
                arguments: ["run", "--spool", scratch.spool, "--set", "instance=\(instance)"] + Self.fast
                    + EngineJobTests.slow,
                scratch: scratch, logFile: scratch.path + "/\(instance).log")
        }
        let dead = try daemon("dead")
        defer { dead.stop() }
        try await dead.waitFor("watching")
        try scratch.drop(EngineJobTests.large, as: "first.safetensors")
        try await EngineJobTests().waitForStaging(scratch, "first")
        let staging = scratch.names("out").filter { $0.hasPrefix(".first.tmp-") }
        #expect(staging.count == 1 && staging.allSatisfy { $0.hasPrefix(".first.tmp-dead-") }, "\(staging)")
        // Frozen in the middle of its job, but alive (its lock held): however fast the machine.
        dead.signal(SIGSTOP)

        let live = try daemon("live")
        defer { live.stop() }
        // Its start's recovery pass has run by `watching`; later rescans decide the same from the same listings
        // (RecoveryPlanTests.aRescanWithEveryInstanceAliveDoesNothing).
        try await live.waitFor("watching")
        #expect(scratch.names("active") == [".dead.first.safetensors.job", "dead.first.safetensors"])
        #expect(scratch.names("out").filter { $0.hasPrefix(".") } == staging, "the live one's staging stays")
        let events = try live.lines().compactMap { $0["event"] as? String }
        #expect(!events.contains("requeued") && !events.contains("staging_removed") && !events.contains("staging_kept"))
        #expect(!events.contains("instance_dead"))

        dead.signal(SIGKILL)
        _ = try await dead.waitForExit()
        let found = try await live.waitFor("instance_dead")
        #expect(found.first?["instance"] as? String == "dead")
        let requeued = try await live.waitFor("requeued")
        #expect(requeued.first?["claim"] as? String == scratch.spool + "/active/dead.first.safetensors")
        // The dead one's staging is kept for the requeued job (taken over if its journal had begun: it was frozen
        // just after the folder appeared, so maybe not).
        let kept = try await live.waitFor("staging_kept")
        #expect((kept.first?["path"] as? String)?.contains("/out/.first.tmp-dead-") == true)
        try await live.waitFor("committed", timeout: 120)
        #expect(scratch.names("out") == ["first"])
        #expect(scratch.names("done") == ["first.safetensors"])
        #expect(scratch.names("active").isEmpty)
        live.signal(SIGTERM)
        #expect(try await live.waitForExit() == 0)
    }

    /// A dead instance's staging folder that a process holds (flock, as a job of this daemon holds the one it
    /// took over to resume) is left alone at every rescan; once released it is removed at the next one.
    @Test func aHeldStagingFolderOfADeadInstanceIsLeftUntilReleased() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        for folder in ["incoming", "locks", "out"] {
            try FileManager.default.createDirectory(atPath: scratch.spool + "/" + folder,
                                                    withIntermediateDirectories: true)
        }
        // A ghost instance: its lock file exists and nobody holds it, so it is dead.
        #expect(FileManager.default.createFile(atPath: scratch.spool + "/locks/ghost.lock", contents: nil))
        let staging = scratch.spool + "/out/.gone.tmp-ghost-7"
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: false)
        #expect(FileManager.default.createFile(atPath: staging + "/file-0.safetensors", contents: Data([1, 2, 3])))
        let folder = open(staging, O_RDONLY | O_DIRECTORY)
        #expect(folder >= 0)
        #expect(flock(folder, LOCK_EX | LOCK_NB) == 0)
        var released = false
        defer { if !released { close(folder) } }

        let daemon = try DaemonProcess(
            arguments: ["run", "--spool", scratch.spool, "--set", "instance=live"] + Self.fast,
            scratch: scratch, logFile: scratch.path + "/live.log")
        defer { daemon.stop() }
        try await daemon.waitFor("watching")
        try await Task.sleep(for: .seconds(3)) // the start's pass and two rescans at least
        #expect(FileManager.default.fileExists(atPath: staging), "a held staging folder stays")
        #expect(!(try daemon.lines()).contains { $0["event"] as? String == "staging_removed" })

        close(folder)
        released = true
        let removed = try await daemon.waitFor("staging_removed", timeout: 30)
        #expect(removed.first?["path"] as? String == staging)
        #expect(!FileManager.default.fileExists(atPath: staging))
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
    }

    @Test func aSpoolFolderThatIsAFileIsRefusedByName() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let root = scratch.path + "/odd-spool"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: false)
        #expect(FileManager.default.createFile(atPath: root + "/incoming", contents: Data("not a folder".utf8)))
        let daemon = try DaemonProcess(
            arguments: ["run", "--spool", root] + Self.fast, scratch: scratch, logFile: scratch.path + "/odd.log")
        defer { daemon.stop() }
        #expect(try await daemon.waitForExit(timeout: 30) == 73)
        let refusal = try await daemon.waitFor("start_failed")
        #expect(refusal.first?["reason"] as? String == root + "/incoming is a file, not a folder")
    }

    @Test func aSecondDaemonWithTheSameInstanceRefusesToStart() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let first = try DaemonProcess(
            arguments: ["run", "--spool", scratch.spool, "--set", "instance=twin"] + Self.fast, scratch: scratch)
        defer { first.stop() }
        try await first.waitFor("watching")
        let second = try DaemonProcess(
            arguments: ["run", "--spool", scratch.spool, "--set", "instance=twin"] + Self.fast, scratch: scratch,
            logFile: scratch.path + "/second.log")
        defer { second.stop() }
        #expect(try await second.waitForExit(timeout: 30) == 73)
        let refusal = try await second.waitFor("start_failed")
        #expect((refusal.first?["reason"] as? String)?.contains("instance 'twin' is already running") == true)
        #expect(first.process.isRunning)
        first.signal(SIGTERM)
        #expect(try await first.waitForExit() == 0)
    }
}
