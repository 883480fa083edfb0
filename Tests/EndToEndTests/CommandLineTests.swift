import Foundation
import SafeTensors
import Testing
import TestSupport

/// The built `quantd` binary, run as a user would, on real files.
@Suite("quantd command line") struct CommandLineTests {
    func quantd(_ args: String...) -> Shell.Result { Shell.run(Paths.quantd, args) }

    func smallModel(_ dir: TempDir) throws -> String {
        let path = dir["model.safetensors"]
        try Checkpoint.random([("enc.0.weight", [96, 130]), ("enc.0.bias", [96]), ("enc.1.weight", [700, 512])],
                              seed: 11).write(to: path)
        return path
    }

    @Test func quantizeVerifyInspectAndDequantizeASmallModel() throws {
        let dir = TempDir("quantd-cli")
        defer { dir.remove() }
        let input = try smallModel(dir)
        let q = quantd("quantize", input, "-o", dir["out"], "--threads", "2")
        #expect(q.status == 0, "\(q.stderr)")
        #expect(q.stdout.contains("3 tensors (2 quantized, 1 kept)"))
        let v = quantd("verify", dir["out"])
        #expect(v.status == 0, "\(v.stdout)\(v.stderr)")
        #expect(v.stdout.contains("verified"))
        let i = quantd("inspect", dir["out"])
        #expect(i.status == 0)
        #expect(i.stdout.contains("enc.1.weight_scale") && i.stdout.contains("worst tensor"))
        let i2 = quantd("inspect", input)
        #expect(i2.stdout.contains("enc.0.bias") && i2.stdout.contains("F32"))
        let d = quantd("dequantize", dir["out"], "-o", dir["deq.safetensors"])
        #expect(d.status == 0, "\(d.stderr)")
        let deq = try DecodedCheckpoint(safetensors: try TempDir.read(dir["deq.safetensors"]))
        #expect(deq.tensor("enc.1.weight")?.dtype == .F32)
    }

    /// `quantd` with QUANTD_KERNELS set to `kernels`.
    func quantd(kernels: String, _ args: String...) -> Shell.Result {
        var environment = ProcessInfo.processInfo.environment
        environment["QUANTD_KERNELS"] = kernels
        return Shell.run(Paths.quantd, args, environment: environment)
    }

