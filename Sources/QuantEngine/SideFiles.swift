import QuantSystem
import Crypto
import FoundationEssentials
import SafeTensors

/// The files of a sharded checkpoint beside its shards: the index, rewritten for the new tensors,
/// and `config.json`, copied with a compressed-tensors `quantization_config` block.
enum SideFiles {
    struct Written {
        var source: Manifest.SourceFile
        var output: Manifest.OutputFile
    }

    static func write(source: Source, plans: [FilePlan], options: QuantizeOptions,
                      records: [Manifest.TensorRecord], into staging: String) throws(EngineError) -> [Written] {
        var written: [Written] = []
        if let index = source.index {
            var map: [(tensor: String, file: String)] = []
            var total = 0
            for plan in plans {
                for t in plan.outputTensors { map.append((t.name, plan.sourceName)) }
                total += plan.outputTensors.last?.dataRange.upperBound ?? 0
            }
            let bytes = ShardIndex.encode(totalSize: total, weightMap: map)
            written.append(try store(bytes, name: index.name, original: index.bytes, into: staging))
        }
        if let config = source.config, case .object(var object) = config.value {
            // Nothing quantized: config.json stays as it was (a consumer would look for groups that are not there).
            if records.contains(where: { $0.decision == "quantized" }) {
                object["quantization_config"] = quantizationConfig(records: records)
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let bytes: [UInt8]
            do { bytes = Array(try encoder.encode(JSONValue.object(object))) + [0x0A] } catch {
                throw EngineError(.io, file: staging + "/config.json", reason: "cannot encode: \(error)", stage: "commit")
            }
            written.append(try store(bytes, name: "config.json", original: config.bytes, into: staging))
        }
        return written
    }

    /// compressed-tensors' description of what was done, built from the tensors' records (not from the options):
    /// one config group per distinct scheme, each with its `format`. The group holding most linear-layer weights
    /// targets the class `Linear`; every other quantized module is targeted by its name (an exact name outranks a
    /// class in compressed-tensors' and vLLM's matching). Kept floating weights of 2 or more dimensions are listed
    /// in `ignore` by module name, and so is every other module whose `.weight` was kept (norms included).
    /// `format` at the top is the groups' one format, or `mixed-precision`.
    static func quantizationConfig(records: [Manifest.TensorRecord]) -> JSONValue {
        var keys: [Manifest.Scheme] = []
        var members: [Manifest.Scheme: (linear: [String], named: [String])] = [:]
        for r in records where r.decision == "quantized" {
            guard var key = r.scheme else { continue }
            key.calibrationFallback = nil
            if members[key] == nil {
                keys.append(key)
                members[key] = ([], [])
            }
            if Selection.isLinearWeight(r.name, shape: r.shape) {
                members[key]!.linear.append(module(r.name))
            } else {
                members[key]!.named.append(module(r.name))
            }
        }
        let main = keys.max { members[$0]!.linear.count < members[$1]!.linear.count }
        var groups: [String: JSONValue] = [:]
        // The main group first, then the others in the order their first tensor appears.
        for (i, key) in keys.sorted(by: { a, _ in a == main }).enumerated() {
            let m = members[key]!
            let targets = key == main && !m.linear.isEmpty ? ["Linear"] + m.named : m.linear + m.named
            groups["group_\(i)"] = .object([
                "format": .string(key.format.rawValue),
                "targets": .array(targets.map { .string($0) }),
                "weights": weights(key),
                "input_activations": key.inputActivations.map(activations) ?? .null,
                "output_activations": .null,
            ])
        }
        // Every module whose weight stayed as it was: a reader without the model (compressed-tensors'
        // checkpoint converter) takes any `X.weight` under a `Linear` target for an int-quantized one otherwise.
        let ignore = records.filter {
            $0.decision == "kept" && ($0.name.hasSuffix(".weight")
                || $0.shape.count >= 2 && (DType(rawValue: $0.sourceDtype)?.isQuantizableFloat ?? false))
        }.map { JSONValue.string(module($0.name)) }
        let formats = Set(keys.map(\.format))
        return .object([
            "quant_method": .string("compressed-tensors"),
            "format": .string(formats.count == 1 ? formats.first!.rawValue : "mixed-precision"),
            "quantization_status": .string("compressed"),
            "config_groups": .object(groups),
            "ignore": .array(ignore),
            "kv_cache_scheme": .null,
        ])
    }

    /// The module a weight belongs to: its name without `.weight`.
    static func module(_ tensor: String) -> String {
        tensor.hasSuffix(".weight") ? String(tensor.dropLast(7)) : tensor
    }

    private static func weights(_ s: Manifest.Scheme) -> JSONValue {
        var w: [String: JSONValue] = [
            "num_bits": .int(Int64(s.bits)), "type": .string("int"), "symmetric": .bool(s.symmetric),
            "strategy": .string(s.granularity.rawValue),
            "group_size": s.granularity == .group ? .int(Int64(s.groupSize ?? 0)) : .null,
            "dynamic": .bool(false), "observer": .string(s.calibrator.observer),
            "scale_dtype": .string(torchName(s.scaleDtype)),
        ]
        if !s.symmetric { w["zp_dtype"] = .string("torch.int8") }
        return .object(w)
    }

    private static func activations(_ a: ActivationScheme) -> JSONValue {
        .object([
            "num_bits": .int(Int64(a.numBits)), "type": .string(a.type), "symmetric": .bool(a.symmetric),
            "strategy": .string(a.strategy), "dynamic": .bool(a.dynamic), "group_size": .null,
        ])
    }

    private static func torchName(_ d: DType) -> String {
        switch d {
        case .F16: "torch.float16"
        case .BF16: "torch.bfloat16"
        default: "torch.float32"
        }
    }

    /// Copies the folder's carried files into the staging folder under the same relative paths, each fsynced, and
    /// then every folder it made (deepest first).
    static func carry(_ source: Source, into staging: String) throws(EngineError) -> [Written] {
        var written: [Written] = []
        var folders = CarriedFiles.Subfolders(root: staging)
        for path in source.carried {
            try folders.parents(of: path, stage: "commit")
            let copied = try CarriedFiles.copy(source.path + "/" + path, to: staging + "/" + path, stage: "commit")
            written.append(Written(
                source: .init(file: path, size: copied.size, sha256: copied.sha256),
                output: .init(file: path, source: path, size: copied.size, sha256: copied.sha256, rawSize: 0,
                              frames: [])))
        }
        try folders.sync(stage: "commit")
        return written
    }

    private static func store(_ bytes: [UInt8], name: String, original: [UInt8], into staging: String)
        throws(EngineError) -> Written
    {
        let out = try OutputFile.create(staging + "/" + name, stage: "commit")
        try out.write(bytes, stage: "commit")
        try out.sync(stage: "commit")
        return Written(
            source: .init(file: name, size: original.count, sha256: SHA256.hash(data: original).hex),
            output: .init(file: name, source: name, size: bytes.count, sha256: SHA256.hash(data: bytes).hex,
                          rawSize: 0, frames: []))
    }
}
