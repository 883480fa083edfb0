import Foundation
import Testing
import TestSupport
@testable import QuantDaemon
import QuantEngine

@Suite("Configuration")
struct ConfigTests {
    @Test func shippedFileParsesAndStatesEveryDefault() throws {
        let text = try String(contentsOfFile: Paths.root + "/config/quantd.toml", encoding: .utf8)
        let environment = ["HOME": "/home/someone"]
        var fromFile = DaemonConfig(environment: environment)
        try fromFile.apply(fileText: text, source: "quantd.toml")
        var expected = DaemonConfig(environment: environment)
        expected.spool = "/var/spool/quantd"
        expected.logFile = "/var/log/quantd/quantd.log"
        expected.metricsFile = "/var/lib/quantd/quantd.prom"
        expected.instance = fromFile.instance
        #expect(fromFile == expected)
        // Every key appears in the documented file, set or commented out.
        for key in DaemonConfig.keys.map(\.name) {
            let bare = key.split(separator: ".").last.map(String.init)!
            #expect(text.contains("\n\(bare) =") || text.contains("\n# \(bare) ="), "\(key) undocumented")
        }
    }

    /// `scheme` sets the preset's granularity unless `granularity` is given too, before or after it; an invalid
    /// combination is refused at load, naming the key.
    @Test func schemeAndItsRefinements() throws {
        func load(_ sets: [String]) throws(ConfigError) -> QuantizeOptions {
            try DaemonConfig.load(file: nil, overrides: sets.map { .assignment($0) }, environment: [:]).quantize
        }
        #expect(try load(["quantize.scheme=W8A8"]) == QuantizeOptions(scheme: .w8a8))
        #expect(try load(["quantize.scheme=w8a16"]).granularity == .group)
        #expect(try load(["quantize.granularity=tensor", "quantize.scheme=W8A8"]).granularity == .tensor)
        #expect(try load(["quantize.scheme=W8A8", "quantize.granularity=tensor"]).granularity == .tensor)
        #expect(throws: ConfigError.self) { try load(["quantize.scheme=W4A16"]) }
        do {
            _ = try load(["quantize.scheme=W8A8", "quantize.granularity=group"])
            Issue.record("W8A8 with groups was accepted")
        } catch {
            #expect(error.key == "quantize.granularity" && error.reason.contains("W8A8"), "\(error)")
        }
    }

    @Test func defaultsNeedNoRoot() {
        let config = DaemonConfig(environment: ["HOME": "/home/u"])
        #expect(config.spool == "/home/u/.local/state/quantd/spool")
        #expect(DaemonConfig(environment: ["HOME": "/h", "XDG_STATE_HOME": "/x"]).spool == "/x/quantd/spool")
        #expect(config.settleSeconds == 5 && config.maxJobs == 1 && config.keepInputs)
    }

