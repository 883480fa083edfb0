import Crypto
import SafeTensors

/// `quantd verify`: an output folder is what its manifest says, byte for byte and frame by frame, and the
/// safetensors inside each `.zst` is valid and holds exactly the tensors the manifest lists.
public enum Verifier {
    public struct Report: Sendable {
        /// What was checked and held, one line each.
        public var passed: [String] = []
        /// What failed, one line each, naming the file.
        public var problems: [String] = []
        public var ok: Bool { problems.isEmpty }
    }

    public static func verify(_ folder: String) -> Report {
        var report = Report()
        let manifest: Manifest
        do {
            manifest = try Manifest.read(folder: folder)
        } catch {
            report.problems.append("\(error)")
            return report
        }
        report.passed.append("manifest.json: schema \(manifest.schemaVersion), quantd \(manifest.quantdVersion), "
            + "\(manifest.tensors.count) tensors, \(manifest.outputs.count) files")

        let listed = Set(manifest.outputs.map(\.file) + ["manifest.json"])
        func walk(_ relative: String) {
            guard let names = try? Files.list(relative.isEmpty ? folder : folder + "/" + relative, stage: "verify")
            else { return }
            for name in names {
                let path = relative.isEmpty ? name : relative + "/" + name
                switch Files.kind(folder + "/" + path) {
                case .directory: walk(path)
                case .file where listed.contains(path): continue
                default: report.problems.append("\(folder)/\(path): not listed in the manifest")
                }
            }
        }
        walk("")
        for output in manifest.outputs {
            // A manifest is input too: a name that leaves the folder is refused before any file is opened by it.
            for name in [output.file] + (output.source.map { [$0] } ?? []) where !CarriedFiles.staysInside(name) {
                report.problems.append("\(folder)/manifest.json: names '\(name)', a path outside the folder")
            }
            guard CarriedFiles.staysInside(output.file) else { continue }
            let path = folder + "/" + output.file
            do {
                if output.frames.isEmpty {
                    try checkPlain(path, output, &report)
                } else {
                    try checkStream(path, output, manifest: manifest, &report)
                }
            } catch {
                report.problems.append("\(path): \(error)")
            }
        }
        return report
    }

    private static func checkPlain(_ path: String, _ output: Manifest.OutputFile, _ report: inout Report) throws {
        let (size, sha) = try CarriedFiles.hash(path, stage: "verify")
        guard size == output.size, sha == output.sha256 else {
            report.problems.append("\(path): size \(size) sha256 \(sha), manifest says size \(output.size) "
                + "sha256 \(output.sha256)")
            return
        }
        report.passed.append("\(output.file): size and sha256 match")
    }

