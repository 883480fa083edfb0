import QuantSystem
import QuantEngine
import SafeTensors

/// What `quantd status` prints: the queue and the last jobs with their figures, read from the
/// spool alone (committed manifests in out/, records in failed/), so it works with or
/// without a running daemon.
public struct SpoolStatus: Sendable {
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var kind: String
        public var bytes: Int
    }

    public struct Job: Sendable, Equatable {
        public var time: String
        /// "committed" or "failed".
        public var outcome: String
        public var name: String
        public var detail: String
    }

    public var spool: String
    public var waiting: [Entry] = []
    public var active: [Entry] = []
    public var lastJobs: [Job] = []

    /// Reads the spool at `root`; `last` bounds the number of finished jobs listed.
    public static func read(spool root: String, last: Int) throws(SpoolError) -> SpoolStatus {
        let spool = Spool(root: root, instance: "status")
        var status = SpoolStatus(spool: spool.root)
        do {
            status.waiting = try entries(spool.incoming).filter { !Spool.isIgnored($0.name) }
            status.active = try entries(spool.active).filter { !$0.name.hasPrefix(".") }
            var jobs: [Job] = []
            for entry in try entries(spool.out) where entry.kind == "directory" && !entry.name.hasPrefix(".") {
                guard let bytes = try? FS.readFile(spool.out + "/" + entry.name + "/manifest.json"),
                      let manifest = try? Manifest.decode(bytes) else { continue }
                jobs.append(Job(time: manifest.finishedAt, outcome: "committed", name: entry.name,
                                detail: describe(manifest)))
            }
            for entry in try entries(spool.failed) where entry.name.hasSuffix(".error.json") {
                guard let bytes = try? FS.readFile(spool.failed + "/" + entry.name),
                      let record = try? FailureRecord.decode(bytes) else { continue }
                jobs.append(Job(time: record.time, outcome: "failed", name: record.name,
                                detail: "\(record.kind) at \(record.stage): \(record.reason)"))
            }
            status.lastJobs = Array(jobs.sorted { $0.time > $1.time }.prefix(last))
        } catch {
            throw SpoolError("cannot read the spool \(root): \(error)")
        }
        return status
    }

    private static func entries(_ folder: String) throws(SystemError) -> [Entry] {
        try FS.listNames(folder).map { raw in
            let name = String(decoding: raw, as: UTF8.self)
            let path = folder + "/" + name
            let stat = try? (FS.lstatEntry(path).kind == .directory ? FS.treeSignature(path) : FS.lstatEntry(path))
            return Entry(name: name, kind: stat?.kind.rawValue ?? "gone", bytes: stat?.size ?? 0)
        }.sorted { $0.name < $1.name }
    }

    static func describe(_ manifest: Manifest) -> String {
        let totals = manifest.totals
        var text = "\(megabytes(totals.sourceBytes)) -> \(megabytes(totals.compressedBytes)), "
            + "ratio \(fixed(totals.compressionRatio, 2)), \(fixed(manifest.timings.totalSeconds, 1)) s, "
            + "\(totals.quantized)/\(totals.tensors) tensors quantized"
        if let worst = totals.worstTensor {
            text += ", worst \(worst)" + (totals.worstSqnrDb.map { " (\(fixed($0, 1)) dB)" } ?? "")
        }
        return text
    }

    static func megabytes(_ bytes: Int) -> String { fixed(Double(bytes) / 1e6, 1) + " MB" }

    static func fixed(_ value: Double, _ digits: Int) -> String {
        guard value.isFinite else { return "-" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = Int((abs(value) * scale).rounded())
        let whole = String(scaled / Int(scale))
        let fraction = String(scaled % Int(scale))
        let padded = String(repeating: "0", count: digits - fraction.count) + fraction
        return (value < 0 ? "-" : "") + whole + (digits > 0 ? "." + padded : "")
    }

    /// The report as text for a terminal.
    public func render() -> String {
        var lines = ["spool \(spool)", "queue: \(waiting.count) waiting in incoming/, \(active.count) in active/"]
        for entry in waiting { lines.append("  waiting  \(entry.name)  \(Self.megabytes(entry.bytes))") }
        for entry in active { lines.append("  active   \(entry.name)  \(Self.megabytes(entry.bytes))") }
        lines.append("last jobs: \(lastJobs.isEmpty ? "none" : "")")
        for job in lastJobs {
            lines.append("  \(job.time)  \(job.outcome.padding(9))  \(job.name)  \(job.detail)")
        }
        return lines.map { MessageText.sanitized($0, limit: nil) }.joined(separator: "\n") + "\n"
    }
}

extension String {
    func padding(_ width: Int) -> String { self + String(repeating: " ", count: max(0, width - count)) }
}
