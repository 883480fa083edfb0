import Foundation
import Glibc
import Testing
import TestSupport

/// Whole jobs through the real binary and the real engine: commits, quarantine, crashes.
@Suite("quantd run: jobs end to end")
struct EngineJobTests {
    static let fast = ["--set", "rescan_seconds=30", "--settle-seconds", "1", "--threads", "1"]

    /// Checks an output folder: the manifest (commit marker) and a compressed file per source file.
    func expectCommitted(_ scratch: TempDir, _ name: String, files: Int = 1) throws {
        let folder = scratch.spool + "/out/" + name
        let manifestData = try Data(contentsOf: URL(fileURLWithPath: folder + "/manifest.json"))
        let manifest = try #require(try JSONSerialization.jsonObject(with: manifestData) as? [String: Any])
        let outputs = try #require(manifest["outputs"] as? [[String: Any]])
        let zst = outputs.compactMap { $0["file"] as? String }.filter { $0.hasSuffix(".safetensors.zst") }
        #expect(zst.count == files)
        for file in zst { #expect(FileManager.default.fileExists(atPath: folder + "/" + file)) }
    }

    func expectNoStaging(_ scratch: TempDir) {
        #expect(scratch.names("out").allSatisfy { !$0.hasPrefix(".") }, "staging left: \(scratch.names("out"))")
    }

    @Test func droppedByRenameIsCommittedExactlyOnce() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let daemon = try DaemonProcess(arguments: ["run", "--spool", scratch.spool] + Self.fast, scratch: scratch)
        defer { daemon.stop() }
        try await daemon.waitFor("watching")
        try scratch.drop(Checkpoint.layers(seed: 1).bytes, as: "alpha.safetensors")
        try scratch.drop(Checkpoint.layers(3, seed: 2).bytes, as: "beta.safetensors")
        let committed = try await daemon.waitFor("committed", count: 2)
        #expect(Set(committed.compactMap { $0["job"] as? String }) == ["alpha.safetensors", "beta.safetensors"])
        for line in committed {
            #expect((line["compressed_bytes"] as? Int ?? 0) > 0 && (line["ratio"] as? Double ?? 0) > 1)
            #expect(line["seconds"] is Double || line["seconds"] is Int)
            #expect(line["worst_tensor"] is String)
        }
        try expectCommitted(scratch, "alpha")
        try expectCommitted(scratch, "beta")
        #expect(scratch.names("out") == ["alpha", "beta"])
        #expect(scratch.names("done") == ["alpha.safetensors", "beta.safetensors"])
        #expect(scratch.names("incoming").isEmpty)
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
        // Checked once the daemon is gone: a job's journal leaves active/ just after its `committed` line.
        #expect(scratch.names("active").isEmpty)
        #expect(try daemon.lines().filter { $0["event"] as? String == "committed" }.count == 2)
    }

