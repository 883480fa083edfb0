@testable import QuantEngine
import SafeTensors
import Testing
import TestSupport

/// A small checkpoint with every kind of tensor the rules must tell apart.
func mixedCheckpoint(dtype: DType = .F32, seed: UInt64 = 1) -> Checkpoint {
    var rng = SeededRandom(seed: seed)
    var c = Checkpoint()
    c.addRandom("layer.0.attn.q.weight", dtype, shape: [37, 129], rng: &rng)   // odd sizes: tails everywhere
    c.addRandom("layer.0.attn.q.bias", dtype, shape: [37], rng: &rng)          // 1-D: kept
    c.addRandom("layer.0.norm.weight", dtype, shape: [4, 8], rng: &rng)         // 'norm': kept
    c.addRandom("layer.0.mlp.up.weight", dtype, shape: [64, 300], rng: &rng)
    c.addRandom("conv.weight", dtype, shape: [6, 3, 5, 5], rng: &rng)           // 4-D viewed as [6, 75]
    c.add("rows.weight", dtype, shape: [3, 40], values: Array(repeating: 0, count: 40)   // an all-zero row
        + Array(repeating: 0.5, count: 40) + Array(repeating: -0.25, count: 40))        // constant rows
    c.add("position_ids", .I64, shape: [1, 5], bytes: (0..<5).flatMap { i in
        withUnsafeBytes(of: Int64(i).littleEndian, Array.init) })
    c.add("empty.weight", dtype, shape: [0, 4], values: [])
    return c
}

struct Setup {
    let dir = TempDir("quantd-engine")
    var input: String { dir["model.safetensors"] }
    var output: String { dir["out"] }

    init(_ c: Checkpoint) throws { try c.write(to: dir["model.safetensors"]) }
}

