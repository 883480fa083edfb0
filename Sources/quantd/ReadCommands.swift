import SystemPackage
import ArgumentParser
import Console
import QuantEngine

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the tensors of a .safetensors file, a .zst output, or an output folder with its manifest summary."
    )

    @Argument(help: "A .safetensors file, a .zst output file, or an output folder.")
    var path: String

    func run() throws {
        let reports: [Inspector.Report]
        do { reports = try Inspector.inspect(path) } catch { throw fail(error) }
        for r in reports {
            print("\(r.path): \(r.kind)")
            if let m = r.manifest { printSummary(m) }
            if !r.metadata.isEmpty {
                print("  metadata: " + r.metadata.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))
            }
            guard !r.tensors.isEmpty else { continue }
            let width = min(60, r.tensors.map(\.name.count).max() ?? 4)
            print("  " + Format.pad("tensor", width) + "  dtype  " + Format.pad("shape", 16) + "  bytes")
            for t in r.tensors {
                print("  " + Format.pad(t.name, width) + "  " + Format.pad(t.dtype, 5) + "  "
                    + Format.pad(Format.shape(t.shape), 16) + "  \(t.bytes)")
            }
            print("  \(r.tensors.count) tensors, \(Format.bytes(r.tensors.reduce(0) { $0 + $1.bytes })) of data")
        }
    }

    private func printSummary(_ m: Manifest) {
        let t = m.totals
        print("  quantd \(m.quantdVersion), schema \(m.schemaVersion), \(m.config.schemeDescription), "
            + "zstd level \(m.config.level)")
        for s in m.sources { print("  source \(s.file): \(Format.bytes(s.size)), sha256 \(s.sha256)") }
        for o in m.outputs { print("  output \(o.file): \(Format.bytes(o.size)), \(o.frames.count) frames") }
        var line = "  \(t.tensors) tensors: \(t.quantized) quantized, \(t.kept) kept; "
            + "\(Format.bytes(t.sourceBytes)) -> \(Format.bytes(t.compressedBytes)) "
            + "(ratio \(Format.fixed(t.compressionRatio, 2)))"
        if let bits = t.bitsPerQuantizedWeight { line += ", \(Format.fixed(bits, 3)) bits per quantized weight" }
        print(line)
        if let worst = t.worstTensor, let db = t.worstSqnrDb {
            print("  worst tensor: \(worst) at \(Format.fixed(db, 1)) dB SQNR")
        }
        print("  started \(m.startedAt), took \(Format.fixed(m.timings.totalSeconds, 2)) s")
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check an output folder against its manifest: sha256s, every frame and its checksum, the safetensors inside.",
        discussion: "Exit 0 only if every check holds; 65 when something does not, 66 when the folder is missing."
    )

    @Argument(help: "An output folder written by `quantd quantize` or the daemon.")
    var folder: String

    func run() throws {
        guard FileSystemCheck.isDirectory(folder) else {
            Terminal.error("\(folder): no such folder")
            throw ExitCode(66)
        }
        let report = Verifier.verify(folder)
        for line in report.passed { print("ok    \(line)") }
        for line in report.problems { print("FAIL  \(line)") }
        if !report.ok {
            Terminal.error("\(folder): \(report.problems.count) check(s) failed")
            throw ExitCode(65)
        }
        print("verified \(folder)")
    }
}

struct Dequantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rebuild float32 tensors from an output folder (scale * (q - zero_point)), for evaluation."
    )

    @Argument(help: "An output folder.")
    var folder: String

    @Option(name: [.short, .customLong("output")],
            help: "The .safetensors file to write (a folder when the output holds several shards).")
    var output: String

    @Flag(help: "Replace the output if it exists.")
    var force = false

    func run() throws {
        do {
            for path in try Dequantizer.run(folder: folder, to: output, force: force) { print("wrote \(path)") }
        } catch {
            throw fail(error)
        }
    }
}

enum FileSystemCheck {
    static func isDirectory(_ path: String) -> Bool {
        (try? FilePath(path).stat())?.type == .directory
    }
}

struct Unpack: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verify an output folder, then write the plain model folder that transformers and vLLM load as it is.",
        discussion: """
            Writes MODELDIR with each .zst decompressed under its original name (the quantized safetensors, in \
            compressed-tensors layout), the index, config.json (with quantization_config) and every carried file \
            (tokenizer, modules.json, subfolders). Staged beside MODELDIR and renamed into place when complete; \
            nothing is written when a check fails. Exit codes: 0 ok, 65 the folder does not verify, 66 missing, \
            73 MODELDIR exists (without --force) or cannot be created, 74 I/O error.
            """
    )

    @Argument(help: "An output folder written by `quantd quantize` or the daemon.")
    var folder: String

    @Option(name: [.short, .customLong("output")], help: "The model folder to create.")
    var output: String

    @Flag(help: "Replace MODELDIR if it exists.")
    var force = false

    func run() throws {
        guard FileSystemCheck.isDirectory(folder) else {
            Terminal.error("\(folder): no such folder")
            throw ExitCode(66)
        }
        do {
            let files = try Unpacker.run(folder: folder, to: output, force: force)
            print("unpacked \(folder) -> \(output): \(files.count) files")
        } catch {
            throw fail(error)
        }
    }
}
