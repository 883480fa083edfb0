import Foundation
import QuantEngine
import SafeTensors
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// SQNR in dB of `y` as a reconstruction of `x`, in Double.
func sqnr(_ x: [Float], _ y: [Float]) -> Double {
    var signal = 0.0, noise = 0.0
    for (a, b) in zip(x, y) {
        signal += Double(a) * Double(a)
        noise += (Double(a) - Double(b)) * (Double(a) - Double(b))
    }
    return 10 * log10(signal / noise)
}

/// Rows whose every group of 128 holds one value of 1 among small ones: about 32 dB with groups of 128, more
/// with finer groups (the outlier's group shrinks).
func spiky(rows: Int, cols: Int, rng: inout SeededRandom) -> [Float] {
    (0..<(rows * cols)).map { i in i % 128 == 5 ? 1 : rng.weight(std: 0.01) }
}

@Suite("Calibration") struct CalibrationTests {
    /// Every calibrator writes an output that verifies; the manifest's SQNR is that of the dequantized output.
    @Test(arguments: QuantizeOptions.Calibration.allCases, [QuantizeOptions.Granularity.tensor, .channel, .group])
    func everyCalibratorsOutputVerifiesWithTheSQNRItsDequantizedOutputHas(
        calibration: QuantizeOptions.Calibration, granularity: QuantizeOptions.Granularity
    ) throws {
        let c = mixedCheckpoint()
        let s = try Setup(c)
        defer { s.dir.remove() }
        var o = QuantizeOptions()
        o.calibration = calibration
        o.granularity = granularity
        o.groupSize = 32
        let m = try Engine.quantize(input: s.input, output: s.output, options: o)
        #expect(Verifier.verify(s.output).ok)
        let files = try Dequantizer.run(folder: s.output, to: s.dir["deq.safetensors"])
        let deq = try DecodedCheckpoint(safetensors: try TempDir.read(files[0]))
        let original = try DecodedCheckpoint(safetensors: c.bytes)
        for r in m.tensors where r.decision == "quantized" {
            #expect(r.scheme?.calibrator == calibration && r.scheme?.scaleDtype == .F32)
            guard let db = r.error?.sqnrDb else { continue }
            let measured = sqnr(original.floats(r.name), deq.floats(r.name))
            #expect(abs(measured - db) < 0.01, "\(r.name): manifest \(db) dB, dequantized \(measured) dB")
        }
        #expect(m.config.calibration == calibration)
        #expect(m.totals.medianSqnrDb != nil)
    }

    /// f16 and bf16 scales are stored in that dtype, verify, and dequantize within half a scale.
    @Test(arguments: [QuantizeOptions.ScaleDtype.f16, .bf16], [true, false])
    func halfPrecisionScalesAreStoredInTheirDtypeAndDequantizeWithinHalfAScale(
        scaleDtype: QuantizeOptions.ScaleDtype, symmetric: Bool
    ) throws {
        let c = mixedCheckpoint()
        let s = try Setup(c)
        defer { s.dir.remove() }
        var o = QuantizeOptions()
        o.scaleDtype = scaleDtype
        o.symmetric = symmetric
        o.groupSize = 32
        let m = try Engine.quantize(input: s.input, output: s.output, options: o)
        #expect(Verifier.verify(s.output).ok)
        let out = try DecodedCheckpoint(zst: s.output + "/model.safetensors.zst")
        let name = "layer.0.mlp.up.weight"
        let dtype: DType = scaleDtype == .f16 ? .F16 : .BF16
        #expect(out.tensor(name + "_scale")?.dtype == dtype && out.tensor(name + "_scale")?.shape == [64, 10])
        let r = try #require(m.tensors.first { $0.name == name })
        #expect(r.scheme?.scaleDtype == dtype)
        // Codes, 10 scales a row (groups of 30: 32 does not divide 300), zero points (asymmetric: int-quantized), and
        // the I64 [64, 300] shape of the packed (symmetric) layout.
        #expect(r.storedBytes == 64 * 300 + 64 * 10 * (symmetric ? 2 : 3) + (symmetric ? 16 : 0))
        #expect(r.scheme?.groupSize == 30 && r.reason.contains("group 32 does not divide 300 columns: groups of 30"))
        let files = try Dequantizer.run(folder: s.output, to: s.dir["deq.safetensors"])
        let deq = try DecodedCheckpoint(safetensors: try TempDir.read(files[0]))
        let x = try DecodedCheckpoint(safetensors: c.bytes).floats(name), y = deq.floats(name)
        let scales = out.floats(name + "_scale")
        for i in 0..<x.count {
            let scale = scales[(i / 300) * 10 + (i % 300) / 30]
            #expect(abs(x[i] - y[i]) <= scale * 0.5001, "\(name)[\(i)]")
            if abs(x[i] - y[i]) > scale * 0.5001 { break }
        }
    }