@Suite("Engine") struct EngineTests {
    @Test(arguments: [QuantizeOptions.Granularity.channel, .group, .tensor], [true, false])
    func everyElementComesBackWithinHalfAScaleAndKeptTensorsBitForBit(
        granularity: QuantizeOptions.Granularity, symmetric: Bool
    ) throws {
        let c = mixedCheckpoint()
        let s = try Setup(c)
        defer { s.dir.remove() }
        var o = QuantizeOptions()
        o.granularity = granularity
        o.groupSize = 32
        o.symmetric = symmetric
        let manifest = try Engine.quantize(input: s.input, output: s.output, options: o)
        let out = try DecodedCheckpoint(zst: s.output + "/model.safetensors.zst")
        let original = try DecodedCheckpoint(safetensors: c.bytes)

        let quantized = Set(manifest.tensors.filter { $0.decision == "quantized" }.map(\.name))
        #expect(quantized == ["layer.0.attn.q.weight", "layer.0.mlp.up.weight", "conv.weight", "rows.weight"])
        for e in c.entries where !quantized.contains(e.name) {
            #expect(out.raw(e.name) == e.bytes, "\(e.name) copied bit for bit")
            #expect(out.tensor(e.name)?.dtype == e.dtype)
        }
        for name in quantized {
            let x = original.floats(name)
            let shape = original.tensor(name)!.shape
            let rows = shape[0], cols = x.count / rows
            let record = manifest.tensors.first { $0.name == name }!
            let q = out.codes(name)
            let scales = out.floats(name + "_scale")
            let zeros = out.zeroPoints(name)
            // The default scheme (W8A16) writes symmetric linear layers in compressed-tensors' pack-quantized layout;
            // other weights (the 4-D conv) and asymmetric ones int-quantized.
            if name == "conv.weight" || !symmetric {
                #expect(out.tensor(name)?.dtype == .I8 && out.tensor(name)?.shape == shape)
                #expect(record.scheme?.format == .intQuantized && record.reason.contains("default rule"))
            } else {
                #expect(out.tensor(name + "_packed")?.dtype == .I32
                        && out.int64s(name + "_shape") == shape.map(Int64.init))
                #expect(record.scheme?.format == .packQuantized)
            }
            #expect(q.count == x.count)
            #expect(symmetric == (out.tensor(name + "_zero_point") == nil))
            // Groups divide the row (32 where it does, else its largest divisor down to 16, else the whole row).
            let size = record.scheme!.granularity == .group ? record.scheme!.groupSize! : cols
            #expect(cols % size == 0 && (record.scheme!.granularity != .group || size <= 32))
            let groups = cols / size
            #expect(scales.count == (granularity == .tensor ? 1 : rows * groups))
            for i in 0..<x.count {
                let r = i / cols, g = (i % cols) / size
                let k = granularity == .tensor ? 0 : r * groups + g
                let zp = zeros.isEmpty ? 0 : Float(zeros[k])
                let deq = scales[k] * (Float(q[i]) - zp)
                #expect(abs(deq - x[i]) <= scales[k] * 0.5001 + 1e-7, "\(name)[\(i)]: \(x[i]) -> \(deq)")
                if abs(deq - x[i]) > scales[k] * 0.5001 + 1e-7 { return }
            }
        }
        // All-zero and constant rows are exact under per-row scales.
        if granularity != .tensor {
            let rows = out.floats("rows.weight_scale")
            #expect(rows.allSatisfy { $0 > 0 && $0.isFinite })
        }
        let r = manifest.tensors.first { $0.name == "layer.0.mlp.up.weight" }!
        // One scale for the whole tensor pays for the outliers (about 25 dB here); finer scales do not.
        #expect(r.error!.sqnrDb! > (granularity == .tensor ? 20 : 30))
        #expect(manifest.totals.quantized == 4 && manifest.totals.kept == c.entries.count - 4)
    }

    /// W8A8 writes int8 weights per channel with one scale per row, and declares dynamic per-token activations.
    @Test func w8a8WritesInt8WeightsPerChannelAndDeclaresDynamicPerTokenActivations() throws {
        let c = mixedCheckpoint()
        let s = try Setup(c)
        defer { s.dir.remove() }
        let manifest = try Engine.quantize(input: s.input, output: s.output, options: QuantizeOptions(scheme: .w8a8))
        let out = try DecodedCheckpoint(zst: s.output + "/model.safetensors.zst")
        let original = try DecodedCheckpoint(safetensors: c.bytes)
        for r in manifest.tensors where r.decision == "quantized" {
            let x = original.floats(r.name), q = out.int8s(r.name), scales = out.floats(r.name + "_scale")
            let rows = r.shape[0], cols = x.count / rows
            #expect(out.tensor(r.name)?.dtype == .I8 && out.tensor(r.name)?.shape == r.shape)
            #expect(out.tensor(r.name + "_scale")?.shape == [rows, 1] && out.tensor(r.name + "_packed") == nil)
            // Only a linear layer's input is quantized at run time; the conv's weights are quantized alone.
            #expect(r.scheme?.format == .intQuantized
                    && r.scheme?.inputActivations == (r.name == "conv.weight" ? nil : .int8DynamicPerToken))
            for i in 0..<x.count { #expect(abs(scales[i / cols] * Float(q[i]) - x[i]) <= scales[i / cols] * 0.5001) }
        }
        var bad = QuantizeOptions(scheme: .w8a8)
        bad.symmetric = false
        #expect(throws: EngineError.self) { try Engine.quantize(input: s.input, output: s.dir["a"], options: bad) }
        bad = QuantizeOptions(scheme: .w8a8)
        bad.granularity = .group
        #expect(throws: EngineError.self) { try Engine.quantize(input: s.input, output: s.dir["g"], options: bad) }
    }

    @Test func sameInputGivesTheSameBytesWhateverTheThreadCount() throws {
        var rng = SeededRandom(seed: 9)
        var c = mixedCheckpoint()
        c.addRandom("big.weight", shape: [1500, 1024], rng: &rng)   // several tiles
        let s = try Setup(c)
        defer { s.dir.remove() }
        var outputs: [[UInt8]] = []
        for threads in [1, 2, 5] {
            var o = QuantizeOptions()
            o.threads = threads
            let dest = s.dir["out-\(threads)"]
            let m = try Engine.quantize(input: s.input, output: dest, options: o)
            outputs.append(try TempDir.read(dest + "/model.safetensors.zst"))
            #expect(m.outputs[0].frames.count > 4)
        }
        #expect(outputs[0] == outputs[1] && outputs[1] == outputs[2])
    }

    @Test func verifyAcceptsAnOutputAndCatchesAChangedByte() throws {
        let s = try Setup(mixedCheckpoint())
        defer { s.dir.remove() }
        _ = try Engine.quantize(input: s.input, output: s.output, options: QuantizeOptions())
        let good = Verifier.verify(s.output)
        #expect(good.ok, "\(good.problems)")
        let path = s.output + "/model.safetensors.zst"
        var bytes = try TempDir.read(path)
        bytes[bytes.count / 2] ^= 0x40
        try TempDir.write(bytes, to: path)
        let bad = Verifier.verify(s.output)
        #expect(!bad.ok)
        #expect(bad.problems.contains { $0.contains("model.safetensors.zst") })
    }

    @Test func brokenInputIsRefusedWithItsNameAndNothingIsLeftBehind() throws {
        let s = try Setup(mixedCheckpoint())
        defer { s.dir.remove() }
        var bytes = try TempDir.read(s.input)
        bytes.removeLast(3)
        try TempDir.write(bytes, to: s.input)
        #expect {
            try Engine.quantize(input: s.input, output: s.output, options: QuantizeOptions())
        } throws: { e in
            let e = e as! EngineError
            return e.kind == .badInput && e.description.contains(s.input) && e.exitCode == 65
        }
        #expect(TempDir.list(s.dir.path) == ["model.safetensors"])
    }

    @Test func existingOutputIsRefusedUnlessForcedThenReplacedWhole() throws {
        let s = try Setup(mixedCheckpoint())
        defer { s.dir.remove() }
        _ = try Engine.quantize(input: s.input, output: s.output, options: QuantizeOptions())
        #expect(throws: EngineError.self) {
            try Engine.quantize(input: s.input, output: s.output, options: QuantizeOptions())
        }
        var o = QuantizeOptions()
        o.symmetric = false
        let m = try Engine.quantize(input: s.input, output: s.output, options: o, force: true)
        #expect(m.config.symmetric == false)
        #expect(TempDir.list(s.dir.path) == ["model.safetensors", "out"])
        #expect(Verifier.verify(s.output).ok)
    }

    @Test func nanOrInfRefusesTheCheckpointNamingTensorAndCountUnlessKept() throws {
        var c = mixedCheckpoint()
        var values = (0..<64).map { Float($0) / 64 }
        values[3] = .nan
        values[40] = .infinity
        values[41] = -.infinity
        c.add("bad.weight", shape: [8, 8], values: values)
        let s = try Setup(c)
        defer { s.dir.remove() }
        #expect {
            try Engine.quantize(input: s.input, output: s.output, options: QuantizeOptions())
        } throws: { e in
            let e = e as! EngineError
            return e.kind == .badInput && e.tensor == "bad.weight" && e.reason.contains("3 non-finite")
        }
        #expect(!TempDir.exists(s.output))
        var o = QuantizeOptions()
        o.keepNonFinite = true
        let m = try Engine.quantize(input: s.input, output: s.output, options: o)
        let r = m.tensors.first { $0.name == "bad.weight" }!
        #expect(r.decision == "kept" && r.reason.contains("non-finite"))
        #expect(try DecodedCheckpoint(zst: s.output + "/model.safetensors.zst").raw("bad.weight")
            == c.entries.last!.bytes)
    }

    @Test(arguments: [DType.F16, .BF16, .F64])
    func f16BF16AndF64InputsAreDecodedAndQuantized(dtype: DType) throws {
        let c = mixedCheckpoint(dtype: dtype)
        let s = try Setup(c)
        defer { s.dir.remove() }
        let m = try Engine.quantize(input: s.input, output: s.output, options: QuantizeOptions())
        let r = m.tensors.first { $0.name == "layer.0.mlp.up.weight" }!
        #expect(r.sourceDtype == dtype.rawValue && r.storedDtype == "I32")
        #expect(r.error!.sqnrDb! > 30)
        let out = try DecodedCheckpoint(zst: s.output + "/model.safetensors.zst")
        #expect(out.raw("layer.0.attn.q.bias") == c.entries[1].bytes)
    }

    @Test func includeAndExcludeDecideAndTheManifestSaysWhy() throws {
        let s = try Setup(mixedCheckpoint())
        defer { s.dir.remove() }
        var o = QuantizeOptions()
        o.include = ["bias$", "mlp"]
        o.exclude = ["up"]
        let m = try Engine.quantize(input: s.input, output: s.output, options: o)
        let byName = Dictionary(uniqueKeysWithValues: m.tensors.map { ($0.name, $0) })
        #expect(byName["layer.0.attn.q.bias"]?.decision == "quantized")
        #expect(byName["layer.0.attn.q.bias"]?.reason.contains("bias$") == true)
        #expect(byName["layer.0.mlp.up.weight"]?.decision == "kept")
        #expect(byName["layer.0.mlp.up.weight"]?.reason.contains("--exclude 'up'") == true)
        #expect(byName["conv.weight"]?.decision == "kept")
        #expect(byName["position_ids"]?.reason.contains("I64") == true)
        #expect(throws: EngineError.self) {
            var bad = QuantizeOptions()
            bad.include = ["("]
            return try Engine.quantize(input: s.input, output: s.dir["x"], options: bad)
        }
    }

    @Test func shardedFolderKeepsItsSplitAndRewritesTheIndexAndConfig() throws {
        let dir = TempDir("quantd-shards")
        defer { dir.remove() }
        let input = dir["model"]
        var rng = SeededRandom(seed: 3)
        var a = Checkpoint(), b = Checkpoint()
        a.addRandom("a.weight", shape: [16, 16], rng: &rng)
        a.addRandom("a.bias", shape: [16], rng: &rng)
        b.addRandom("b.weight", shape: [8, 16], rng: &rng)
        var model = ShardedCheckpoint()
        model.add("model-00001-of-00002.safetensors", a)
        model.add("model-00002-of-00002.safetensors", b)
        try model.write(to: input)
        try TempDir.write(Array(#"{"hidden_size": 16, "architectures": ["Bert"]}"#.utf8), to: input + "/config.json")

        let out = dir["out"]
        let m = try Engine.quantize(input: input, output: out, options: QuantizeOptions())
        #expect(TempDir.list(out) == ["config.json", "manifest.json", "model-00001-of-00002.safetensors.zst",
                                      "model-00002-of-00002.safetensors.zst", "model.safetensors.index.json"])
        let newIndex = try TempDir.read(out + "/model.safetensors.index.json")
        let parsed = try newIndex.withUnsafeBytes { try ShardIndex.parse($0, file: "index") }
        #expect(Set(parsed.weightMap.map(\.tensor)).isSuperset(of: ["b.weight_packed", "b.weight_scale", "b.weight_shape"]))
        // Codes, scales, a.bias, and each packed weight's I64 [rows, cols] shape.
        #expect(parsed.totalSize == 16 * 16 + 16 * 4 + 16 * 4 + 8 * 16 + 8 * 4 + 2 * 16)
        let config = String(decoding: try TempDir.read(out + "/config.json"), as: UTF8.self)
        #expect(config.contains("\"quant_method\" : \"compressed-tensors\""))
        #expect(config.contains("\"hidden_size\" : 16"))
        #expect(m.sources.count == 4)
        #expect(Verifier.verify(out).ok)

        try TempDir.write(ShardIndex.encode(totalSize: 0, weightMap: [("a.weight", "model-00009-of-00009.safetensors")]),
                          to: input + "/model.safetensors.index.json")
        #expect {
            try Engine.quantize(input: input, output: dir["out2"], options: QuantizeOptions())
        } throws: { e in (e as! EngineError).reason.contains("model-00009-of-00009.safetensors") }
    }

    /// The shards of a folder run side by side, with the same bytes at 1, 2 and 5 threads.
    @Test func shardsRunSideBySideWithTheSameBytesWhateverTheThreadCount() throws {
        let dir = TempDir("quantd-shards-parallel")
        defer { dir.remove() }
        let input = dir["model"]
        var rng = SeededRandom(seed: 11)
        let shards = 7   // more than any thread count below: files wait for a free lane
        var model = ShardedCheckpoint()
        for k in 1...shards {
            var c = Checkpoint()
            c.addRandom("layer\(k).weight", shape: [64 + 16 * k, 256], rng: &rng)
            c.addRandom("layer\(k).bias", shape: [256], rng: &rng)
            model.add("model-\(k)-of-\(shards).safetensors", c)
        }
        try model.write(to: input)
        var runs: [[String: [UInt8]]] = []
        var records: [[Manifest.TensorRecord]] = []
        for threads in [1, 2, 5] {
            let width = FileRuns.width(files: shards, threads: threads)
            #expect(width == [1: 1, 2: 2, 5: 2][threads])
            #expect((0..<width).map { FileRuns.workers(lane: $0, of: width, threads: threads) }.reduce(0, +) == threads)
            var o = QuantizeOptions()
            o.threads = threads
            let out = dir["out-\(threads)"]
            let m = try Engine.quantize(input: input, output: out, options: o)
            #expect(m.sources.map(\.file) == (1...shards).map { "model-\($0)-of-\(shards).safetensors" }
                + ["model.safetensors.index.json"])
            var files: [String: [UInt8]] = [:]
            for name in TempDir.list(out) where name != "manifest.json" { files[name] = try TempDir.read(out + "/" + name) }
            runs.append(files)
            records.append(m.tensors)
            #expect(Verifier.verify(out).ok)
        }
        #expect(runs[0].count == shards + 1)
        #expect(runs[0] == runs[1] && runs[1] == runs[2])
        #expect(records[0] == records[1] && records[1] == records[2])

        // A shard that fails mid-job stops the others, names its tensor and leaves nothing behind.
        var bad = Checkpoint()
        bad.add("layer3.weight", shape: [2, 4], values: [1, 2, .nan, 4, 5, 6, 7, 8])
        bad.add("layer3.bias", shape: [4], values: [0, 0, 0, 0])
        try bad.write(to: input + "/model-3-of-\(shards).safetensors")
        var o = QuantizeOptions()
        o.threads = 5
        #expect {
            try Engine.quantize(input: input, output: dir["out-bad"], options: o)
        } throws: { e in
            let error = e as! EngineError
            return error.kind == .badInput && error.tensor == "layer3.weight"
        }
        #expect(TempDir.list(dir.path).filter { $0.hasPrefix(".out-bad") || $0 == "out-bad" }.isEmpty)
    }

    @Test func dequantizeRebuildsFloat32WithinHalfAScale() throws {
        let c = mixedCheckpoint()
        let s = try Setup(c)
        defer { s.dir.remove() }
        var o = QuantizeOptions()
        o.symmetric = false
        o.granularity = .group
        o.groupSize = 16
        _ = try Engine.quantize(input: s.input, output: s.output, options: o)
        let files = try Dequantizer.run(folder: s.output, to: s.dir["deq.safetensors"])
        let deq = try DecodedCheckpoint(safetensors: try TempDir.read(files[0]))
        let original = try DecodedCheckpoint(safetensors: c.bytes)
        #expect(deq.header.tensors.map(\.name).sorted() == original.header.tensors.map(\.name).sorted())
        let x = original.floats("layer.0.mlp.up.weight"), y = deq.floats("layer.0.mlp.up.weight")
        let maxErr = zip(x, y).map { abs($0 - $1) }.max()!
        let amax = x.map(abs).max()!
        #expect(maxErr <= amax * 2 / 255)
        #expect(deq.raw("position_ids") == original.raw("position_ids"))
    }

    @Test func budgetSmallerThanOneUnitStillCompletesAndCancellationLeavesNothing() throws {
        var rng = SeededRandom(seed: 5)
        var c = Checkpoint()
        c.addRandom("w.weight", shape: [2048, 1024], rng: &rng)
        let s = try Setup(c)
        defer { s.dir.remove() }
        let budget = ByteBudget(bytes: 1)
        _ = try Engine.quantize(input: s.input, output: s.output, options: QuantizeOptions(), budget: budget)
        #expect(budget.inUse == 0)
        let flag = CancellationFlag()
        flag.cancel()
        #expect {
            try Engine.quantize(input: s.input, output: s.dir["out2"], options: QuantizeOptions(), budget: budget,
                                cancel: flag)
        } throws: { e in (e as! EngineError).kind == .cancelled }
        #expect(budget.inUse == 0)
        #expect(TempDir.list(s.dir.path) == ["model.safetensors", "out"])
    }
}