    /// The contract at the file level: `out/NAME/NAME.safetensors.zst`, and the manifest names the source as the
    /// producer dropped it, whatever the daemon's instance (its claim is `active/<instance>.NAME`).
    @Test func outputsAreNamedAfterTheDroppedFile() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let daemon = try DaemonProcess(arguments: ["run", "--spool", scratch.spool, "--set", "instance=vm"] + Self.fast,
                                       scratch: scratch)
        defer { daemon.stop() }
        try await daemon.waitFor("watching")
        try scratch.drop(Checkpoint.layers(seed: 7).bytes, as: "mini.safetensors")
        try await daemon.waitFor("committed")
        #expect(scratch.names("out/mini") == ["manifest.json", "mini.safetensors.zst"])
        let manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(
            fileURLWithPath: scratch.spool + "/out/mini/manifest.json"))) as? [String: Any])
        let sources = try #require(manifest["sources"] as? [[String: Any]])
        let outputs = try #require(manifest["outputs"] as? [[String: Any]])
        #expect(sources.compactMap { $0["file"] as? String } == ["mini.safetensors"])
        #expect(outputs.compactMap { $0["source"] as? String } == ["mini.safetensors"])
        let tested = Shell.run("/usr/bin/env", ["zstd", "-t", "-q", scratch.spool + "/out/mini/mini.safetensors.zst"])
        #expect(tested.status == 0, "zstd -t: \(tested.stdout)")
    }

    /// A model folder (weights, config.json, tokenizer files, a subfolder) comes out whole, and `quantd unpack`
    /// gives back a plain folder holding every file as it was beside the decompressed quantized weights.
    @Test func modelFolderTravelsWholeAndUnpacks() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let daemon = try DaemonProcess(arguments: ["run", "--spool", scratch.spool] + Self.fast, scratch: scratch)
        defer { daemon.stop() }
        try await daemon.waitFor("watching")
        let staging = scratch.incoming + "/.model.partial"
        try FileManager.default.createDirectory(atPath: staging + "/1_Pooling", withIntermediateDirectories: true)
        try Checkpoint.uniform([("encoder.dense.weight", [64, 128]), ("embeddings.word_embeddings.weight", [100, 64])],
                               seed: 20).write(to: staging + "/model.safetensors")
        let carried: [String: String] = [
            "config.json": #"{"model_type": "bert", "architectures": ["BertModel"]}"#,
            "tokenizer.json": #"{"version": "1.0", "model": {"type": "WordPiece"}}"#, "vocab.txt": "[PAD]\nhello\n",
            "1_Pooling/config.json": #"{"pooling_mode_mean_tokens": true}"#, "README.md": "# card\n",
        ]
        for (name, text) in carried { try Data(text.utf8).write(to: URL(fileURLWithPath: staging + "/" + name)) }
        #expect(rename(staging, scratch.incoming + "/model") == 0)
        try await daemon.waitFor("committed")
        let out = scratch.spool + "/out/model"
        let unpacked = scratch.path + "/model-unpacked"
        let result = Shell.run(Paths.quantd, ["unpack", out, "-o", unpacked])
        #expect(result.status == 0, "unpack: \(result.stdout)")
        for (name, text) in carried where name != "config.json" {
            #expect(try Data(contentsOf: URL(fileURLWithPath: unpacked + "/" + name)) == Data(text.utf8), "\(name)")
        }
        let config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(
            fileURLWithPath: unpacked + "/config.json"))) as? [String: Any])
        let quantization = try #require(config["quantization_config"] as? [String: Any])
        #expect(quantization["format"] as? String == "pack-quantized")
        #expect(quantization["ignore"] as? [String] == ["embeddings.word_embeddings"])
        let weights = try Data(contentsOf: URL(fileURLWithPath: unpacked + "/model.safetensors"))
        #expect(String(decoding: weights.prefix(4096), as: UTF8.self).contains("encoder.dense.weight_packed"))
        #expect(!FileManager.default.fileExists(atPath: unpacked + "/manifest.json"))
    }

    @Test func slowInPlaceWriterIsCommittedWholeAndOnce() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let daemon = try DaemonProcess(arguments: ["run", "--spool", scratch.spool] + Self.fast, scratch: scratch)
        defer { daemon.stop() }
        try await daemon.waitFor("watching")
        let bytes = Checkpoint.layers(4, seed: 3).bytes
        let fd = open(scratch.incoming + "/slow.safetensors", O_WRONLY | O_CREAT | O_EXCL, 0o644)
        #expect(fd >= 0)
        let half = bytes.count / 2
        #expect(bytes.withUnsafeBytes { write(fd, $0.baseAddress, half) } == half)
        try await Task.sleep(for: .seconds(2.5))
        #expect(bytes.withUnsafeBytes { write(fd, $0.baseAddress! + half, bytes.count - half) } == bytes.count - half)
        close(fd)
        let committed = try await daemon.waitFor("committed")
        #expect(committed.first?["source_bytes"] as? Int == 4 * 64 * 64 * 4)
        try expectCommitted(scratch, "slow")
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
        #expect(try daemon.lines().filter { $0["event"] as? String == "claimed" }.count == 1)
        #expect(scratch.names("failed").isEmpty)
    }

    @Test func shardedFolderIsOneJob() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let daemon = try DaemonProcess(arguments: ["run", "--spool", scratch.spool] + Self.fast, scratch: scratch)
        defer { daemon.stop() }
        try await daemon.waitFor("watching")
        let staging = scratch.incoming + "/.sharded.partial"
        var model = ShardedCheckpoint()
        for (index, shard) in ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"].enumerated() {
            let names = ["layer\(2 * index).weight", "layer\(2 * index + 1).weight"]
            model.add(shard, Checkpoint.uniform(names.map { ($0, [32, 48]) }, seed: UInt64(10 + index)))
        }
        try model.write(to: staging)
        try Data(#"{"model_type": "test", "hidden_size": 48}"#.utf8)
            .write(to: URL(fileURLWithPath: staging + "/config.json"))
        #expect(rename(staging, scratch.incoming + "/sharded") == 0)
        try await daemon.waitFor("committed")
        try expectCommitted(scratch, "sharded", files: 2)
        let out = scratch.spool + "/out/sharded/"
        #expect(FileManager.default.fileExists(atPath: out + "model.safetensors.index.json"))
        #expect(scratch.names("done") == ["sharded"])
    }

    @Test func brokenInputIsQuarantinedWhileTheNextIsCommitted() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let daemon = try DaemonProcess(arguments: ["run", "--spool", scratch.spool] + Self.fast, scratch: scratch)
        defer { daemon.stop() }
        try await daemon.waitFor("watching")
        var broken = Checkpoint.layers(seed: 4).bytes
        broken[0] = 0xFF  // header length far past the end of the file
        broken[5] = 0x7F
        try scratch.drop(broken, as: "broken.safetensors")
        try scratch.drop(Checkpoint.layers(seed: 5).bytes, as: "fine.safetensors")
        let failed = try await daemon.waitFor("failed")
        #expect(failed.first?["job"] as? String == "broken.safetensors")
        #expect(failed.first?["kind"] as? String == "badInput")
        try await daemon.waitFor("committed") { $0["job"] as? String == "fine.safetensors" }
        #expect(scratch.names("failed") == ["broken.safetensors", "broken.safetensors.error.json"])
        let record = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(
            fileURLWithPath: scratch.spool + "/failed/broken.safetensors.error.json"))) as? [String: Any])
        #expect(record["kind"] as? String == "badInput")
        #expect(record["stage"] is String && record["reason"] is String && record["time"] is String)
        #expect(record["quantd_version"] is String)
        #expect(try Data(contentsOf: URL(fileURLWithPath: scratch.spool + "/failed/broken.safetensors"))
            == Data(broken), "quarantined as it was")
        expectNoStaging(scratch)
    }

    @Test func existingOutputGetsADistinctNameAndIsLeftAlone() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        try FileManager.default.createDirectory(atPath: scratch.spool + "/out/twin", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: scratch.spool + "/out/twin/keep.txt", contents: Data("mine".utf8))
        let daemon = try DaemonProcess(
            arguments: ["run", "--spool", scratch.spool, "--set", "keep_inputs=false"] + Self.fast, scratch: scratch)
        defer { daemon.stop() }
        try await daemon.waitFor("watching")
        try scratch.drop(Checkpoint.layers(seed: 6).bytes, as: "twin.safetensors")
        let renamed = try await daemon.waitFor("output_renamed")
        #expect((renamed.first?["output"] as? String)?.hasSuffix("out/twin.2") == true)
        try await daemon.waitFor("committed")
        try expectCommitted(scratch, "twin.2")
        #expect(scratch.names("out") == ["twin", "twin.2"])
        #expect(try String(contentsOfFile: scratch.spool + "/out/twin/keep.txt", encoding: .utf8) == "mine")
        #expect(scratch.names("done").isEmpty, "keep_inputs = false deletes the input after the commit")
    }

    /// Waits until the engine stages `out/.NAME.tmp-*`: the job is then certainly in the middle.
    /// Waits for a staging folder of `name`; with `journaled`, for one holding its resume journal (`job.json`),
    /// the point from which a killed job's folder is taken over: a folder killed before it is removed instead.
    func waitForStaging(_ scratch: TempDir, _ name: String, journaled: Bool = false) async throws {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let staging = scratch.names("out").filter { $0.hasPrefix("." + name + ".tmp-") }
            if !journaled && !staging.isEmpty { return }
            if journaled && staging.contains(where: {
                FileManager.default.fileExists(atPath: scratch.spool + "/out/" + $0 + "/.journal/job.json")
            }) { return }
            if scratch.names("out").contains(name) { throw TestError("the job ended before it was seen running") }
            try await Task.sleep(for: .milliseconds(2))
        }
        throw TestError("no staging folder for \(name)\(journaled ? " with a journal" : "")")
    }

    /// Settings that make a job take seconds whatever the machine: zstd level 19 is about 100 times slower than 3.
    static let slow = ["--set", "quantize.level=19"]

    /// About 48 MB of fp32: at level 19 on one thread, long enough to be killed in the middle.
    static let large = Checkpoint.uniform((0..<12).map { ("block\($0).weight", [1024, 1024]) }, seed: 99).bytes

    @Test func sigkillMidJobTwiceThenTheJobCompletes() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let arguments = ["run", "--spool", scratch.spool, "--set", "instance=crashy"] + Self.fast + Self.slow
        try FileManager.default.createDirectory(atPath: scratch.incoming, withIntermediateDirectories: true)
        try scratch.drop(Self.large, as: "big.safetensors")
        for round in 1...2 {
            let daemon = try DaemonProcess(arguments: arguments, scratch: scratch)
            defer { daemon.stop() }
            try await daemon.waitFor("claimed", count: round)
            // Killed once its journal is there: the last run must find a folder to take over (`resumed`).
            try await waitForStaging(scratch, "big", journaled: true)
            daemon.signal(SIGKILL)
            _ = try await daemon.waitForExit()
            // No partial output under its final name; the input is still in the spool.
            #expect(!FileManager.default.fileExists(atPath: scratch.spool + "/out/big"), "round \(round)")
            #expect(scratch.names("active") == [".crashy.big.safetensors.job", "crashy.big.safetensors"],
                    "the claim and its journal, round \(round)")
            let out = scratch.names("out")
            #expect(out.allSatisfy { $0.hasPrefix(".big.tmp-") }, "only staging: \(out)")
        }
        let daemon = try DaemonProcess(arguments: arguments, scratch: scratch)
        defer { daemon.stop() }
        try await daemon.waitFor("committed", timeout: 90)
        let lines = try daemon.lines()
        #expect(lines.filter { $0["event"] as? String == "requeued" }.count >= 2)
        // The staging folder of the killed job is kept for it and taken over (nothing in it was finished: one file).
        #expect(lines.contains { $0["event"] as? String == "staging_kept" })
        #expect(lines.contains { $0["event"] as? String == "resumed" && $0["kept"] as? Int == 0 })
        try expectCommitted(scratch, "big")
        #expect(scratch.names("out") == ["big"])
        #expect(scratch.names("done") == ["big.safetensors"])
        #expect(scratch.names("active").isEmpty && scratch.names("incoming").isEmpty)
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
    }

    @Test func sigtermLetsTheRunningJobFinish() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let socket = try NotifySocket(path: scratch.path + "/notify.sock")
        let daemon = try DaemonProcess(
            arguments: ["run", "--spool", scratch.spool] + Self.fast + Self.slow, scratch: scratch,
            environment: ["NOTIFY_SOCKET": socket.path])
        defer { daemon.stop() }
        try await daemon.waitFor("watching")
        try scratch.drop(Self.large, as: "last.safetensors")
        try await waitForStaging(scratch, "last")
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit(timeout: 90) == 0)
        // `progress` lines go on while the job finishes (every progress_seconds): the order of the rest is the contract.
        let events = try daemon.lines().compactMap { $0["event"] as? String }.filter { $0 != "progress" }
        #expect(events.suffix(3) == ["stopping", "committed", "stopped"])
        let messages = try await socket.receive(timeout: 1) { _ in false }
        #expect(messages.contains { $0.contains("STOPPING=1") })
        #expect(messages.contains { $0.hasPrefix("EXTEND_TIMEOUT_USEC=") })
        try expectCommitted(scratch, "last")
    }

    @Test func sigtermPastTheGraceCancelsAndRequeues() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let daemon = try DaemonProcess(
            arguments: ["run", "--spool", scratch.spool, "--set", "shutdown_grace_seconds=0"] + Self.fast + Self.slow,
            scratch: scratch)
        defer { daemon.stop() }
        try await daemon.waitFor("watching")
        try scratch.drop(Self.large, as: "cut.safetensors")
        try await waitForStaging(scratch, "cut")
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit(timeout: 60) == 0)
        let events = try daemon.lines().compactMap { $0["event"] as? String }
        if events.contains("committed") {
            // The engine finished before it saw the flag: still a clean, complete commit.
            try expectCommitted(scratch, "cut")
        } else {
            #expect(events.contains("cancelling") && events.contains("requeued"))
            #expect(scratch.names("incoming") == ["cut.safetensors"])
            // Nothing committed; the cancelled job's staging folder stays, with its journal, for it to resume.
            let out = scratch.names("out")
            #expect(out.allSatisfy { $0.hasPrefix(".cut.tmp-") } && out.count <= 1, "\(out)")
            for staging in out { #expect(TempDir.exists(scratch.spool + "/out/" + staging + "/.journal/job.json")) }
        }
        #expect(scratch.names("active").isEmpty)
    }
}
