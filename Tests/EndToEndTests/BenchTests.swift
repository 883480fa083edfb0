import Foundation
import SafeTensors
import Testing
import TestSupport

/// `quantd-bench` run as a user would, on its smallest useful size.
@Suite("quantd-bench") struct BenchTests {
    /// The built `quantd-bench`, beside the `quantd` the tests run.
    static let bench = URL(fileURLWithPath: Paths.quantd).deletingLastPathComponent()
        .appendingPathComponent("quantd-bench").path

    /// A 64 MiB run prints the table and writes a JSON report with positive figures.
    @Test(.enabled(if: Shell.which("zstd") != nil, "the zstd command is not installed (make test installs it)"))
    func smallRunPrintsTheTableAndWritesAJSONReportWithPositiveFigures() throws {
        let dir = TempDir("quantd-bench")
        defer { dir.remove() }
        let r = Shell.run(Self.bench, ["--size", "64M", "--skip-python", "--repeat", "1",
                                         "--kernel-repeat", "1", "--threads", "2", "--dir", dir.path,
                                         "--daemon-jobs", "2", "--idle-seconds", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        for heading in ["kernels, 4096 x 4096", "per channel, symmetric (absmax)", "end to end: quantd quantize",
                        "1 (taskset -c 0)", "baselines", "zstd -3 -T2 on the int8 payload", "sha256 over the input",
                        "end to end / floor", "2 threads vs 1 thread", "peak RSS", "byte-identical"] {
            #expect(r.stdout.contains(heading), "no '\(heading)' in:\n\(r.stdout)")
        }

        let data = try Data(contentsOf: URL(fileURLWithPath: dir["bench.json"]))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        for key in ["quantdVersion", "machine", "settings", "checkpoint", "kernels", "endToEnd", "baselines",
                    "ratios", "commands", "outputsIdentical"] {
            #expect(json[key] != nil, "no \(key) in bench.json")
        }
        let machine = try #require(json["machine"] as? [String: Any])
        #expect((machine["cores"] as? Int ?? 0) > 0)
        let checkpoint = try #require(json["checkpoint"] as? [String: Any])
        let bytes = try #require(checkpoint["bytes"] as? Int)
        #expect(bytes > 64 << 20 && bytes < 65 << 20)

        let kernels = try #require(json["kernels"] as? [[String: Any]])
        #expect(kernels.count >= 6)
        for k in kernels { #expect((k["gbPerSecond"] as? Double ?? 0) > 0, "\(k)") }
        let runs = try #require(json["endToEnd"] as? [[String: Any]])
        #expect(runs.map { $0["threads"] as? Int } == [1, 2])
        for run in runs {
            let best = try #require(run["best"] as? [String: Any])
            #expect((best["seconds"] as? Double ?? 0) > 0)
            #expect((best["peakRSSBytes"] as? Int ?? 0) > 0)
        }
        let baselines = try #require(json["baselines"] as? [[String: Any]])
        #expect(baselines.count == 2)
        for b in baselines {
            let best = try #require(b["best"] as? [String: Any])
            #expect((best["seconds"] as? Double ?? 0) > 0, "\(b)")
        }
        let ratios = try #require(json["ratios"] as? [[String: Any]])
        #expect(ratios.count >= 4)
        for ratio in ratios where !(ratio["name"] as? String ?? "").contains("idle") {
            #expect((ratio["value"] as? Double ?? 0) > 0, "\(ratio)")
        }
        let daemon = try #require(json["daemon"] as? [String: Any])
        #expect(daemon["jobs"] as? Int == 2)
        #expect((daemon["medianMilliseconds"] as? Double ?? 0) > 0)
        #expect((daemon["idleCPUSeconds"] as? Double ?? -1) >= 0)
        #expect(r.stdout.contains("rename to manifest committed"))
        #expect(json["outputsIdentical"] as? Bool == true)

        // The checkpoint stays for the next run; the outputs do not.
        let left = TempDir.list(dir.path)
        #expect(left.contains { $0.hasPrefix("llama-fp32-64M-seed1") && $0.hasSuffix(".safetensors") })
        #expect(!left.contains { $0.hasPrefix("out-") || $0.hasPrefix("payload") })
    }

    /// `--stages` on a sharded folder reports every stage, the serial chain and the projection at 8, 16, 64 cores.
    @Test func stagesReportEveryStageTheSerialChainAndTheProjection() throws {
        let dir = TempDir("quantd-bench")
        defer { dir.remove() }
        // Three shards of LLaMA-like layers ([512, 256] projections and a norm), with their index.
        let input = dir["sharded"]
        try FileManager.default.createDirectory(atPath: input, withIntermediateDirectories: false)
        var rng = SeededRandom(seed: 5)
        var weightMap: [(tensor: String, file: String)] = []
        var total = 0
        for shard in 1...3 {
            let name = "model-0000\(shard)-of-00003.safetensors"
            var c = Checkpoint()
            for layer in ((shard - 1) * 2)..<(shard * 2) {
                for (module, shape) in [("self_attn.q_proj", [256, 256]), ("mlp.up_proj", [512, 256]),
                                        ("mlp.down_proj", [256, 512]), ("input_layernorm", [256])] {
                    let tensor = "model.layers.\(layer).\(module).weight"
                    c.addRandom(tensor, shape: shape, rng: &rng)
                    weightMap.append((tensor, name))
                    total += shape.reduce(4, *)
                }
            }
            try c.write(to: input + "/" + name)
        }
        try TempDir.write(ShardIndex.encode(totalSize: total, weightMap: weightMap),
                          to: input + "/model.safetensors.index.json")

        let r = Shell.run(Self.bench, ["--stages", "--input", input, "--dir", dir["bench"], "--repeat", "1",
                                       "--threads", "2"])
        #expect(r.status == 0, "\(r.stderr)")
        for line in ["stages, each alone on one thread", "  read ", "  quantize ", "  compress ", "  hash ", "  write ",
                     "  write + fsync ", "end to end: quantd quantize sharded", "1 (taskset -c 0)",
                     "serial chain (what the engine cannot split)", "projection, not measured: GB/s at N cores = "
                        + "min(N / C, 1 / S(N))", "\n  8 ", "\n  16 ", "\n  64 "] {
            #expect(r.stdout.contains(line), "no '\(line)' in:\n\(r.stdout)")
        }

        let data = try Data(contentsOf: URL(fileURLWithPath: dir["bench/bench-stages.json"]))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(json["inputBytes"] as? Int ?? 0 > total)
        let files = try #require(json["files"] as? [[String: Any]])
        #expect(files.count == 3)
        let stages = try #require(json["stages"] as? [[String: Any]])
        #expect(stages.map { $0["name"] as? String } == ["read", "quantize", "compress", "hash", "write", "write + fsync"])
        for stage in stages { #expect((stage["secondsPerGB"] as? Double ?? 0) > 0, "\(stage)") }
        let chain = try #require(json["serialChain"] as? [String: Any])
        #expect((chain["secondsPerGB"] as? Double ?? 0) > 0, "\(chain)")
        let projections = try #require(json["projections"] as? [[String: Any]])
        #expect(projections.map { $0["cores"] as? Int } == [1, 2, 8, 16, 64])
        for p in projections {
            #expect((p["gbPerSecond"] as? Double ?? 0) > 0, "\(p)")
            #expect((p["serialSecondsPerGB"] as? Double ?? 0) > 0, "\(p)")
        }
        // Three files: one lane at 1 thread, two at 2 (FileRuns.width), all three at 8 and more.
        #expect(projections.map { $0["lanes"] as? Int } == [1, 2, 3, 3, 3])
        let runs = try #require(json["endToEnd"] as? [[String: Any]])
        #expect(runs.map { $0["threads"] as? Int } == [1, 2])
        // Nothing but the report and the log is left in the bench folder.
        #expect(TempDir.list(dir["bench"]) == ["bench-stages.json", "bench.log"])
    }

    @Test func quantdHasOnlyTheUsersCommandsNoBenchNoMeasuringMode() {
        let help = Shell.run(Paths.quantd, ["--help"])
        #expect(help.status == 0 && help.stdout.contains("quantize") && !help.stdout.contains("bench"), "\(help.stdout)")
        #expect(Shell.run(Paths.quantd, ["bench", "--size", "64M"]).status == 64)
        #expect(Shell.run(Paths.quantd, ["--measure-child", "/dev/null", "--", "/bin/true"]).status == 64)
    }

    @Test func withoutAQuantdBesideItOrGivenItSaysSoAndMeasuresNothing() throws {
        let dir = TempDir("quantd-bench")
        defer { dir.remove() }
        let r = Shell.run(Self.bench, ["--size", "64M", "--dir", dir.path, "--quantd", dir["no-quantd"]])
        #expect(r.status == 64 && r.stderr.contains("no quantd program at \(dir["no-quantd"])"), "\(r.stderr)")
        #expect(TempDir.list(dir.path).isEmpty)
    }
}
