import SafeTensors

/// `quantd inspect`: what is in a `.safetensors` file, a `.zst` output, or an output folder.
public enum Inspector {
    public struct TensorRow: Sendable, Hashable {
        public var name: String
        public var dtype: String
        public var shape: [Int]
        public var bytes: Int
    }

    public struct Report: Sendable {
        public var path: String
        public var kind: String
        public var metadata: [(key: String, value: String)] = []
        public var tensors: [TensorRow] = []
        public var manifest: Manifest?
    }

    public static func inspect(_ path: String, limits: HeaderLimits = HeaderLimits()) throws(EngineError) -> [Report] {
        switch Files.kind(path) {
        case .missing:
            throw EngineError(.missingInput, file: path, reason: "no such file or folder", stage: "inspect")
        case .other:
            throw EngineError(.badInput, file: path, reason: "not a regular file or folder", stage: "inspect")
        case .directory:
            if Files.kind(path + "/manifest.json") == .file {
                let manifest = try Manifest.read(folder: path)
                var reports = [Report(path: path, kind: "quantd output folder", manifest: manifest)]
                for o in manifest.outputs where !o.frames.isEmpty {
                    reports.append(try zst(path + "/" + o.file, limits: limits))
                }
                return reports
            }
            var reports: [Report] = []
            for name in try Files.list(path, stage: "inspect") where name.hasSuffix(".safetensors") {
                reports.append(try safetensors(path + "/" + name, limits: limits))
            }
            guard !reports.isEmpty else {
                throw EngineError(.badInput, file: path, reason: "holds neither a manifest.json nor .safetensors files",
                                  stage: "inspect")
            }
            return reports
        case .file:
            return [path.hasSuffix(".zst") ? try zst(path, limits: limits) : try safetensors(path, limits: limits)]
        }
    }

    private static func safetensors(_ path: String, limits: HeaderLimits) throws(EngineError) -> Report {
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(path: path, limits: limits) } catch { throw EngineError(error, stage: "inspect") }
        return report(path, kind: "safetensors, \(file.fileSize) bytes", file.header)
    }

    /// Decodes only the first frames of a `.zst`, up to the end of the header inside.
    private static func zst(_ path: String, limits: HeaderLimits) throws(EngineError) -> Report {
        nonisolated(unsafe) var found: Header?
        var events = StreamReader.Events()
        events.header = { h in
            found = h
            throw StreamReader.Stop()
        }
        do { _ = try StreamReader.read(path, rawSize: nil, limits: limits, events: events) } catch let e as EngineError {
            throw e
        } catch {
            throw EngineError(.badInput, file: path, reason: "\(error)", stage: "inspect")
        }
        guard let found else {
            throw EngineError(.badInput, file: path, reason: "holds no safetensors header", stage: "inspect")
        }
        return report(path, kind: "zstd-compressed safetensors", found)
    }

    private static func report(_ path: String, kind: String, _ h: Header) -> Report {
        Report(path: path, kind: kind, metadata: h.metadata, tensors: h.tensors.map {
            TensorRow(name: $0.name, dtype: $0.dtype.rawValue, shape: $0.shape, bytes: $0.byteCount)
        })
    }
}
