import QuantSystem
import Zstd

/// `quantd unpack`: an output folder back into the plain model folder its consumers load as it is
/// (`from_pretrained(DIR)`, vLLM): each `.zst` decompressed under its source's name (the quantized safetensors,
/// compressed-tensors layout inside), and every other file (index, `config.json` with its `quantization_config`,
/// tokenizer and carried files) copied. The folder is verified first (`Verifier`), and every file's size and
/// sha256 are checked again as it is read, so a file changed in between is refused too. Staged beside the
/// destination and renamed into place when complete, like `quantize`; on any failure nothing is left.
public enum Unpacker {
    /// Returns the files written, relative to `destination`.
    @discardableResult
    public static func run(folder: String, to destination: String, force: Bool = false) throws(EngineError)
        -> [String]
    {
        let final = try StagedFolder.destination(destination, force: force)
        let report = Verifier.verify(folder)
        guard report.ok else {
            let more = report.problems.count > 1 ? " (and \(report.problems.count - 1) more problems)" : ""
            throw EngineError(.badInput, file: folder, reason: "does not verify: \(report.problems[0])\(more)",
                              stage: "unpack")
        }
        let manifest = try Manifest.read(folder: folder)
        let staged = try StagedFolder(final: final, tag: nil, force: force)
        do throws(EngineError) {
            var written: [String] = []
            var folders = CarriedFiles.Subfolders(root: staged.path)
            for output in manifest.outputs {
                let name = output.frames.isEmpty ? output.file : output.source ?? String(output.file.dropLast(4))
                try folders.parents(of: name, stage: "unpack")
                let from = folder + "/" + output.file, to = staged.path + "/" + name
                if output.frames.isEmpty {
                    try CarriedFiles.copy(from, to: to, expected: (output.size, output.sha256), stage: "unpack")
                } else {
                    try decompress(from, output: output, to: to)
                }
                written.append(name)
            }
            try folders.sync(stage: "unpack")
            try staged.commit()
            return written
        } catch {
            staged.discard()
            throw error
        }
    }

    /// Decompresses a `.zst` output into `to`, checking the compressed file's size and sha256 and the
    /// decompressed size against the manifest.
    private static func decompress(_ from: String, output: Manifest.OutputFile, to: String) throws(EngineError) {
        let out = try OutputFile.create(to, stage: "unpack", direct: true)
        var decoder: ZstdStreamDecoder
        do { decoder = try ZstdStreamDecoder() } catch {
            throw EngineError(.io, file: from, reason: "zstd: \(error)", stage: "unpack")
        }
        var failure: EngineError?
        let read = try CarriedFiles.stream(from, stage: "unpack") { piece throws(EngineError) in
            do {
                try decoder.feed(piece, requireChecksum: true, output: { bytes in
                    do throws(EngineError) { try out.write(bytes, stage: "unpack") } catch {
                        failure = error
                        throw error
                    }
                }, frameEnded: { _, _ in })
            } catch {
                throw failure ?? EngineError(.badInput, file: from, reason: "zstd: \(error)", stage: "unpack")
            }
        }
        do { try decoder.finish() } catch {
            throw EngineError(.badInput, file: from, reason: "zstd: \(error)", stage: "unpack")
        }
        guard read.size == output.size, read.sha256 == output.sha256, out.written == output.rawSize else {
            throw EngineError(.badInput, file: from, reason: "changed since it was verified: \(read.size) bytes with "
                + "sha256 \(read.sha256) decompressing to \(out.written), the manifest says \(output.size) with "
                + "\(output.sha256) decompressing to \(output.rawSize)", stage: "unpack")
        }
        try out.sync(stage: "unpack")
    }
}
