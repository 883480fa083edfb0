import ArgumentParser
import Console
import QuantEngine

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The quality of an output folder: its tensors worst first, and totals.",
        discussion: """
            Lists each quantized tensor (name, shape, scheme, calibrator, SQNR, relative RMS error, clipped share), \
            lowest SQNR first, then the tensors the sensitivity guard or min_elements left alone, then totals: \
            bits per quantized weight with scales and zero points, median and worst SQNR, compression ratio.
            """
    )

    @Argument(help: "An output folder written by `quantd quantize` or the daemon.")
    var folder: String

    @Flag(help: "Print only one Markdown table row: calibrator, scheme, median and min SQNR, bits per weight, seconds.")
    var row = false

    func run() throws {
        let m: Manifest
        do { m = try Manifest.read(folder: folder) } catch { throw fail(error) }
        let t = m.totals
        if row {
            print("| \(m.config.calibration.rawValue) | \(granularity(m.config)) | \(total(t.medianSqnrDb)) "
                + "| \(total(t.worstSqnrDb)) | \(t.bitsPerQuantizedWeight.map { Format.fixed($0, 3) } ?? "-") "
                + "| \(Format.fixed(m.timings.totalSeconds, 2)) |")
            return
        }
        let quantized = Self.worstFirst(m.tensors)
        print("\(folder): \(m.config.schemeDescription), \(t.quantized) of \(t.tensors) tensors quantized")
        let width = min(60, max(6, quantized.map(\.name.count).max() ?? 6))
        print(Format.pad("tensor", width) + "  " + Format.pad("shape", 12) + "  " + Format.pad("scheme", 22) + "  "
            + Format.pad("calibrator", 10) + "  SQNR dB  rel. error  clipped")
        for r in quantized {
            let s = r.scheme!
            let scheme = "\(s.symmetric ? "sym" : "asym") "
                + (s.granularity == .group ? "group-\(s.groupSize ?? 0)" : s.granularity.rawValue) + " \(s.scaleDtype)"
            print(Format.pad(r.name, width) + "  " + Format.pad(Format.shape(r.shape), 12) + "  "
                + Format.pad(scheme, 22) + "  " + Format.pad(s.calibrator.rawValue, 10) + "  "
                + Format.pad(db(r.error?.sqnrDb), 7) + "  " + Format.pad(sci(r.error?.relativeRmse), 10) + "  "
                + percent(r.error?.clippedFraction))
        }
        let guarded = m.tensors.filter {
            $0.decision == "kept" && ($0.sensitivity != nil || $0.reason.contains("min_elements"))
        }
        for r in guarded { print("kept " + r.name + ": " + r.reason) }
        for r in quantized where r.sensitivity != nil { print("guard " + r.name + ": " + r.reason) }
        var totals = "totals: "
        if let bits = t.bitsPerQuantizedWeight { totals += "\(Format.fixed(bits, 3)) bits per quantized weight, " }
        totals += "median SQNR \(total(t.medianSqnrDb)) dB, worst \(total(t.worstSqnrDb)) dB"
        if let worst = t.worstTensor { totals += " (\(worst))" }
        totals += "; \(Format.bytes(t.sourceBytes)) -> \(Format.bytes(t.compressedBytes)), compression ratio "
            + Format.fixed(t.compressionRatio, 2)
        print(totals)
    }

    /// Quantized records, lowest SQNR first (exact ones, without SQNR, last), ties by name.
    static func worstFirst(_ records: [Manifest.TensorRecord]) -> [Manifest.TensorRecord] {
        records.filter { $0.decision == "quantized" }.sorted {
            let a = $0.error?.sqnrDb ?? .infinity, b = $1.error?.sqnrDb ?? .infinity
            return a != b ? a < b : $0.name < $1.name
        }
    }

    private func granularity(_ o: QuantizeOptions) -> String {
        (o.symmetric ? "" : "asym ") + (o.granularity == .group ? "group-\(o.groupSize)" : o.granularity.rawValue)
            + (o.scaleDtype == .f32 ? "" : " \(o.scaleDtype.rawValue) scales")
    }

    /// A tensor's SQNR: nil means its error is exactly zero.
    private func db(_ v: Double?) -> String { v.map { Format.fixed($0, 1) } ?? "exact" }

    /// A total's SQNR: nil means no figure (nothing inexact quantized, or a manifest from before the field).
    private func total(_ v: Double?) -> String { v.map { Format.fixed($0, 1) } ?? "-" }

    private func sci(_ v: Double?) -> String {
        guard let v, v > 0, v.isFinite else { return "0" }
        var exponent = 0, m = v
        while m < 1 { m *= 10; exponent -= 1 }
        while m >= 10 { m /= 10; exponent += 1 }
        return Format.fixed(m, 2) + "e\(exponent)"
    }

    private func percent(_ v: Double?) -> String { v.map { Format.fixed($0 * 100, 4) + "%" } ?? "-" }
}
