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
            object["quantization_config"] = quantizationConfig(options, records: records)
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

    /// compressed-tensors' description of the scheme: one config group for every quantized tensor,
    /// and the 2-D+ float tensors left alone named in `ignore` (by module, without `.weight`).
    static func quantizationConfig(_ options: QuantizeOptions, records: [Manifest.TensorRecord]) -> JSONValue {
        let strategy: String
        switch options.granularity {
        case .tensor: strategy = "tensor"
        case .channel: strategy = "channel"
        case .group: strategy = "group"
        }
        let weights: [String: JSONValue] = [
            "num_bits": .int(8), "type": .string("int"), "symmetric": .bool(options.symmetric),
            "strategy": .string(strategy),
            "group_size": options.granularity == .group ? .int(Int64(options.groupSize)) : .null,
            "observer": .string("minmax"), "dynamic": .bool(false),
        ]
        let ignore = records.filter {
            $0.decision == "kept" && $0.shape.count >= 2 && ["F32", "F16", "BF16", "F64"].contains($0.sourceDtype)
        }.map { JSONValue.string($0.name.hasSuffix(".weight") ? String($0.name.dropLast(7)) : $0.name) }
        return .object([
            "quant_method": .string("compressed-tensors"),
            "format": .string("naive-quantized"),
            "quantization_status": .string("compressed"),
            "config_groups": .object(["group_0": .object([
                "targets": .array([.string("Linear")]),
                "weights": .object(weights),
                "input_activations": .null,
                "output_activations": .null,
            ])]),
            "ignore": .array(ignore),
        ])
    }

    private static func store(_ bytes: [UInt8], name: String, original: [UInt8], into staging: String)
        throws(EngineError) -> Written
    {
        let out = try OutputFile(creating: staging + "/" + name, stage: "commit")
        try out.write(bytes, stage: "commit")
        try out.sync()
        return Written(
            source: .init(file: name, size: original.count, sha256: SHA256.hash(data: original).hex),
            output: .init(file: name, source: name, size: bytes.count, sha256: SHA256.hash(data: bytes).hex,
                          rawSize: 0, frames: []))
    }
}