    private static func checkStream(_ path: String, _ output: Manifest.OutputFile, manifest: Manifest,
                                    _ report: inout Report) throws {
        let expected = manifest.tensors.filter { $0.file == output.source }
        var frameIndex = 0
        var frameProblems: [String] = []
        var scaleProblems: [String] = []
        var scaleNames = Set<String>()
        var shapes: [String: [Int]] = [:]
        for r in expected where r.decision == "quantized" {
            scaleNames.insert(r.name + "_scale")
            if r.scheme?.format == .packQuantized { shapes[r.name + "_shape"] = r.shape }
        }
        let widths: [DType: Int] = [.F32: 4, .F16: 2, .BF16: 2]
        var events = StreamReader.Events()
        events.frame = { end, raw in
            defer { frameIndex += 1 }
            guard frameIndex < output.frames.count else {
                frameProblems.append("frame \(frameIndex) is not in the manifest's frame index")
                return
            }
            let f = output.frames[frameIndex]
            if f.offset + f.compressedSize != end || f.rawSize != raw {
                frameProblems.append("frame \(frameIndex) (\(f.tensor)) ends at \(end) with \(raw) bytes, the index says "
                    + "\(f.offset + f.compressedSize) with \(f.rawSize)")
            }
        }
        events.data = { tensor, offset, bytes in
            if let shape = shapes[tensor.name] {
                // Frames hold whole small tensors; a shape that arrived in pieces is compared piece by piece.
                let held = (0..<(bytes.count / 8)).map { Int(Int64(littleEndian: bytes.loadUnaligned(
                    fromByteOffset: 8 * $0, as: Int64.self))) }
                if Array(shape.dropFirst(offset / 8).prefix(held.count)) != held {
                    scaleProblems.append("\(tensor.name) holds \(held), the manifest says shape \(shape)")
                }
                return
            }
            guard scaleNames.contains(tensor.name), let width = widths[tensor.dtype] else { return }
            // Elements never straddle pieces: frames hold whole tensors' scales, but check element by element on
            // unaligned loads anyway.
            for i in 0..<(bytes.count / width) {
                let v = Dequantizer.scale(bytes, i, tensor.dtype)
                if !(v.isFinite && v > 0) {
                    scaleProblems.append("\(tensor.name) holds a scale that is not finite and positive (\(v))")
                    return
                }
            }
        }
        let summary = try StreamReader.read(path, rawSize: output.rawSize, events: events)
        var problems = frameProblems + scaleProblems
        if frameIndex != output.frames.count {
            problems.append("\(frameIndex) frames decoded, the manifest lists \(output.frames.count)")
        }
        if summary.compressedSize != output.size { problems.append("size \(summary.compressedSize), manifest says \(output.size)") }
        if summary.sha256 != output.sha256 { problems.append("sha256 \(summary.sha256), manifest says \(output.sha256)") }
        if summary.rawSize != output.rawSize {
            problems.append("decompresses to \(summary.rawSize) bytes, manifest says \(output.rawSize)")
        }
        if let header = summary.header { problems += agreement(header, expected) }
        for p in problems { report.problems.append("\(path): \(p)") }
        if problems.isEmpty {
            report.passed.append("\(output.file): sha256 matches, \(frameIndex) frames decode with their checksums, "
                + "safetensors inside valid with \(summary.header?.tensors.count ?? 0) tensors as the manifest says")
        }
    }

    /// The tensors inside match the manifest's records: names, dtypes and shapes, companions included.
    static func agreement(_ header: Header, _ records: [Manifest.TensorRecord]) -> [String] {
        var problems: [String] = []
        var inside = Dictionary(header.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func expect(_ name: String, _ dtype: String, _ shape: [Int]?) {
            guard let t = inside.removeValue(forKey: name) else {
                problems.append("tensor '\(name)' is missing")
                return
            }
            if t.dtype.rawValue != dtype { problems.append("tensor '\(name)' is \(t.dtype.rawValue), expected \(dtype)") }
            if let shape, t.shape != shape { problems.append("tensor '\(name)' has shape \(t.shape), expected \(shape)") }
        }
        for r in records {
            guard r.decision == "quantized", let s = r.scheme else {
                expect(r.name, r.storedDtype, r.shape)
                continue
            }
            for t in QuantLayout(shape: r.shape, scheme: s).stored(r.name, shape: r.shape) {
                expect(t.name, t.dtype.rawValue, t.shape)
            }
        }
        for name in inside.keys.sorted() { problems.append("tensor '\(name)' is not in the manifest") }
        return problems
    }
}

extension Manifest {
    /// Reads and decodes `manifest.json` of an output folder.
    /// A manifest grows with the tensors and frames it lists (a few hundred bytes each): 1 GiB covers the
    /// largest header the reader accepts (`HeaderLimits.maxTensors`).
    static let readLimit = 1 << 30

    public static func read(folder: String) throws(EngineError) -> Manifest {
        let path = folder + "/manifest.json"
        let bytes = try Files.readWholeFile(path, limit: readLimit, stage: "verify")
        do { return try Manifest.decode(bytes) } catch {
            throw EngineError(.badInput, file: path, reason: "not a quantd manifest: \(error)", stage: "verify")
        }
    }
}
