import QuantSystem
import SystemPackage
import ArgumentParser
import Console
import QuantEngine

extension QuantizeOptions.Scheme: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
}
extension QuantizeOptions.Granularity: ExpressibleByArgument {}
extension QuantizeOptions.Calibration: ExpressibleByArgument {}
extension QuantizeOptions.ScaleDtype: ExpressibleByArgument {}
extension QuantizeOptions.Fallback: ExpressibleByArgument {}

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Quantize a checkpoint (a .safetensors file or a folder of shards) into an output folder.",
        discussion: """
            Writes OUTDIR/<input name>.zst (a zstd stream of independent frames: `zstd -d` gives a safetensors file) \
            and OUTDIR/manifest.json. The folder is staged beside OUTDIR and renamed into place when complete.
            Exit codes: 0 ok, 64 usage, 65 bad input data, 66 missing input, 73 cannot create output, 74 I/O error.
            """
    )

    @Argument(help: "A .safetensors file, or a folder of .safetensors shards.")
    var input: String

    @Option(name: [.short, .customLong("output")], help: "The output folder to create.")
    var output: String

    @Option(help: ArgumentHelp("W8A16 (int8 weights in groups of 128, weight-only, pack-quantized) or W8A8 (int8 "
                               + "weights per channel, int8 dynamic per-token activations, int-quantized: what "
                               + "int8 matrix kernels run).", valueName: "scheme"))
    var scheme: QuantizeOptions.Scheme = .w8a16

    @Option(help: "Scale granularity: tensor, channel (dim 0) or group (default: the scheme's).")
    var granularity: QuantizeOptions.Granularity?

    @Option(help: "Group length along the flattened last dimension (with --granularity group; default 128).")
    var groupSize: Int?

    @Flag(help: "Asymmetric quantization (int8 zero point, range [-128, 127]); default symmetric [-127, 127].")
    var asymmetric = false

    @Option(help: "Range setting: absmax, percentile, mse, entropy or auto (per group, the lowest error).")
    var calibration: QuantizeOptions.Calibration = QuantizeOptions().calibration

    @Option(help: "P for --calibration percentile (and auto's percentile candidate), in [50, 100].")
    var percentile: Double = QuantizeOptions().percentile

    @Option(help: "Stored dtype of the scales: f32, f16 or bf16 (each scale is rounded up to it).")
    var scaleDtype: QuantizeOptions.ScaleDtype = QuantizeOptions().scaleDtype

    @Option(help: ArgumentHelp("Sensitivity guard: a tensor whose SQNR would fall below this gets --fallback "
                                   + "(costs one more read of the input).", valueName: "dB"))
    var minSqnr: Double?

    @Option(help: "What the guard does: group (halve the group length down to 16, else keep) or keep (source dtype).")
    var fallback: QuantizeOptions.Fallback = QuantizeOptions().fallback

    @Option(help: "Tensors with fewer elements than this stay in their source dtype.")
    var minElements: Int = QuantizeOptions().minElements

    @Option(help: "zstd compression level.")
    var level: Int = QuantizeOptions().level

    @Option(help: "Worker threads (0: all cores).")
    var threads: Int = 0

    @Option(help: ArgumentHelp("Quantize float tensors whose name matches this regular expression (repeatable).",
                               valueName: "regex"))
    var include: [String] = []

    @Option(help: ArgumentHelp("Leave tensors whose name matches this regular expression alone (repeatable).",
                               valueName: "regex"))
    var exclude: [String] = []

    @Flag(help: "Leave tensors holding NaN or Inf unquantized instead of refusing the checkpoint.")
    var keepNonfinite = false

    @Flag(help: "Replace OUTDIR if it exists.")
    var force = false

    @Flag(help: ArgumentHelp("Start afresh even where an interrupted run of OUTDIR left finished files behind (by "
                             + "default they are checked against their journal and kept)."))
    var noResume = false

    func run() throws {
        // The ranges are checked once, by the engine (`QuantizeOptions.validate`), for flags and daemon keys alike.
        var options = QuantizeOptions(scheme: scheme)
        if let granularity { options.granularity = granularity }
        if let groupSize { options.groupSize = groupSize }
        options.symmetric = !asymmetric
        options.calibration = calibration
        options.percentile = percentile
        options.scaleDtype = scaleDtype
        options.minSQNR = minSqnr
        options.fallback = fallback
        options.minElements = minElements
        options.level = level
        options.threads = threads
        options.include = include
        options.exclude = exclude
        options.keepNonFinite = keepNonfinite

        // A path given on the command line is the user's choice: follow its symlinks here (the daemon never does).
        let resolved = FileSystem.resolvingSymlinks(FilePath(input))?.string ?? input
        let name = input.split(separator: "/").last.map(String.init) ?? input
        let manifest: Manifest
        do {
            manifest = try Engine.quantize(
                input: resolved, output: output, options: options, force: force, resume: noResume ? nil : ResumePolicy(),
                resumed: { report in
                    Terminal.endStatus()
                    var line = "quantd: resumed \(output) from an interrupted run: kept \(report.kept.count) of "
                        + "\(report.kept.count + report.redo.count) files (\(Format.bytes(report.keptSourceBytes)) of "
                        + "input not read again)"
                    if !report.kept.isEmpty { line += ": " + report.kept.joined(separator: ", ") }
                    FileSystem.printError(line)
                    for why in report.distrusted { FileSystem.printError("quantd: not kept: \(why)") }
                }
            ) { p in
                var line = "quantizing \(name): \(p.tensorsDone)/\(p.tensorsTotal) tensors, "
                    + "\(Format.bytes(p.bytesDone))/\(Format.bytes(p.bytesTotal)), "
                    + "\(Format.fixed(p.bytesPerSecond / 1e6, 0)) MB/s"
                if let eta = p.etaSeconds { line += ", ETA \(Format.fixed(eta, 1)) s" }
                Terminal.status(line)
            }
        } catch {
            Terminal.endStatus()
            throw fail(error)
        }
        Terminal.endStatus()
        let t = manifest.totals
        var line = "quantd: \(name) -> \(output): \(t.tensors) tensors (\(t.quantized) quantized, \(t.kept) kept), "
            + "\(Format.bytes(t.sourceBytes)) -> \(Format.bytes(t.compressedBytes)) "
            + "(ratio \(Format.fixed(t.compressionRatio, 2))) in \(Format.fixed(manifest.timings.totalSeconds, 2)) s"
        if let uncached = manifest.timings.uncachedReadBytes, uncached > 0 {
            line += " (\(Format.bytes(uncached)) read around the page cache)"
        }
        if let worst = t.worstTensor, let db = t.worstSqnrDb {
            line += "; worst tensor \(worst) at \(Format.fixed(db, 1)) dB SQNR"
        }
        if let peak = FileSystem.peakResidentBytes() { line += "; peak RSS \(peak >> 20) MiB" }
        print(line)
    }
}
