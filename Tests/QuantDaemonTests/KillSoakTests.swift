import Foundation
import Glibc
import Testing
import TestSupport

/// SIGKILL at seeded random moments across many jobs, a restart after each: every input ends exactly once in
/// `out/` (with `done/`) or `failed/`, no partial output is ever visible in `out/`, nothing is lost.
/// `QUANTD_SOAK_KILLS=N` makes it longer (scripts/soak.sh); the default stays within a minute.
@Suite("quantd run: SIGKILL soak")
struct KillSoakTests {
    static let kills = Int(ProcessInfo.processInfo.environment["QUANTD_SOAK_KILLS"] ?? "") ?? 30

    /// Where each input is: every name must be in exactly one place at every moment between kills.
    func places(_ scratch: TempDir) -> [String: [String]] {
        var found: [String: [String]] = [:]
        for folder in ["incoming", "active", "done", "failed"] {
            for entry in scratch.names(folder) where !entry.hasPrefix(".") && !entry.hasSuffix(".error.json") {
                let name = folder == "active" && entry.hasPrefix("soak.") ? String(entry.dropFirst(5)) : entry
                found[name, default: []].append(folder)
            }
        }
        return found
    }

    @Test func sigkillAtRandomMomentsLosesNothingAndCommitsOnce() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        try FileManager.default.createDirectory(atPath: scratch.incoming, withIntermediateDirectories: true)
        var random = SeededRandom(seed: 2026)
        let count = max(90, 3 * Self.kills)
        var good: [String] = []
        var bad: [String] = []
        for index in 0..<count {
            let name = String(format: "in%03d.safetensors", index)
            var bytes = Checkpoint.layers(Int.random(in: 1...4, using: &random),
                                          rows: 64 * Int.random(in: 1...4, using: &random), cols: 512,
                                          seed: UInt64(index)).bytes
            if index % 10 == 9 {
                bytes[0] = 0xFF  // header length past the end: quarantined
                bad.append(name)
            } else {
                good.append(name)
            }
            try scratch.drop(bytes, as: name)
        }
        let arguments = ["run", "--spool", scratch.spool, "--set", "instance=soak", "--settle-seconds", "0",
                         "--threads", "1", "--max-jobs", "2", "--set", "rescan_seconds=0.5",
                         "--set", "quantize.level=19"]
        var verified = Set<String>()
        var killedWithClaims = 0
        for round in 1...Self.kills {
            let daemon = try DaemonProcess(arguments: arguments, scratch: scratch)
            defer { daemon.stop() }
            // The kill lands at a seeded moment after the daemon has begun (its `started` line, written before
            // recovery and the first scan): on a loaded machine a kill 20 ms after the spawn can come before the
            // process has run at all, which tests nothing.
            try await daemon.waitFor("started", count: round)
            try await Task.sleep(for: .milliseconds(Int.random(in: 20...400, using: &random)))
            if scratch.names("active").contains(where: { $0.hasPrefix("soak.") }) { killedWithClaims += 1 }
            daemon.signal(SIGKILL)
            _ = try await daemon.waitForExit()
            // Between kills: each input in exactly one place, every output in out/ complete.
            let at = places(scratch)
            #expect(Set(at.keys) == Set(good + bad), "round \(round): nothing lost, nothing added")
            for (name, folders) in at where folders.count != 1 {
                Issue.record("round \(round): \(name) is in \(folders)")
            }
            for output in scratch.names("out") where !output.hasPrefix(".") && !verified.contains(output) {
                let result = Shell.run(Paths.quantd, ["verify", scratch.spool + "/out/" + output])
                #expect(result.status == 0, "round \(round): out/\(output) is not a complete output")
                verified.insert(output)
            }
        }
        let started = try readLog(scratch.log).count { $0["event"] as? String == "watching" }
        let last = try DaemonProcess(arguments: arguments, scratch: scratch)
        defer { last.stop() }
        try await last.waitFor("watching", count: started + 1)
        try await scratch.waitUntilDrained(last, timeout: 120)
        last.signal(SIGTERM)
        #expect(try await last.waitForExit() == 0)

        #expect(scratch.names("done") == good)
        #expect(scratch.names("out") == good.map { String($0.dropLast(".safetensors".count)) }, "each output once")
        for output in scratch.names("out") where !verified.contains(output) {
            #expect(Shell.run(Paths.quantd, ["verify", scratch.spool + "/out/" + output]).status == 0)
        }
        #expect(scratch.names("failed") == bad.flatMap { [$0, $0 + ".error.json"] }.sorted(), "each bad input once")
        for name in bad { #expect(try scratch.record(name)["name"] as? String == name) }
        #expect(scratch.names("incoming").isEmpty && scratch.names("active").isEmpty, "\(scratch.names("active"))")
        // Every line of every run is JSON (readLog throws otherwise).
        let lines = try last.lines()
        let events = lines.compactMap { $0["event"] as? String }
        let told = lines.filter { ["committed", "commit_recovered"].contains($0["event"] as? String) }
        #expect(Set(told.compactMap { $0["job"] as? String }) == Set(good), "the log tells each commit")
        #expect(events.filter { $0 == "started" }.count == Self.kills + 1)
        print("soak: \(events.filter { $0 == "started" }.count - 1) kills, \(killedWithClaims) with jobs claimed, "
              + "\(events.filter { $0 == "requeued" }.count) requeued, "
              + "\(events.filter { $0 == "staging_removed" }.count) staging removed, "
              + "\(events.filter { $0 == "commit_recovered" }.count) commits recovered, "
              + "\(events.filter { $0 == "record_recovered" }.count) records recovered, "
              + "\(events.filter { $0 == "committed" }.count) committed")
    }
}