    @Test func calibratorAndGuardGiveTheSameBytesWhateverTheThreadCount() throws {
        var rng = SeededRandom(seed: 21)
        var c = mixedCheckpoint()
        c.addRandom("big.weight", shape: [2100, 512], rng: &rng)   // two tiles
        c.add("spiky.weight", shape: [64, 256], values: spiky(rows: 64, cols: 256, rng: &rng))
        let s = try Setup(c)
        defer { s.dir.remove() }
        for calibration in [QuantizeOptions.Calibration.mse] {
            var outputs: [[UInt8]] = []
            for threads in [1, 3] {
                var o = QuantizeOptions()
                o.threads = threads
                o.calibration = calibration
                o.minSQNR = 35
                let dest = s.dir["out-\(calibration)-\(threads)"]
                _ = try Engine.quantize(input: s.input, output: dest, options: o)
                outputs.append(try TempDir.read(dest + "/model.safetensors.zst"))
            }
            #expect(outputs[0] == outputs[1], "\(calibration)")
        }
    }

    /// The guard gives a tensor below min_sqnr finer groups, and records what it measured and why.
    @Test func guardGivesATensorBelowMinSQNRFinerGroupsAndRecordsWhy() throws {
        var rng = SeededRandom(seed: 22)
        var c = mixedCheckpoint()
        c.add("spiky.weight", shape: [64, 256], values: spiky(rows: 64, cols: 256, rng: &rng))
        let s = try Setup(c)
        defer { s.dir.remove() }
        var o = QuantizeOptions()
        o.minSQNR = 35
        let m = try Engine.quantize(input: s.input, output: s.output, options: o)
        #expect(Verifier.verify(s.output).ok)
        let r = try #require(m.tensors.first { $0.name == "spiky.weight" })
        let guardRecord = try #require(r.sensitivity)
        #expect(r.decision == "quantized" && guardRecord.minSqnrDb == 35 && guardRecord.measuredSqnrDb < 35)
        #expect(guardRecord.action == "group-\(r.scheme!.groupSize!)" && r.scheme!.groupSize! < 128)
        #expect(try #require(guardRecord.fallbackSqnrDb) >= 35 && r.error!.sqnrDb! >= 35)
        #expect(r.reason.contains("below min_sqnr 35.0 dB") && r.reason.contains(guardRecord.action))
        let out = try DecodedCheckpoint(zst: s.output + "/model.safetensors.zst")
        #expect(out.tensor("spiky.weight_scale")?.shape == [64, 256 / r.scheme!.groupSize!])
        // The others keep the configured scheme and carry no guard record.
        let others = m.tensors.filter { $0.decision == "quantized" && $0.name != "spiky.weight" }
        #expect(others.count == 4 && others.allSatisfy { $0.sensitivity == nil })
        // 128 does not divide its 300 columns: groups of 100, the largest divisor below it.
        #expect(others.first { $0.name == "layer.0.mlp.up.weight" }?.scheme?.groupSize == 100)
        // Without the guard the same tensor falls below the bar.
        var plain = QuantizeOptions()
        plain.minSQNR = nil
        let m2 = try Engine.quantize(input: s.input, output: s.dir["plain"], options: plain)
        let r2 = try #require(m2.tensors.first { $0.name == "spiky.weight" })
        #expect(r2.error!.sqnrDb! < 35 && abs(r2.error!.sqnrDb! - guardRecord.measuredSqnrDb) < 0.01)
    }

