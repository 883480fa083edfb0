import Logging
import QuantEngine
import QuantSystem
import SystemPackage

/// The figures of a job's log lines (`claimed`, `committed`, `requeued`, `failed`, `resumed`): what each says, in
/// one place, so that the loop only decides when to write them.
enum JobEvents {
    static func claimed(_ name: String, claim: String, output: String, bytes: Int) -> Logger.Metadata {
        ["job": .string(name), "claim": .string(claim), "output": .string(output),
         "bytes": .stringConvertible(bytes)]
    }

    /// `committed`, less `input` (where the input went, known after the move).
    static func committed(_ name: String, output: String, manifest: Manifest) -> Logger.Metadata {
        let totals = manifest.totals
        var figures: Logger.Metadata = [
            "job": .string(name),
            "output": .string(output),
            "source_bytes": .stringConvertible(totals.sourceBytes),
            "compressed_bytes": .stringConvertible(totals.compressedBytes),
            "ratio": .stringConvertible(totals.compressionRatio),
            "seconds": .stringConvertible(manifest.timings.totalSeconds),
            "tensors": .stringConvertible(totals.tensors),
            "quantized": .stringConvertible(totals.quantized),
        ]
        if let uncached = manifest.timings.uncachedReadBytes {
            figures["read_uncached_bytes"] = .stringConvertible(uncached)
        }
        if let worst = totals.worstTensor { figures["worst_tensor"] = .string(worst) }
        if let sqnr = totals.worstSqnrDb { figures["worst_sqnr_db"] = .stringConvertible(sqnr) }
        return figures
    }

    /// `requeued`: why, the errno in words when there is one, and the backoff of a retry.
    static func requeued(_ name: String, reason: String, error: EngineError, retry: (attempt: Int, delay: Double)?)
        -> Logger.Metadata
    {
        var figures: Logger.Metadata = ["job": .string(name), "reason": .string(reason), "stage": .string(error.stage)]
        if let errno = error.errno {
            figures["errno"] = .stringConvertible(Int(errno))
            figures["error"] = .string(Errno(rawValue: errno).description)
        }
        if let retry {
            figures["retry_in_seconds"] = .stringConvertible(retry.delay)
            figures["attempt"] = .stringConvertible(retry.attempt)
        }
        return figures
    }

    /// `failed`, less where the entry and its record went.
    static func failed(_ name: String, record: FailureRecord) -> Logger.Metadata {
        var figures: Logger.Metadata = [
            "job": .string(name), "reason": .string(record.reason), "kind": .string(record.kind),
            "stage": .string(record.stage),
        ]
        if let tensor = record.tensor { figures["tensor"] = .string(tensor) }
        return figures
    }

    /// `resumed`: what a staging folder left by an interrupted attempt held and what of it was kept.
    static func resumed(_ name: String, output: String, report: ResumeReport) -> Logger.Metadata {
        var figures: Logger.Metadata = [
            "job": .string(name), "output": .string(output),
            "kept": .stringConvertible(report.kept.count),
            "files": .stringConvertible(report.kept.count + report.redo.count),
            "kept_files": .string(report.kept.joined(separator: ",")),
            "kept_source_bytes": .stringConvertible(report.keptSourceBytes),
            "redo_files": .string(report.redo.joined(separator: ",")),
        ]
        if !report.resumedWithin.isEmpty { figures["resumed_within"] = .string(report.resumedWithin.joined(separator: "; ")) }
        if !report.distrusted.isEmpty { figures["not_kept"] = .string(report.distrusted.joined(separator: "; ")) }
        return figures
    }
}
