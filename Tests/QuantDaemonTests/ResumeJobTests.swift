import Foundation
import Glibc
import Testing
import TestSupport

/// SIGKILL in the middle of a sharded job, daemon and `quantize` alike: after the restart the job resumes from its
/// staging folder, keeps the shards its journal proved finished (the same files, not written again), and commits
/// the bytes an uninterrupted run commits.
@Suite("Resume after SIGKILL")
struct ResumeJobTests {
    static let shards = 4

    /// A 4-shard folder with its index: each shard 3 MiB of fp32, seconds of work at zstd level 19 on one thread.
    static func makeFolder(at path: String, seed: UInt64) throws {
        var folder = ShardedCheckpoint()
        for k in 1...shards {
            folder.add("model-0000\(k)-of-0000\(shards).safetensors",
                       .uniform([("layer\(k).weight", [768, 1024])], seed: seed + UInt64(k)))
        }
        try folder.write(to: path)
    }

    /// The staging folders of `output` (`.NAME.tmp-*` beside it) and the journal entries in the first.
    static func journaled(_ output: String) -> (staging: String?, entries: [String]) {
        let parent = (output as NSString).deletingLastPathComponent
        let prefix = "." + (output as NSString).lastPathComponent + ".tmp-"
        let staging = ((try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [])
            .filter { $0.hasPrefix(prefix) }.sorted().first.map { parent + "/" + $0 }
        guard let staging else { return (nil, []) }
        let entries = ((try? FileManager.default.contentsOfDirectory(atPath: staging + "/.journal")) ?? [])
            .filter { $0.hasPrefix("file-") }.sorted()
        return (staging, entries)
    }

    /// Waits until `output`'s journal holds `count` finished files, then a seeded 0 to 60 ms more (less than a shard
    /// takes: a kill then finds at most one more shard journaled).
    static func waitForJournal(_ output: String, count: Int, rng: inout SeededRandom, timeout: Double = 60) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if journaled(output).entries.count >= count {
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...60, using: &rng)))
                return
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw TestError("the journal of \(output) never held \(count) files")
    }

    /// inode and mtime of each kept output in the staging folder, to compare with the committed folder's.
    static func identities(_ staging: String, _ entries: [String]) throws -> [String: [Int]] {
        var found: [String: [Int]] = [:]
        for entry in entries {
            let index = Int(entry.dropFirst("file-".count).dropLast(".json".count))!
            let name = "model-0000\(index + 1)-of-0000\(shards).safetensors.zst"
            var status = stat()
            guard lstat(staging + "/" + name, &status) == 0 else { throw TestError("no \(name) in \(staging)") }
            found[name] = [Int(status.st_ino), status.st_mtim.tv_sec, status.st_mtim.tv_nsec]
        }
        return found
    }

    /// Every file of an output folder, the manifest without its clock fields.
    static func contents(_ folder: String) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder) {
            var data = try Data(contentsOf: URL(fileURLWithPath: folder + "/" + name))
            if name == "manifest.json" {
                var manifest = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
                for key in ["started_at", "finished_at", "timings"] { manifest[key] = nil }
                data = try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys])
            }
            files[name] = data
        }
        return files
    }

    static func identitiesAfter(_ folder: String, _ names: some Sequence<String>) throws -> [String: [Int]] {
        var found: [String: [Int]] = [:]
        for name in names {
            var status = stat()
            guard lstat(folder + "/" + name, &status) == 0 else { throw TestError("no \(name) in \(folder)") }
            found[name] = [Int(status.st_ino), status.st_mtim.tv_sec, status.st_mtim.tv_nsec]
        }
        return found
    }

    @Test(arguments: [UInt64(5), 17])
    func aDaemonKilledTwiceMidJobResumesAndCommitsTheUninterruptedBytes(seed: UInt64) async throws {
        var rng = SeededRandom(seed: seed)
        let scratch = TempDir()
        defer { scratch.remove() }
        try FileManager.default.createDirectory(atPath: scratch.incoming, withIntermediateDirectories: true)
        let arguments = ["run", "--spool", scratch.spool, "--set", "instance=resumer", "--settle-seconds", "0",
                         "--threads", "1", "--set", "rescan_seconds=30"] + EngineJobTests.slow
        // The uninterrupted run, in a spool of its own.
        let reference = TempDir()
        defer { reference.remove() }
        try FileManager.default.createDirectory(atPath: reference.incoming, withIntermediateDirectories: true)
        try Self.makeFolder(at: reference.path + "/model", seed: seed)
        guard rename(reference.path + "/model", reference.incoming + "/model") == 0 else { throw TestError("rename") }
        do {
            let daemon = try DaemonProcess(
                arguments: ["run", "--spool", reference.spool, "--settle-seconds", "0", "--threads", "1"]
                    + EngineJobTests.slow, scratch: reference)
            defer { daemon.stop() }
            try await daemon.waitFor("committed", timeout: 120)
        }

        try Self.makeFolder(at: scratch.path + "/model", seed: seed)
        guard rename(scratch.path + "/model", scratch.incoming + "/model") == 0 else { throw TestError("rename") }
        let output = scratch.spool + "/out/model"
        var kept: [String: [Int]] = [:]
        // Killed once with 1 or 2 shards journaled, then again, once it has resumed, with one more (the first kill
        // may land just after a further shard was journaled: the second waits for one more than it kept, and
        // leaves the last shard undone).
        let firstKill = Int.random(in: 1...2, using: &rng)
        for round in 0..<2 {
            let daemon = try DaemonProcess(arguments: arguments, scratch: scratch,
                                           logFile: scratch.path + "/round\(round).log")
            defer { daemon.stop() }
            var count = firstKill
            if round == 1 {
                let resumed = try #require(try await daemon.waitFor("resumed").first)
                let keptThen = resumed["kept"] as? Int ?? 0
                #expect(keptThen >= firstKill)
                count = min(keptThen + 1, Self.shards - 1)
            }
            try await Self.waitForJournal(output, count: count, rng: &rng)
            daemon.signal(SIGKILL)
            _ = try await daemon.waitForExit()
            #expect(!FileManager.default.fileExists(atPath: output), "nothing committed yet, round \(round)")
            let (staging, entries) = Self.journaled(output)
            kept = try Self.identities(try #require(staging), entries)
        }
        let daemon = try DaemonProcess(arguments: arguments, scratch: scratch, logFile: scratch.path + "/last.log")
        defer { daemon.stop() }
        let keptLine = try await daemon.waitFor("staging_kept")
        #expect((keptLine.first?["path"] as? String)?.contains("/out/.model.tmp-resumer-") == true)
        let resumed = try #require(try await daemon.waitFor("resumed").first)
        let keptFiles = Set(((resumed["kept_files"] as? String) ?? "").split(separator: ",").map(String.init))
        #expect(keptFiles == Set(kept.keys), "the log names what the journal proved finished")
        #expect(resumed["kept"] as? Int == kept.count && resumed["files"] as? Int == Self.shards)
        try await daemon.waitFor("committed", timeout: 120)
        let (resumedFiles, referenceFiles) = (try Self.contents(output), try Self.contents(reference.spool + "/out/model"))
        let differing = Set(resumedFiles.keys).union(referenceFiles.keys).filter { resumedFiles[$0] != referenceFiles[$0] }
        #expect(differing.isEmpty, "byte for byte the uninterrupted output; differ: \(differing.sorted())")
        #expect(try Self.identitiesAfter(output, kept.keys) == kept, "kept shards were not written again")
        #expect(!FileManager.default.fileExists(atPath: output + "/.journal"))
        #expect(scratch.names("out") == ["model"])
    }

    @Test func quantizeKilledMidJobResumesOnTheSameCommand() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        try Self.makeFolder(at: scratch.path + "/model", seed: 3)
        let flags = ["--level", "19", "--threads", "1"]
        let reference = Shell.run(Paths.quantd, ["quantize", scratch.path + "/model", "-o", scratch.path + "/ref"] + flags)
        #expect(reference.status == 0, "\(reference.stderr)")

        var rng = SeededRandom(seed: 9)
        let output = scratch.path + "/out"
        let command = ["quantize", scratch.path + "/model", "-o", output] + flags
        let killed = try DaemonProcess(arguments: command, scratch: scratch, logToFile: false)
        defer { killed.stop() }
        try await Self.waitForJournal(output, count: 2, rng: &rng)
        killed.signal(SIGKILL)
        _ = try await killed.waitForExit()
        let (staging, entries) = Self.journaled(output)
        let kept = try Self.identities(try #require(staging), entries)

        let resumed = Shell.run(Paths.quantd, command)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("quantd: resumed \(output) from an interrupted run: kept \(kept.count) of 4"),
                "\(resumed.stderr)")
        #expect(try Self.contents(output) == Self.contents(scratch.path + "/ref"))
        #expect(try Self.identitiesAfter(output, kept.keys) == kept)

        // --no-resume starts afresh (and removes nothing it does not own).
        let again = Shell.run(Paths.quantd, command.map { $0 == output ? scratch.path + "/out2" : $0 } + ["--no-resume"])
        #expect(again.status == 0 && !again.stderr.contains("resumed"))
    }
}
