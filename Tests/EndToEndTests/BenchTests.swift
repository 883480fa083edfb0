import Foundation
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