    /// --version names the kernel variant; QUANTD_KERNELS picks a lower one, and one that is none is refused.
    @Test func versionNamesTheKernelVariantAndQuantdKernelsPicksOrIsRefused() {
        let v = quantd("--version")
        #expect(v.status == 0 && v.stdout.contains("\nkernels: x86-64"), "\(v.stdout)")
        let baseline = quantd(kernels: "baseline", "--version")
        #expect(baseline.stdout.contains("kernels: x86-64 (sse2), set by QUANTD_KERNELS"), "\(baseline.stdout)")
        let bad = quantd(kernels: "avx9000", "--version")
        #expect(bad.status == 78 && bad.stdout.isEmpty, "\(bad.status) \(bad.stdout)")
        #expect(bad.stderr.contains("QUANTD_KERNELS=avx9000 names no kernel variant: use baseline, v3, v4"),
                "\(bad.stderr)")
    }

    @Test(arguments: [
        [String](), ["--asymmetric", "--calibration", "mse", "--granularity", "channel"],
    ])
    func everyKernelVariantThisCPURunsWritesTheSameBytes(_ flags: [String]) throws {
        let dir = TempDir("quantd-cli")
        defer { dir.remove() }
        let input = try smallModel(dir)
        var outputs: [String: [UInt8]] = [:]
        for kernels in ["baseline", "v3", "v4"] {
            var environment = ProcessInfo.processInfo.environment
            environment["QUANTD_KERNELS"] = kernels
            let run = Shell.run(Paths.quantd, ["quantize", input, "-o", dir[kernels]] + flags, environment: environment)
            // 78: a variant this CPU cannot run.
            if run.status == 78 && run.stderr.contains("this CPU cannot run") { continue }
            #expect(run.status == 0, "\(kernels): \(run.stderr)")
            outputs[kernels] = try TempDir.read(dir[kernels] + "/model.safetensors.zst")
        }
        #expect(outputs["baseline"] != nil)
        #expect(Set(outputs.values).count == 1, "\(outputs.mapValues(\.count))")
    }

    @Test func zstdToolDecompressesTheOutputIntoAValidSafetensorsFile() throws {
        let dir = TempDir("quantd-cli")
        defer { dir.remove() }
        let input = try smallModel(dir)
        #expect(quantd("quantize", input, "-o", dir["out"]).status == 0)
        guard let zstd = Shell.which("zstd") else {
            Issue.record("the zstd command is not installed (make test installs it)")
            return
        }
        let r = Shell.run(zstd, ["-q", "-d", dir["out"] + "/model.safetensors.zst", "-o", dir["plain.safetensors"]])
        #expect(r.status == 0, "\(r.stderr)")
        let plain = try DecodedCheckpoint(safetensors: try TempDir.read(dir["plain.safetensors"]))
        // The default (W8A16): compressed-tensors' pack-quantized layout, groups of 128.
        #expect(plain.tensor("enc.1.weight_packed")?.dtype == .I32 && plain.tensor("enc.1.weight_packed")?.shape == [700, 128])
        #expect(plain.tensor("enc.1.weight_scale")?.shape == [700, 4])
        #expect(plain.int64s("enc.1.weight_shape") == [700, 512])
        #expect(plain.tensor("enc.1.weight") == nil)
        #expect(plain.header.metadata.contains { $0.key == "quantd_version" })
    }

    @Test func oneThreadAndTwoThreadsWriteIdenticalBytes() throws {
        let dir = TempDir("quantd-cli")
        defer { dir.remove() }
        let input = try smallModel(dir)
        #expect(quantd("quantize", input, "-o", dir["a"], "--threads", "1", "--granularity", "group").status == 0)
        #expect(quantd("quantize", input, "-o", dir["b"], "--threads", "2", "--granularity", "group").status == 0)
        #expect(try TempDir.read(dir["a"] + "/model.safetensors.zst") == TempDir.read(dir["b"] + "/model.safetensors.zst"))
    }

    @Test(.enabled(if: Shell.which("script") != nil, "util-linux `script` (a pseudo-terminal) is absent"))
    func onATerminalQuantizeShowsLiveProgressOnStderr() throws {
        let dir = TempDir("quantd-cli")
        defer { dir.remove() }
        try Checkpoint.random((0..<6).map { ("layer.\($0).weight", [512, 1024]) }, seed: 4)
            .write(to: dir["model.safetensors"])
        // Level 15 makes the job last long enough for several progress lines, whatever the machine.
        let command = "\(Paths.quantd) quantize \(dir["model.safetensors"]) -o \(dir["out"]) --threads 1 --level 15"
        let r = Shell.run(try #require(Shell.which("script")), ["-q", "-e", "-c", command, "/dev/null"])
        #expect(r.status == 0, "\(r.stdout)")
        #expect(r.stdout.contains("quantizing model.safetensors: "), "\(r.stdout)")
        #expect(r.stdout.contains("MB/s"))
        #expect(r.stdout.contains("6 tensors (6 quantized, 0 kept)"))
    }

    @Test func calibrationOptionsReachTheManifestAndReportShowsTheGuardsDecisions() throws {
        let dir = TempDir("quantd-cli")
        defer { dir.remove() }
        let input = try smallModel(dir)
        let q = quantd("quantize", input, "-o", dir["out"], "--calibration", "mse", "--scale-dtype", "f16",
                       "--min-sqnr", "60", "--fallback", "keep", "--min-elements", "20000", "--percentile", "99.5")
        #expect(q.status == 0, "\(q.stderr)")
        let manifest = String(decoding: try TempDir.read(dir["out"] + "/manifest.json"), as: UTF8.self)
        for field in [#""calibration" : "mse""#, #""scale_dtype" : "f16""#, #""min_sqnr" : 60"#,
                      #""fallback" : "keep""#, #""min_elements" : 20000"#, #""percentile" : 99.5"#] {
            #expect(manifest.contains(field), "\(field)")
        }
        #expect(quantd("verify", dir["out"]).status == 0)
        let r = quantd("report", dir["out"])
        #expect(r.status == 0, "\(r.stderr)")
        // enc.0.weight (12480 elements) is below min_elements; enc.1.weight falls short of 60 dB and is kept.
        #expect(r.stdout.contains("kept enc.0.weight: has 12480 elements, fewer than min_elements 20000"))
        #expect(r.stdout.contains("kept enc.1.weight: SQNR") && r.stdout.contains("below min_sqnr 60.0 dB"))
        #expect(r.stdout.contains("0 of 3 tensors quantized"), "\(r.stdout)")
    }

    @Test func exitCodesFollowSysexitsAndMessagesNameTheFile() throws {
        let dir = TempDir("quantd-cli")
        defer { dir.remove() }
        let input = try smallModel(dir)
        let missing = quantd("quantize", dir["nope.safetensors"], "-o", dir["o1"])
        #expect(missing.status == 66 && missing.stderr.contains("nope.safetensors"))
        try TempDir.write(Array("not a checkpoint at all".utf8), to: dir["bad.safetensors"])
        let bad = quantd("quantize", dir["bad.safetensors"], "-o", dir["o2"])
        #expect(bad.status == 65 && bad.stderr.contains("bad.safetensors"), "\(bad.stderr)")
        #expect(!TempDir.exists(dir["o2"]))
        #expect(quantd("quantize", input, "-o", dir["o3"]).status == 0)
        let exists = quantd("quantize", input, "-o", dir["o3"])
        #expect(exists.status == 73 && exists.stderr.contains("--force"))
        #expect(quantd("quantize", input, "-o", dir["o3"], "--force").status == 0)
        #expect(quantd("quantize", input).status == 64)
        #expect(quantd("quantize", input, "-o", dir["o4"], "--granularity", "row").status == 64)
        #expect(quantd("verify", dir["nowhere"]).status == 66)
        for cmd in ["quantize", "inspect", "verify", "dequantize"] {
            #expect(quantd(cmd, "--help").stdout.contains("USAGE"))
        }
        // A verify failure says what failed and exits 65.
        try TempDir.write([0x28, 0xB5], to: dir["o3"] + "/model.safetensors.zst")
        let v = quantd("verify", dir["o3"])
        #expect(v.status == 65 && v.stdout.contains("FAIL"))
    }
}