    /// The keep fallback, or a bar no group reaches, leaves the tensor in its source dtype with the reason.
    @Test func keepFallbackOrAnUnreachableBarLeavesTheTensorInItsSourceDtype() throws {
        var rng = SeededRandom(seed: 23)
        var c = mixedCheckpoint()
        let values = spiky(rows: 64, cols: 256, rng: &rng)
        c.add("spiky.weight", shape: [64, 256], values: values)
        let s = try Setup(c)
        defer { s.dir.remove() }
        for (fallback, bar) in [(QuantizeOptions.Fallback.keep, 35.0), (.group, 90.0)] {
            var o = QuantizeOptions()
            o.minSQNR = bar
            o.fallback = fallback
            let dest = s.dir["out-\(fallback)"]
            let m = try Engine.quantize(input: s.input, output: dest, options: o)
            #expect(Verifier.verify(dest).ok)
            let r = try #require(m.tensors.first { $0.name == "spiky.weight" })
            #expect(r.decision == "kept" && r.storedDtype == "F32" && r.sensitivity?.action == "kept")
            #expect(r.reason.contains("min_sqnr") && r.reason.contains("kept in F32"), "\(r.reason)")
            if fallback == .group { #expect(r.reason.contains("no group down to 16")) }
            let out = try DecodedCheckpoint(zst: dest + "/model.safetensors.zst")
            #expect(out.raw("spiky.weight") == (try DecodedCheckpoint(safetensors: c.bytes)).raw("spiky.weight"))
            #expect(out.tensor("spiky.weight_scale") == nil)
        }
    }

    /// `min_elements` leaves small tensors alone, with the reason, and quantizes the rest.
    @Test func minElementsLeavesSmallTensorsAloneAndQuantizesTheRest() throws {
        let c = mixedCheckpoint()
        let s = try Setup(c)
        defer { s.dir.remove() }
        var o = QuantizeOptions()
        o.minElements = 500   // conv.weight has 450 elements, rows.weight 120; the others more
        let m = try Engine.quantize(input: s.input, output: s.output, options: o)
        #expect(Verifier.verify(s.output).ok)
        let quantized = Set(m.tensors.filter { $0.decision == "quantized" }.map(\.name))
        #expect(quantized == ["layer.0.attn.q.weight", "layer.0.mlp.up.weight"])
        for name in ["conv.weight", "rows.weight"] {
            let r = try #require(m.tensors.first { $0.name == name })
            #expect(r.decision == "kept" && r.reason.contains("fewer than min_elements 500"), "\(r.reason)")
        }
    }

    /// Calibrators never wreck a weight: where a method has too few values (entropy's histogram on rows shorter
    /// than its 2048 bins), or its range costs more than `CalibrationGuard.tolerance` times absmax's error
    /// (percentile 50 clips half of every group), the group gets absmax's range, and the manifest says so.
    @Test func calibratorFallsBackToAbsmaxWhereItHasTooFewValuesOrDoesWorse() throws {
        let c = mixedCheckpoint()
        let s = try Setup(c)
        defer { s.dir.remove() }
        var plain = QuantizeOptions()
        plain.granularity = .channel
        let absmax = try Engine.quantize(input: s.input, output: s.dir["absmax"], options: plain)
        let reference = try DecodedCheckpoint(zst: s.dir["absmax"] + "/model.safetensors.zst")
        for (name, calibration, percentile) in [("entropy", QuantizeOptions.Calibration.entropy, 99.99),
                                                 ("p50", .percentile, 50)] {
            var o = plain
            o.calibration = calibration
            o.percentile = percentile
            let m = try Engine.quantize(input: s.input, output: s.dir[name], options: o)
            let out = try DecodedCheckpoint(zst: s.dir[name] + "/model.safetensors.zst")
            // Constant and all-zero rows: every percentile is their absmax, nothing to fall back from.
            for r in m.tensors where r.decision == "quantized" && !(calibration == .percentile && r.name == "rows.weight") {
                let fallback = try #require(r.scheme?.calibrationFallback, "\(name): \(r.name)")
                #expect(fallback.groups == r.shape[0] && fallback.of == r.shape[0])
                #expect(fallback.reason.contains(calibration == .entropy ? "fewer than the 2048 values" : "times absmax"))
                #expect(out.codes(r.name) == reference.codes(r.name), "\(name): \(r.name) as absmax")
                let plainRecord = absmax.tensors.first { $0.name == r.name }!
                // The same codes; the figures agree up to the two paths' summation order.
                #expect(abs((r.error?.sqnrDb ?? 0) - (plainRecord.error?.sqnrDb ?? 0)) < 1e-6)
            }
        }
        // mse never loses to absmax (its search starts there), so it never falls back.
        var mse = plain
        mse.calibration = .mse
        let m = try Engine.quantize(input: s.input, output: s.dir["mse"], options: mse)
        #expect(m.tensors.allSatisfy { $0.scheme?.calibrationFallback?.worse ?? 0 == 0 })
    }

    /// config.json says exactly what each tensor got: the guard's finer groups in a group of their own, targeted by
    /// module name with their real group size; every kept weight (embedding, norm) in `ignore`.
    @Test func quantizationConfigGivesAGuardedTensorItsOwnGroupAndIgnoresKeptWeights() throws {
        let dir = TempDir("quantd-config")
        defer { dir.remove() }
        var rng = SeededRandom(seed: 22)
        var c = Checkpoint()
        c.addRandom("model.layers.0.mlp.up_proj.weight", shape: [64, 256], rng: &rng)
        c.add("model.layers.0.mlp.down_proj.weight", shape: [64, 256], values: spiky(rows: 64, cols: 256, rng: &rng))
        c.addRandom("model.embed_tokens.weight", shape: [100, 64], rng: &rng)
        c.addRandom("model.layers.0.input_layernorm.weight", shape: [64], rng: &rng)
        _ = Shell.run("/bin/mkdir", [dir["model"]])
        try c.write(to: dir["model"] + "/model.safetensors")
        try TempDir.write(Array(#"{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}"#.utf8),
                          to: dir["model"] + "/config.json")
        var o = QuantizeOptions()
        o.minSQNR = 35
        let m = try Engine.quantize(input: dir["model"], output: dir["out"], options: o)
        let guarded = try #require(m.tensors.first { $0.name == "model.layers.0.mlp.down_proj.weight" })
        let size = try #require(guarded.scheme?.groupSize)
        #expect(size < 128 && guarded.sensitivity != nil)
        #expect(m.tensors.first { $0.name == "model.embed_tokens.weight" }?.decision == "kept")

        let config = try #require(try JSONSerialization.jsonObject(with: Data(TempDir.read(dir["out"] + "/config.json")))
            as? [String: Any])
        #expect(config["model_type"] as? String == "llama")
        let q = try #require(config["quantization_config"] as? [String: Any])
        let groups = try #require(q["config_groups"] as? [String: [String: Any]])
        #expect(q["format"] as? String == "pack-quantized" && groups.count == 2)
        let main = try #require(groups["group_0"]), other = try #require(groups["group_1"])
        #expect(main["targets"] as? [String] == ["Linear"] && main["format"] as? String == "pack-quantized")
        #expect((main["weights"] as? [String: Any])?["group_size"] as? Int == 128)
        #expect(other["targets"] as? [String] == ["model.layers.0.mlp.down_proj"])
        #expect((other["weights"] as? [String: Any])?["group_size"] as? Int == size)
        #expect((main["weights"] as? [String: Any])?["strategy"] as? String == "group")
        #expect(Set(q["ignore"] as? [String] ?? []) == ["model.embed_tokens", "model.layers.0.input_layernorm"])
    }

    @Test func optionsDecodeMissingKeysAsDefaultsAndRoundTripThroughTheManifestsJSON() throws {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        let json = #"{"granularity": "channel", "min_sqnr": 30}"#
        let partial = try d.decode(QuantizeOptions.self, from: Data(json.utf8))
        var expected = QuantizeOptions()
        expected.granularity = .channel
        expected.minSQNR = 30
        #expect(partial == expected)
        var o = QuantizeOptions()
        o.calibration = .entropy
        o.scaleDtype = .bf16
        o.fallback = .keep
        o.minElements = 7
        o.percentile = 99.5
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        let encoded = String(decoding: try e.encode(o), as: UTF8.self)
        #expect(encoded.contains(#""scale_dtype":"bf16""#) && encoded.contains(#""calibration":"entropy""#))
        #expect(try d.decode(QuantizeOptions.self, from: Data(encoded.utf8)) == o)
        #expect(o.schemeDescription == "W8A16: int8 symmetric group-128 entropy bf16-scales")
        #expect(try d.decode(QuantizeOptions.self, from: Data(#"{"scheme": "W8A8"}"#.utf8)) == QuantizeOptions(scheme: .w8a8))
    }

    @Test func badCalibrationOptionsAreRefusedAsUsageErrors() throws {
        let s = try Setup(mixedCheckpoint())
        defer { s.dir.remove() }
        for change in [{ (o: inout QuantizeOptions) in o.percentile = 20 }, { $0.minSQNR = .nan },
                       { $0.minElements = -1 }] {
            var o = QuantizeOptions()
            change(&o)
            #expect { try Engine.quantize(input: s.input, output: s.output, options: o) } throws: { e in
                (e as! EngineError).kind == .usage
            }
        }
    }
}
