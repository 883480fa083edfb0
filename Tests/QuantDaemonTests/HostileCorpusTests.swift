import Foundation
import Glibc
import Testing
import TestSupport

/// The hostile corpus (`scripts/hostile-corpus.py`) and the spool's non-files, through `quantd quantize` and
/// through a running daemon: every case ends refused with a clear reason, or with a correct output.
@Suite("Hostile inputs: the corpus through quantd quantize and quantd run")
struct HostileCorpusTests {
    /// Where the daemon's bounds refuse what the command line (no tensor bound beyond the reader's) accepts.
    static let daemonOverrides: [String: (expect: String, why: String)] = [
        "empty-tensors-200k.safetensors": ("failed", "more than 100000 tensors"),
        "header-100mb.safetensors": ("failed", "more than 100000 tensors"),
    ]

    @Test(.enabled(if: Shell.which("python3") != nil, "needs python3 to generate the corpus"))
    func everyCaseThroughTheCommandLine() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let corpus = scratch.path + "/corpus"
        let cases = try generateCorpus(into: corpus)
        #expect(cases.count >= 45)
        for item in cases {
            let output = scratch.path + "/out/" + item.file
            let result = Shell.run(Paths.quantd, ["quantize", corpus + "/" + item.file, "-o", output,
                                                    "--threads", "1"])
            if item.expect == "ok" {
                #expect(result.status == 0, "\(item.file): \(result.stderr)")
                let verified = Shell.run(Paths.quantd, ["verify", output])
                #expect(verified.status == 0, "\(item.file): \(verified.stdout)")
            } else {
                #expect(result.status == 65, "\(item.file): exit \(result.status), \(result.stderr)")
                #expect(result.stderr.contains(item.why), "\(item.file): \(result.stderr)")
                #expect(result.stderr.split(separator: "\n").count == 1, "\(item.file): one line")
                #expect(!FileManager.default.fileExists(atPath: output), "\(item.file): nothing written")
            }
        }
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: scratch.path + "/out")) ?? []
        #expect(leftovers.allSatisfy { !$0.hasPrefix(".") }, "no staging left: \(leftovers)")
    }

    @Test(.enabled(if: Shell.which("python3") != nil, "needs python3 to generate the corpus"))
    func everyCaseAndEveryNonFileThroughTheDaemon() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let corpus = scratch.path + "/corpus"
        var expected: [String: (expect: String, why: String)] = [:]
        for item in try generateCorpus(into: corpus) {
            expected[item.file] = Self.daemonOverrides[item.file] ?? (item.expect, item.why)
        }
        try FileManager.default.createDirectory(atPath: scratch.incoming, withIntermediateDirectories: true)
        for name in expected.keys { #expect(rename(corpus + "/" + name, scratch.incoming + "/" + name) == 0) }

        // Outside the spool: a good checkpoint and a config, watched for opens.
        let outside = scratch.path + "/outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try Checkpoint.layers(seed: 30).write(to: outside + "/good.safetensors")
        try Data(#"{"model_type": "secret"}"#.utf8).write(to: URL(fileURLWithPath: outside + "/config.json"))
        let watch = try OpenWatch([outside + "/good.safetensors", outside + "/config.json"])
        let incoming = scratch.incoming + "/"
        #expect(mkfifo(incoming + "fifo.safetensors", 0o644) == 0)
        #expect(symlink("/etc/passwd", incoming + "passwd.safetensors") == 0)
        #expect(symlink(outside + "/good.safetensors", incoming + "outside.safetensors") == 0)
        let listener = bindSocket(incoming + "socket.safetensors")
        defer { close(listener) }
        expected["fifo.safetensors"] = ("failed", "fifo is not a checkpoint")
        expected["passwd.safetensors"] = ("failed", "symlink is not a checkpoint")
        expected["outside.safetensors"] = ("failed", "symlink is not a checkpoint")
        expected["socket.safetensors"] = ("failed", "socket is not a checkpoint")
        // Folders: empty with a checkpoint's name, and shard folders reaching outside through links.
        try FileManager.default.createDirectory(atPath: incoming + "folder.safetensors",
                                                withIntermediateDirectories: false)
        expected["folder.safetensors"] = ("failed", "holds no .safetensors file")
        try FileManager.default.createDirectory(atPath: incoming + "linked-shard", withIntermediateDirectories: false)
        #expect(symlink(outside + "/good.safetensors", incoming + "linked-shard/model.safetensors") == 0)
        expected["linked-shard"] = ("failed", "not a regular file")
        try FileManager.default.createDirectory(atPath: incoming + "linked-config", withIntermediateDirectories: false)
        try Checkpoint.layers(seed: 31).write(to: incoming + "linked-config/m.safetensors")
        #expect(symlink(outside + "/config.json", incoming + "linked-config/config.json") == 0)
        expected["linked-config"] = ("failed", "config.json")
        // Odd but legal names, the longest name this instance can take, and one byte more than the system allows.
        let instance = "hostile"
        let longest = String(repeating: "n", count: min(226, 230 - instance.count) - 12) + ".safetensors"
        let tooLong = String(repeating: "x", count: 255 - 12) + ".safetensors"
        // Too long to claim, short enough that failed/NAME and failed/NAME.error.json fit: kept as it is.
        let unclaimable = String(repeating: "y", count: 240 - 12) + ".safetensors"
        let names = ["with spaces in it.safetensors", "ünïcødé 模型 🤖.safetensors", "new\nline.safetensors", longest,
                     tooLong, unclaimable]
        for (index, name) in names.enumerated() {
            try Checkpoint.layers(seed: UInt64(40 + index)).write(to: incoming + name)
            expected[name] = name == tooLong || name == unclaimable ? ("failed", "names of at most") : ("ok", "")
        }
        // Under a 16 MiB budget: a 24 MiB tensor is quantized tile by tile; one 20 MB row cannot be.
        try Checkpoint.uniform([("big.weight", [3072, 2048])], seed: 50)
            .write(to: incoming + "tensor-over-budget.safetensors")
        expected["tensor-over-budget.safetensors"] = ("ok", "")
        try Checkpoint.uniform([("row.weight", [1, 5_000_000])], seed: 51)
            .write(to: incoming + "row-over-budget.safetensors")
        expected["row-over-budget.safetensors"] = ("failed", "more than the whole memory budget")

        let daemon = try DaemonProcess(
            arguments: ["run", "--spool", scratch.spool, "--set", "instance=\(instance)", "--settle-seconds", "0",
                        "--threads", "1", "--max-jobs", "2", "--set", "memory_budget_mib=16",
                        "--set", "rescan_seconds=1"],
            scratch: scratch)
        defer { daemon.stop() }
        try await scratch.waitUntilDrained(daemon, timeout: 180)
        #expect(daemon.process.isRunning, "the daemon stays up")

        let failedNames = Set(scratch.names("failed"))
        for (name, outcome) in expected.sorted(by: { $0.key < $1.key }) {
            let stem = name.hasSuffix(".safetensors") ? String(name.dropLast(".safetensors".count)) : name
            if outcome.expect == "ok" {
                #expect(scratch.names("done").contains(name), "\(name) done")
                let verified = Shell.run(Paths.quantd, ["verify", scratch.spool + "/out/" + stem])
                #expect(verified.status == 0, "\(name): \(verified.stdout)")
                continue
            }
            let shortened = failedNames.first { $0.hasPrefix("xxxx") && !$0.hasSuffix(".json") }
            let quarantined = name == tooLong ? try #require(shortened) : name
            #expect(failedNames.contains(quarantined), "\(name) in failed/")
            let record = try scratch.record(quarantined)
            #expect(record["name"] as? String == name)
            let reason = record["reason"] as? String ?? ""
            #expect(reason.contains(outcome.why), "\(name): \(reason)")
        }
        #expect(watch.eventBytes() == 0, "nothing outside the spool was opened or read")
        for link in ["passwd.safetensors", "outside.safetensors"] {
            var info = stat()
            #expect(lstat(scratch.spool + "/failed/" + link, &info) == 0 && info.st_mode & S_IFMT == S_IFLNK)
        }
        #expect(scratch.names("out").allSatisfy { !$0.hasPrefix(".") }, "no staging left")
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
        // Every line parses (readLog throws otherwise) and names its event.
        let lines = try daemon.lines()
        #expect(lines.allSatisfy { $0["event"] is String && $0["time"] is String })
        let failures = expected.values.count { $0.expect == "failed" }
        #expect(lines.filter { $0["event"] as? String == "failed" }.count == failures)
    }
}