    /// `quantd run` reads its environment (Foundation's `ProcessInfo`): the default spool follows `XDG_STATE_HOME`.
    @Test func defaultSpoolFollowsTheProcessEnvironment() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let daemon = try DaemonProcess(arguments: ["run", "--settle-seconds", "0"], scratch: scratch,
                                       environment: ["XDG_STATE_HOME": scratch.path + "/state"])
        defer { daemon.stop() }
        let started = try #require(try await daemon.waitFor("started").first)
        #expect((started["config"] as? [String: Any])?["spool"] as? String == scratch.path + "/state/quantd/spool")
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
    }

    @Test func valuesOfEveryShape() throws {
        var config = DaemonConfig(environment: [:])
        try config.apply(fileText: """
            # comment
            spool = "/srv/sp\\u00fcol"   # trailing comment
            settle_seconds = 1.5
            max_jobs = 2
            poll = true

            [quantize]
            granularity = "group"
            group_size = 1_024
            exclude = ["^lm_head\\\\.", "norm"]
            """, source: "t")
        #expect(config.spool == "/srv/spüol")
        #expect(config.settleSeconds == 1.5 && config.maxJobs == 2 && config.poll)
        #expect(config.quantize.granularity == .group && config.quantize.groupSize == 1024)
        #expect(config.quantize.exclude == ["^lm_head\\.", "norm"])
    }

    @Test(arguments: [
        ("max_jobs = 0", "max_jobs", "between 1 and 64"),
        ("max_jobs = \"2\"", "max_jobs", "expected an integer"),
        ("bogus = 1", "bogus", "unknown key"),
        ("spool = \"relative/dir\"", "spool", "absolute path"),
        ("settle_seconds = -1", "settle_seconds", "between"),
        ("log_level = \"loud\"", "log_level", "expected one of"),
        ("spool = \"/a\"\nspool = \"/b\"", "spool", "set twice"),
        ("[quantize]\ngranularity = \"row\"", "quantize.granularity", "expected \"tensor\""),
        ("[quantize]\nexclude = [\"(\"]", "quantize.exclude", "invalid regular expression"),
        ("instance = \"a.b\"", "instance", "letters"),
        ("poll = yes", "poll", "expected a quoted string"),
        ("[limits]\nmax_tensors = 0", "limits.max_tensors", "between 1 and"),
        ("[limits]\nmax_rank = 65", "limits.max_rank", "between 1 and 64"),
        ("[limits]\nmax_header_bytes = \"big\"", "limits.max_header_bytes", "expected an integer"),
        ("[quantize]\ncalibration = \"magic\"", "quantize.calibration", "expected one of \"absmax\""),
        ("[quantize]\npercentile = 101", "quantize.percentile", "between 50.0 and 100.0"),
        ("[quantize]\nscale_dtype = \"f8\"", "quantize.scale_dtype", "expected one of"),
        ("[quantize]\nmin_sqnr = -3", "quantize.min_sqnr", "between"),
    ])
    func invalidValuesNameTheKey(text: String, key: String, reason: String) {
        var config = DaemonConfig(environment: [:])
        #expect {
            try config.apply(fileText: text, source: "f.toml")
        } throws: { error in
            guard let error = error as? ConfigError else { return false }
            return error.key == key && error.reason.contains(reason) && error.description.hasPrefix("f.toml:")
        }
    }

    @Test func malformedLinesAreRefusedWithTheirLine() {
        for text in ["spool", "[other]", "x y = 1", "spool = \"unterminated"] {
            var config = DaemonConfig(environment: [:])
            #expect(throws: ConfigError.self) { try config.apply(fileText: "# ok\n" + text, source: "f") }
            #expect((try? config.apply(fileText: "# ok\n" + text, source: "f")) == nil)
        }
        var config = DaemonConfig(environment: [:])
        do {
            try config.apply(fileText: "# ok\n\nmax_jobs = x", source: "f")
            Issue.record("accepted")
        } catch {
            #expect(error.line == 3)
        }
    }

    @Test func commandLineOverridesComeAfterTheFile() throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let file = try scratch.write("max_jobs = 3\nsettle_seconds = 9\n", as: "c.toml")
        let config = try DaemonConfig.load(
            file: file,
            overrides: [.assignment("settle_seconds=2"), .flag("--max-jobs", key: "max_jobs", .integer(4)),
                        .assignment("log_level=debug")],
            environment: [:])
        #expect(config.maxJobs == 4 && config.settleSeconds == 2 && config.logLevel == .debug)
        #expect(throws: ConfigError.self) {
            try DaemonConfig.load(file: file, overrides: [.assignment("max_jobs")], environment: [:])
        }
    }

    @Test func calibrationKeysReachTheEngineOptions() throws {
        var config = DaemonConfig(environment: [:])
        try config.apply(fileText: """
            [quantize]
            calibration = "mse"
            percentile = 99.5
            scale_dtype = "f16"
            min_sqnr = 35
            fallback = "keep"
            min_elements = 4096
            """, source: "c.toml")
        #expect(config.quantize.calibration == .mse && config.quantize.percentile == 99.5)
        #expect(config.quantize.scaleDtype == .f16 && config.quantize.minSQNR == 35)
        #expect(config.quantize.fallback == .keep && config.quantize.minElements == 4096)
        try config.apply(fileText: "[quantize]\nmin_sqnr = 0", source: "d.toml")
        #expect(config.quantize.minSQNR == nil, "0 turns the guard off")
    }

    @Test func limitsTableSetsTheBounds() throws {
        var config = DaemonConfig(environment: [:])
        try config.apply(fileText: "[limits]\nmax_header_bytes = 4096\nmax_tensors = 10\nmax_rank = 4\n"
                            + "max_folder_entries = 3\n", source: "f.toml")
        #expect(config.limits.maxHeaderBytes == 4096 && config.limits.maxTensors == 10 && config.limits.maxRank == 4)
        #expect(config.maxFolderEntries == 3)
        #expect(DaemonConfig(environment: [:]).limits.maxTensors == 100_000)
    }

    /// Names derived from an entry name (staging, records) stay within 255 bytes, and staging names say whose
    /// they are.
    @Test func derivedNamesFitAndStagingNamesTheirOwner() {
        let spool = Spool(root: "/s", instance: String(repeating: "i", count: 64))
        let long = String(repeating: "é", count: 200) + ".safetensors"
        let stored = spool.storableName(long)
        #expect(stored.utf8.count <= spool.maxNameBytes && stored.hasSuffix(".safetensors"))
        #expect(stored != spool.storableName(String(repeating: "é", count: 201) + ".safetensors"))
        #expect(("." + stored + ".9999.error.json.tmp-" + spool.instance).utf8.count <= 255)
        #expect(Spool.stagingOwner(".model.tmp-host-1-4000000000") == "host-1")
        #expect(Spool.stagingOwner(".a.b.tmp-x.tmp-me-12") == "me")
        #expect(Spool.stagingOwner(".model.tmp-12345") == nil, "a pid alone names no instance")
        #expect(Spool.stagingOwner("model.tmp-me-1") == nil)
    }
}
