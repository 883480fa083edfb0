import Foundation
import Testing
import TestSupport

/// What the consumers make of a model folder after `quantd quantize` and `quantd unpack`: transformers'
/// `AutoModel.from_pretrained` (its compressed-tensors integration) and compressed-tensors' own checkpoint
/// dequantizer, each on the MiniLM fixture as a folder, with sentence embeddings compared against the fp32
/// model's (scripts/interop/embed_check.py). vLLM's CPU build is checked by scripts/interop/vllm-check.sh, outside
/// the suite (its environment is about 3.5 GB).
@Suite("Interop: transformers and compressed-tensors load the unpacked folder",
       .enabled(if: Paths.hasMiniLM, "../shared/fixtures/minilm is absent"),
       .enabled(if: Shell.interopPython != nil,
                "no Python with torch, transformers and compressed-tensors (scripts/interop/venv.sh makes one)"))
struct InteropTests {
    /// Mean cosine over 20 sentences each loader must reach. Measured here: W8A16 0.99980 in both; W8A8 0.99736 in
    /// transformers (which also fake-quantizes the activations per token) and 0.99965 dequantized (weights only);
    /// asymmetric W8A16 (int-quantized with zero points) 0.99985 in transformers. compressed-tensors 0.20's
    /// dequantizer re-infers pack-quantized for every weight-only group, so the asymmetric folder is not given it.
    static let bars: [String: [(mode: String, mean: Double)]] = [
        "W8A16": [("transformers", 0.999), ("ct-dequantize", 0.999)],
        "W8A8": [("transformers", 0.995), ("ct-dequantize", 0.999)],
        "W8A16 --asymmetric": [("transformers", 0.999)],
    ]

    @Test(arguments: ["W8A16", "W8A8", "W8A16 --asymmetric"])
    func fixtureFolderQuantizedAndUnpackedLoadsCloseToFP32(scheme: String) throws {
        let dir = TempDir("quantd-interop")
        defer { dir.remove() }
        let flags = scheme.split(separator: " ").map(String.init)
        let q = Shell.run(Paths.quantd, ["quantize", Paths.minilmFolder, "-o", dir["out"], "--scheme"] + flags)
        #expect(q.status == 0, "\(q.stderr)")
        let u = Shell.run(Paths.quantd, ["unpack", dir["out"], "-o", dir["model"]])
        #expect(u.status == 0, "\(u.stderr)")
        var environment = ProcessInfo.processInfo.environment
        environment["HF_HUB_OFFLINE"] = "1"
        environment["TRANSFORMERS_OFFLINE"] = "1"
        for bar in Self.bars[scheme] ?? [] {
            let r = Shell.run(try #require(Shell.interopPython),
                              [Paths.root + "/scripts/interop/embed_check.py", bar.mode, Paths.minilmFolder,
                               dir["model"]], environment: environment)
            #expect(r.status == 0, "\(bar.mode): \(r.stderr.suffix(3000))")
            let line = try #require(r.stdout.split(separator: "\n").last, "\(bar.mode) printed nothing")
            let result = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let mean = try #require(result["mean_cosine"] as? Double)
            print("interop: \(scheme) \(bar.mode) mean cosine \(mean), min \(result["min_cosine"] ?? "-")")
            #expect(mean >= bar.mean, "\(scheme) in \(bar.mode): mean cosine \(mean) < \(bar.mean)")
        }
    }
}

/// The daemon's path, as a producer takes it: the fixture folder renamed into `incoming/`, committed to
/// `out/minilm/`, unpacked, and loaded by transformers.
@Suite("Interop: a model folder dropped into the spool loads after unpack",
       .enabled(if: Paths.hasMiniLM, "../shared/fixtures/minilm is absent"),
       .enabled(if: Shell.interopPython != nil,
                "no Python with torch, transformers and compressed-tensors (scripts/interop/venv.sh makes one)"))
struct DaemonInteropTests {
    @Test func droppedFolderIsCommittedUnpackedAndLoadsWithFromPretrained() throws {
        let dir = TempDir("quantd-interop-daemon")
        defer { dir.remove() }
        let spool = dir.spool
        let daemon = try DaemonProcess(
            arguments: ["run", "--spool", spool, "--settle-seconds", "0", "--set", "instance=ci"], scratch: dir)
        defer { daemon.stop() }
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: spool + "/incoming") && Date() < deadline { usleep(50_000) }
        // Built beside incoming/ under a dot-name, then renamed in: the documented way to drop a folder.
        #expect(Shell.run("/bin/cp", ["-r", Paths.minilmFolder, spool + "/incoming/.minilm.partial"]).status == 0)
        _ = Shell.run("/bin/chmod", ["-R", "u+w", spool + "/incoming/.minilm.partial"])
        #expect(rename(spool + "/incoming/.minilm.partial", spool + "/incoming/minilm") == 0)
        let manifest = spool + "/out/minilm/manifest.json"
        while !FileManager.default.fileExists(atPath: manifest) && Date() < deadline { usleep(100_000) }
        #expect(FileManager.default.fileExists(atPath: manifest), "committed within the deadline")
        #expect(FileManager.default.fileExists(atPath: spool + "/out/minilm/model.safetensors.zst"))
        #expect(FileManager.default.fileExists(atPath: spool + "/out/minilm/tokenizer.json"))
        let u = Shell.run(Paths.quantd, ["unpack", spool + "/out/minilm", "-o", dir["model"]])
        #expect(u.status == 0, "\(u.stderr)")
        var environment = ProcessInfo.processInfo.environment
        environment["HF_HUB_OFFLINE"] = "1"
        let r = Shell.run(try #require(Shell.interopPython),
                          [Paths.root + "/scripts/interop/embed_check.py", "transformers", Paths.minilmFolder,
                           dir["model"]], environment: environment)
        #expect(r.status == 0, "\(r.stderr.suffix(3000))")
        let line = try #require(r.stdout.split(separator: "\n").last)
        let result = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(try #require(result["mean_cosine"] as? Double) >= 0.999)
    }
}
