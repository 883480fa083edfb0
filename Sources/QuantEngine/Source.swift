import FoundationEssentials

import SafeTensors

/// The input of a job: one `.safetensors` file, or a folder holding shards with an optional
/// `*.safetensors.index.json` and `config.json`. Everything is opened and validated before anything is written.
struct Source {
    let path: String
    let files: [SafeTensorsFile]
    let index: (name: String, bytes: [UInt8], parsed: ShardIndex)?
    let config: (bytes: [UInt8], value: JSONValue)?
    /// A folder of shards, rather than one file.
    let isFolder: Bool
    /// Every other file of a folder input, relative to it (see `CarriedFiles`).
    var carried: [String] = []

    static let sideFileLimit = 64 << 20


    /// A folder with a transformers `config.json` (it names `model_type` or `architectures`): its consumers load
    /// linear layers quantized and everything else as it was.
    var isModelFolder: Bool {
        guard case .object(let o)? = config?.value else { return false }
        return o["model_type"] != nil || o["architectures"] != nil
    }

    static func open(_ path: String, limits: HeaderLimits) throws(EngineError) -> Source {
        switch Files.kind(path) {
        case .missing:
            throw EngineError(.missingInput, file: path, reason: "no such file or folder", stage: "open")
        case .other:
            throw EngineError(.badInput, file: path, reason: "not a regular file or folder (symlinks are not followed)",
                              stage: "open")
        case .file:
            return Source(path: path, files: [try openFile(path, limits: limits)], index: nil, config: nil,
                          isFolder: false)
        case .directory:
            return try openFolder(path, limits: limits)
        }
    }

    private static func openFile(_ path: String, limits: HeaderLimits) throws(EngineError) -> SafeTensorsFile {
        do { return try SafeTensorsFile(path: path, limits: limits) } catch { throw EngineError(error, stage: "header") }
    }

    private static func openFolder(_ dir: String, limits: HeaderLimits) throws(EngineError) -> Source {
        let names = try Files.list(dir, stage: "open")
        var shards: [String] = []
        var indexName: String?
        var hasConfig = false
        var others: [String] = []
        for name in names where !name.hasPrefix(".") {
            let full = dir + "/" + name
            if name.hasSuffix(".safetensors.index.json") {
                guard indexName == nil else {
                    throw EngineError(.badInput, file: full, reason: "a second index file (also '\(indexName!)')",
                                      stage: "open")
                }
                indexName = name
            } else if name.hasSuffix(".safetensors") {
                guard Files.kind(full) == .file else {
                    throw EngineError(.badInput, file: full, reason: "shard is not a regular file", stage: "open")
                }
                shards.append(name)
            } else if name == "config.json" {
                hasConfig = true
            } else {
                others.append(name)
            }
        }
        guard !shards.isEmpty else {
            throw EngineError(.badInput, file: dir, reason: "folder holds no .safetensors file", stage: "open")
        }

        var index: (name: String, bytes: [UInt8], parsed: ShardIndex)?
        if let indexName {
            let full = dir + "/" + indexName
            let bytes = try Files.readWholeFile(full, limit: sideFileLimit, stage: "open")
            let parsed: ShardIndex
            do throws(SafeTensorsError) {
                parsed = try bytes.withUnsafeBytes { b in
                    Result { () throws(SafeTensorsError) in try ShardIndex.parse(b, file: full) }
                }.get()
            } catch { throw EngineError(error, stage: "header") }
            for shard in parsed.shardFiles where !shards.contains(shard) {
                throw EngineError(.badInput, file: full, reason: "names shard '\(shard)', which is not in the folder",
                                  stage: "open")
            }
            index = (indexName, bytes, parsed)
        }

        var config: (bytes: [UInt8], value: JSONValue)?
        if hasConfig {
            let full = dir + "/config.json"
            let bytes = try Files.readWholeFile(full, limit: sideFileLimit, stage: "open")
            guard let value = try? JSONValue.decode(bytes), case .object = value else {
                throw EngineError(.badInput, file: full, reason: "not a JSON object", stage: "open")
            }
            config = (bytes, value)
        }

        var files: [SafeTensorsFile] = []
        for shard in shards { files.append(try openFile(dir + "/" + shard, limits: limits)) }

        if let index {
            let byName = Dictionary(uniqueKeysWithValues: files.map {
                (Path.base(of: $0.path), Set($0.header.tensors.map(\.name)))
            })
            for (tensor, shard) in index.parsed.weightMap where !(byName[shard]?.contains(tensor) ?? false) {
                throw EngineError(.badInput, file: dir + "/" + index.name,
                                  reason: "maps tensor '\(tensor)' to '\(shard)', which does not hold it", stage: "open")
            }
        }
        var seen: [String: String] = [:]
        for f in files {
            for t in f.header.tensors {
                if let other = seen[t.name] {
                    throw EngineError(.badInput, file: f.path, tensor: t.name,
                                      reason: "also stored in shard '\(other)'", stage: "open")
                }
                seen[t.name] = Path.base(of: f.path)
            }
        }
        return Source(path: dir, files: files, index: index, config: config, isFolder: true,
                      carried: try CarriedFiles.list(dir, names: others))
    }
}

extension JSONValue {
    static func decode(_ bytes: [UInt8]) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    }
}