@Suite("quantd unpack") struct UnpackTests {
    func quantd(_ args: String...) -> Shell.Result { Shell.run(Paths.quantd, args) }

    /// A model folder: weights, a transformers config.json, a tokenizer file and a subfolder.
    func modelFolder(_ dir: TempDir) throws -> String {
        let folder = dir["model"]
        _ = Shell.run("/bin/mkdir", ["-p", folder + "/1_Pooling"])
        try Checkpoint.random([("encoder.dense.weight", [64, 130]), ("encoder.dense.bias", [64]),
                               ("embeddings.word_embeddings.weight", [50, 64])], seed: 5)
            .write(to: folder + "/model.safetensors")
        try TempDir.write(Array(#"{"model_type": "bert"}"#.utf8), to: folder + "/config.json")
        try TempDir.write(Array("[PAD]\nhello\n".utf8), to: folder + "/vocab.txt")
        try TempDir.write(Array(#"{"pooling_mode_mean_tokens": true}"#.utf8), to: folder + "/1_Pooling/config.json")
        return folder
    }

    /// Unpack writes the plain folder: quantized safetensors, config.json, every carried file as it was.
    @Test func unpackWritesThePlainFolderWithEveryCarriedFileAsItWas() throws {
        let dir = TempDir("quantd-unpack")
        defer { dir.remove() }
        let input = try modelFolder(dir)
        #expect(quantd("quantize", input, "-o", dir["out"]).status == 0)
        let u = quantd("unpack", dir["out"], "-o", dir["plain"])
        #expect(u.status == 0, "\(u.stderr)")
        #expect(TempDir.list(dir["plain"]) == ["1_Pooling", "config.json", "model.safetensors", "vocab.txt"])
        #expect(try TempDir.read(dir["plain"] + "/vocab.txt") == TempDir.read(input + "/vocab.txt"))
        #expect(try TempDir.read(dir["plain"] + "/1_Pooling/config.json") == TempDir.read(input + "/1_Pooling/config.json"))
        let weights = try DecodedCheckpoint(safetensors: try TempDir.read(dir["plain"] + "/model.safetensors"))
        #expect(weights.tensor("encoder.dense.weight_packed")?.dtype == .I32)
        // 130 columns: groups of 65, the largest divisor of the row below 128.
        #expect(weights.tensor("encoder.dense.weight_scale")?.shape == [64, 2])
        #expect(weights.tensor("embeddings.word_embeddings.weight")?.dtype == .F32, "embeddings stay as they were")
        let config = String(decoding: try TempDir.read(dir["plain"] + "/config.json"), as: UTF8.self)
        #expect(config.contains("\"pack-quantized\"") && config.contains("\"embeddings.word_embeddings\""))
        let again = quantd("unpack", dir["out"], "-o", dir["plain"])
        #expect(again.status == 73 && again.stderr.contains("--force"))
    }

    /// A manifest is input too: one naming a path outside the folder (here a real file with the right bytes, so
    /// only the path rule stands between it and a write outside the destination) is refused.
    @Test func verifyAndUnpackRefuseAManifestNamingPathsOutsideTheFolder() throws {
        let dir = TempDir("quantd-unpack")
        defer { dir.remove() }
        let input = try modelFolder(dir)
        #expect(quantd("quantize", input, "-o", dir["out"]).status == 0)
        try TempDir.write(try TempDir.read(input + "/vocab.txt"), to: dir["escaped.txt"])
        let manifest = String(decoding: try TempDir.read(dir["out"] + "/manifest.json"), as: UTF8.self)
            .replacingOccurrences(of: "\"vocab.txt\"", with: "\"../escaped.txt\"")
        try TempDir.write(Array(manifest.utf8), to: dir["out"] + "/manifest.json")
        _ = Shell.run("/bin/rm", [dir["out"] + "/vocab.txt"])
        let v = quantd("verify", dir["out"])
        #expect(v.status == 65 && v.stdout.contains("a path outside the folder"), "\(v.stdout)")
        _ = Shell.run("/bin/mkdir", [dir["dest"]])
        let u = quantd("unpack", dir["out"], "-o", dir["dest"] + "/m")
        #expect(u.status == 65 && u.stderr.contains("outside the folder"), "\(u.stderr)")
        #expect(TempDir.list(dir["dest"]).isEmpty, "nothing written")
    }

    @Test(arguments: ["vocab.txt", "model.safetensors.zst", "1_Pooling/config.json"])
    func unpackRefusesAnOutputThatDoesNotVerifyNamingWhatFailedAndWritesNothing(file: String) throws {
        let dir = TempDir("quantd-unpack")
        defer { dir.remove() }
        #expect(quantd("quantize", try modelFolder(dir), "-o", dir["out"]).status == 0)
        var bytes = try TempDir.read(dir["out"] + "/" + file)
        bytes[bytes.count / 2] ^= 0x01
        try TempDir.write(bytes, to: dir["out"] + "/" + file)
        let u = quantd("unpack", dir["out"], "-o", dir["plain"])
        #expect(u.status == 65 && u.stderr.contains(file) && u.stderr.contains("does not verify"), "\(u.stderr)")
        #expect(TempDir.list(dir.path).allSatisfy { !$0.hasPrefix(".plain") } && !TempDir.exists(dir["plain"]))
    }
}

@Suite("MiniLM fixture", .enabled(if: Paths.hasMiniLM, "../shared/fixtures/minilm is absent: skipped"))
struct FixtureTests {
    func quantd(_ args: [String]) -> Shell.Result { Shell.run(Paths.quantd, args) }

    /// The real checkpoint quantizes per channel, verifies, and each tensor is as good as per-row rounding.
    @Test func realCheckpointQuantizesPerChannelAndEachTensorIsAsGoodAsPerRowRounding() throws {
        let dir = TempDir("quantd-minilm")
        defer { dir.remove() }
        let r = quantd(["quantize", Paths.minilm, "-o", dir["q-out"], "--granularity", "channel"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(quantd(["verify", dir["q-out"]]).status == 0)
        let original = try DecodedCheckpoint(safetensors: try TempDir.read(Paths.minilm))
        let out = try DecodedCheckpoint(zst: dir["q-out"] + "/model.safetensors.zst")
        #expect(original.header.tensors.count == 104)
        #expect(out.raw("embeddings.position_ids") == original.raw("embeddings.position_ids"))
        var quantized = 0
        for t in original.header.tensors where out.tensor(t.name + "_scale") != nil {
            quantized += 1
            let x = original.floats(t.name), q = out.codes(t.name), s = out.floats(t.name + "_scale")
            let cols = x.count / t.shape[0]
            var worst: Float = 0
            for i in 0..<x.count { worst = max(worst, abs(s[i / cols] * Float(q[i]) - x[i]) / s[i / cols]) }
            #expect(worst <= 0.5001, "\(t.name): error \(worst) scales")
        }
        #expect(quantized == 40)
    }

    /// Issue 5's bar: no tensor below 33 dB, median 1 dB above per-row absmax, at most 8.25 bits per weight.
    @Test func defaultSchemeMeetsTheQualityBarEveryValueWithinHalfItsGroupsScale() throws {
        let dir = TempDir("quantd-minilm")
        defer { dir.remove() }
        #expect(quantd(["quantize", Paths.minilm, "-o", dir["default"]]).status == 0)
        #expect(quantd(["quantize", Paths.minilm, "-o", dir["rows"], "--granularity", "channel"]).status == 0)
        #expect(quantd(["verify", dir["default"]]).status == 0)
        let chosen = try manifestTotals(dir["default"]), rows = try manifestTotals(dir["rows"])
        let worst = try #require(chosen["worst_sqnr_db"] as? Double)
        let median = try #require(chosen["median_sqnr_db"] as? Double)
        let rowMedian = try #require(rows["median_sqnr_db"] as? Double)
        #expect(worst >= 33, "worst tensor at \(worst) dB")
        #expect(median >= rowMedian + 1, "median \(median) dB, per-row absmax \(rowMedian) dB")
        #expect(try #require(chosen["bits_per_quantized_weight"] as? Double) <= 8.25)

        let original = try DecodedCheckpoint(safetensors: try TempDir.read(Paths.minilm))
        let out = try DecodedCheckpoint(zst: dir["default"] + "/model.safetensors.zst")
        for t in original.header.tensors where out.tensor(t.name + "_scale") != nil {
            let x = original.floats(t.name), q = out.codes(t.name), s = out.floats(t.name + "_scale")
            let cols = x.count / t.shape[0], groups = s.count / t.shape[0]
            let groupSize = (cols + groups - 1) / groups
            var worst: Float = 0
            for i in 0..<x.count {
                let scale = s[(i / cols) * groups + (i % cols) / groupSize]
                worst = max(worst, abs(scale * Float(q[i]) - x[i]) / scale)
            }
            #expect(worst <= 0.5001, "\(t.name): error \(worst) scales")
        }
    }

    @Test func reportListsTheQuantizedTensorsWorstFirstThenTotals() throws {
        let dir = TempDir("quantd-minilm")
        defer { dir.remove() }
        #expect(quantd(["quantize", Paths.minilm, "-o", dir["out"], "--granularity", "channel"]).status == 0)
        let r = quantd(["report", dir["out"]])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        let rows = lines.filter { $0.contains("absmax") && !$0.hasPrefix(dir["out"]) }
        #expect(rows.count == 40)
        #expect(rows.first?.hasPrefix("embeddings.token_type_embeddings.weight ") == true, "\(lines.prefix(3))")
        let sqnrs = rows.compactMap { $0.split(separator: " ", omittingEmptySubsequences: true).dropLast(2).last }
            .compactMap { Double($0) }
        #expect(sqnrs.count == 40 && sqnrs == sqnrs.sorted(), "\(sqnrs)")
        #expect(lines.last?.hasPrefix("totals: 8.074 bits per quantized weight, median SQNR 42.1 dB, worst 29.3 dB")
                == true, "\(lines.last ?? "")")
        let row = quantd(["report", dir["out"], "--row"])
        #expect(row.stdout.hasPrefix("| absmax | channel | 42.1 | 29.3 | 8.074 | "), "\(row.stdout)")
    }

    /// The `totals` object of an output folder's manifest.
    private func manifestTotals(_ folder: String) throws -> [String: Any] {
        let data = Data(try TempDir.read(folder + "/manifest.json"))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return try #require(json["totals"] as? [String: Any])
    }

    @Test(arguments: [DType.F16, .BF16])
    func f16AndBF16ConversionsOfTheCheckpointQuantizeToo(dtype: DType) throws {
        let dir = TempDir("quantd-minilm")
        defer { dir.remove() }
        let original = try DecodedCheckpoint(safetensors: try TempDir.read(Paths.minilm))
        var c = Checkpoint()
        c.metadata = original.header.metadata
        for t in original.header.tensorsByOffset {
            if t.dtype == .F32 { c.add(t.name, dtype, shape: t.shape, values: original.floats(t.name)) }
            else { c.add(t.name, t.dtype, shape: t.shape, bytes: original.raw(t.name)) }
        }
        try c.write(to: dir["half.safetensors"])
        let r = quantd(["quantize", dir["half.safetensors"], "-o", dir["out"]])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("40 quantized"))
        #expect(quantd(["verify", dir["out"]]).status == 0)
    }

    /// The packed layout unpacks, by a numpy implementation written from compressed-tensors' description of
    /// `pack_to_int32` (8 bits: word j of a row holds codes 4j..4j+3, code i in bits 8i..8i+7 as code + 128), to the
    /// same codes as the unpacked layout of the same quantization (W8A16 per channel against W8A8); asymmetric groups
    /// (int-quantized) dequantize within half a scale.
    @Test(.enabled(if: Shell.python(has: ["safetensors", "numpy"]), "python3 with safetensors and numpy is absent"))
    func pythonLoadsTheDecompressedOutputAndThePackedLayoutUnpacksToTheSameCodes() throws {
        let dir = TempDir("quantd-minilm")
        defer { dir.remove() }
        let zstd = try #require(Shell.which("zstd"))
        for (out, extra) in [("packed", ["--granularity", "channel"]), ("plain", ["--scheme", "W8A8"]),
                             ("asym", ["--asymmetric", "--granularity", "group"])] {
            #expect(quantd(["quantize", Paths.minilm, "-o", dir[out]] + extra).status == 0)
            #expect(Shell.run(zstd, ["-q", "-d", dir[out] + "/model.safetensors.zst", "-o", dir[out + ".safetensors"]])
                .status == 0)
        }
        let script = """
            import sys, numpy as np
            from safetensors.numpy import load_file
            packed, plain, asym, x = (load_file(p) for p in sys.argv[1:5])

            def unpack(words, cols):        # [rows, W] int32 -> [rows, cols] int8
                u = words.astype(np.int64) & 0xFFFFFFFF
                b = np.stack([(u >> (8 * i)) & 0xFF for i in range(4)], axis=-1).reshape(words.shape[0], -1)
                return (b[:, :cols] - 128).astype(np.int8)

            checked = 0
            linear = 0
            for name in x:
                if name + "_scale" not in packed:
                    continue
                if name + "_packed" in packed:    # linear layers; embeddings stay int-quantized I8
                    shape = tuple(packed[name + "_shape"])
                    assert packed[name + "_packed"].dtype == np.int32 and plain[name].dtype == np.int8
                    q = unpack(packed[name + "_packed"], int(np.prod(shape)) // shape[0]).reshape(shape)
                    linear += 1
                else:
                    q = packed[name]
                    assert q.dtype == np.int8 and "embeddings" in name, name
                assert (q == plain[name]).all(), name
                assert (packed[name + "_scale"] == plain[name + "_scale"]).all(), name
                checked += 1
            # Asymmetric weights are int-quantized (transformers 5.24 refuses packed zero points).
            name = "encoder.layer.0.attention.self.query.weight"
            s, zp = asym[name + "_scale"], asym[name + "_zero_point"]
            assert name + "_packed" not in asym and asym[name].dtype == np.int8
            assert zp.dtype == np.int8 and zp.shape == (384, 3) and s.shape == (384, 3), (zp.shape, s.shape)
            w, z = asym[name].astype(np.float32), zp.astype(np.float32)
            deq = (w.reshape(384, 3, 128) - z[:, :, None]) * s[:, :, None]
            assert np.abs(deq.reshape(384, 384) - x[name]).max() <= s.max() * 0.5001
            assert (packed["embeddings.position_ids"] == x["embeddings.position_ids"]).all()
            print("ok", checked, linear)
            """
        let r = Shell.run(try #require(Shell.which("python3")), ["-c", script, dir["packed.safetensors"],
                                                                 dir["plain.safetensors"], dir["asym.safetensors"],
                                                                 Paths.minilm])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("ok 40 37"), "\(r.stdout)")
    }
}

@Suite("README") struct ReadmeTests {
    @Test(.enabled(if: Shell.python(has: ["safetensors", "numpy", "zstandard"]),
          "python3 with safetensors, numpy and zstandard is absent"))
    func readmePythonSnippetLoadsAndDequantizesAnOutput() throws {
        let readme = String(decoding: try TempDir.read(Paths.root + "/README.md"), as: UTF8.self)
        let block = try #require(readme.components(separatedBy: "```python\n").dropFirst().first?
            .components(separatedBy: "```").first)
        let dir = TempDir("quantd-readme")
        defer { dir.remove() }
        try Checkpoint.random([("encoder.layer.0.attention.self.query.weight", [48, 300])], seed: 2)
            .write(to: dir["model.safetensors"])
        for extra in [[String](), ["--asymmetric", "--granularity", "group", "--group-size", "64"],
                      ["--granularity", "tensor", "--asymmetric"], ["--granularity", "channel", "--scale-dtype", "f16"],
                      ["--group-size", "64", "--scale-dtype", "f16", "--asymmetric"], ["--scheme", "W8A8"],
                      ["--scheme", "W8A8", "--granularity", "tensor"], ["--group-size", "7"]] {
            _ = Shell.run("/bin/rm", ["-rf", dir["q-out"]])
            let q = Shell.run(Paths.quantd, ["quantize", dir["model.safetensors"], "-o", dir["q-out"]] + extra)
            #expect(q.status == 0, "\(q.stderr)")
            let script = "import os; os.chdir(\(pythonString(dir.path)))\n" + block + """
                from safetensors.numpy import load_file
                x = load_file("model.safetensors")[name]
                ok = np.abs(w - x).max() <= scale.max() * 0.5001
                print("shape", w.shape, "error", "ok" if ok else np.abs(w - x).max())
                """
            let r = Shell.run(try #require(Shell.which("python3")), ["-c", script])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.contains("shape (48, 300) error ok"), "\(r.stdout)")
        }
    }

    private func pythonString(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "\\'") + "'" }
}
