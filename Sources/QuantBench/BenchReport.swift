import Console

/// Everything one `quantd-bench` run measured, as written to its JSON file.
struct BenchReport: Codable, Sendable {
    struct Settings: Codable, Sendable {
        var size: String
        var sizes: [String]
        var threads: Int
        var repeats: Int
        var kernelRepeats: Int
        var seed: UInt64
        var dir: String
        /// The scheme timed end to end: `quantd quantize` defaults.
        var scheme: String
    }

    struct CheckpointInfo: Codable, Sendable {
        var label: String
        var path: String
        var bytes: Int
        var tensors: Int
        var weightBytes: Int
        var reused: Bool
        var generateSeconds: Double?
        /// One pread pass over the file from the page cache, one thread, 8 MiB buffer.
        var readPassGBPerSecond: Double
    }

    struct EndToEnd: Codable, Sendable {
        var threads: Int
        /// Pinned to one core with `taskset -c 0` (the engine's writer thread then shares that core).
        var pinned: Bool
        var best: ChildRun
        var gbPerSecond: Double
    }

    struct Baseline: Codable, Sendable {
        var name: String
        var tool: String
        var inputBytes: Int
        var best: ChildRun
    }

    struct Ratio: Codable, Sendable {
        var name: String
        var value: Double
        /// "<= 1.25" or ">= 2.5".
        var target: String
        var met: Bool
    }

    struct SizeRun: Codable, Sendable {
        var label: String
        var bytes: Int
        var threads: Int
        var best: ChildRun
        var gbPerSecond: Double
    }

    var quantdVersion: String
    var startedAt: String
    var machine: MachineInfo
    var settings: Settings
    var checkpoint: CheckpointInfo
    var kernels: [KernelFigure]
    var endToEnd: [EndToEnd]
    /// Whether the outputs of the 1-thread and all-thread runs are byte-identical (nil with one thread).
    var outputsIdentical: Bool?
    var baselines: [Baseline]
    var ratios: [Ratio]
    var sizes: [SizeRun]
    var daemon: DaemonFigures?
    /// The peak RSS that `/bin/true` reports through the measurer: every peak RSS figure is at least this.
    var measurerFloorRSSBytes: Int
    var commands: [[String]]
    var notes: [String]
}

extension BenchReport.Ratio {
    static func atMost(_ name: String, _ value: Double, _ limit: Double) -> Self {
        Self(name: name, value: value, target: "<= " + Format.fixed(limit, 2), met: value <= limit)
    }

    static func atLeast(_ name: String, _ value: Double, _ limit: Double) -> Self {
        Self(name: name, value: value, target: ">= " + Format.fixed(limit, 2), met: value >= limit)
    }
}

/// The plain-text table printed on stdout.
enum BenchTable {
    static func render(_ r: BenchReport) -> String {
        var out: [String] = [machine(r.machine, version: r.quantdVersion)]
        let c = r.checkpoint
        out.append("checkpoint: \(c.path)")
        out.append("  \(Format.bytes(c.bytes)) (\(c.label)), \(c.tensors) tensors, "
            + (c.reused ? "reused" : "generated in \(Format.fixed(c.generateSeconds ?? 0, 2)) s")
            + ", page-cache read pass \(Format.fixed(c.readPassGBPerSecond, 1)) GB/s (1 thread)")

        let threadCounts = Array(Set(r.kernels.map(\.threads))).sorted()
        for (rows, title) in [(KernelBench.rows, "from memory"), (KernelBench.unitRows, "one unit in cache"),
                              (KernelBench.l2Rows, "1 MiB, in L2")] {
            let figures = r.kernels.filter { $0.rows == rows }
            var names: [String] = []
            for k in figures where !names.contains(k.name) { names.append(k.name) }
            out += table(nil, ["kernels, \(rows) x \(KernelBench.cols) (\(title)), best of "
                               + "\(r.settings.kernelRepeats * KernelBench.rows / rows)"]
                + threadCounts.map { "\($0) thread" + ($0 == 1 ? "" : "s") }, widths: [52] + threadCounts.map { _ in 12 },
                names.map { name in
                    ["  " + name] + threadCounts.map { t in
                        figures.first { $0.name == name && $0.threads == t }
                            .map { Format.fixed($0.gbPerSecond, 1) + " GB/s" } ?? "-"
                    }
                })
        }

        out += endToEnd("quantd quantize (\(r.settings.scheme))", r.endToEnd, repeats: r.settings.repeats)
        if let same = r.outputsIdentical {
            out.append("  outputs with 1 and \(r.settings.threads) threads: " + (same ? "byte-identical" : "DIFFERENT"))
        }

        out += table("baselines, best of \(r.settings.repeats)", ["  what", "wall s", "peak RSS MiB", "tool"],
                     widths: [44, 9, 14, 30], r.baselines.map { b in
                         ["  \(b.name) (\(Format.bytes(b.inputBytes)))", Format.fixed(b.best.seconds, 2),
                          Format.fixed(b.best.peakRSSMiB, 0), b.tool]
                     })

        out += table(nil, ["ratios", "value", "target", ""], widths: [44, 9, 10, 6], r.ratios.map { ratio in
            ["  " + ratio.name, Format.fixed(ratio.value, 2), ratio.target, ratio.met ? "ok" : "MISS"]
        })

        if !r.sizes.isEmpty {
            out += table("sizes: quantd quantize, \(r.settings.threads) threads, best of \(r.settings.repeats)",
                         ["  size", "bytes", "wall s", "GB/s", "peak RSS MiB"], widths: [10, 16, 9, 9, 14],
                         r.sizes.map { s in
                             ["  " + s.label, Format.bytes(s.bytes), Format.fixed(s.best.seconds, 2),
                              Format.fixed(s.gbPerSecond, 2), Format.fixed(s.best.peakRSSMiB, 0)]
                         })
        }
        if let d = r.daemon {
            out.append("")
            out.append("daemon: \(d.jobs) checkpoints of \(Format.bytes(d.checkpointBytes)) renamed into incoming/, one at a time")
            out.append("  rename to manifest committed: median \(Format.fixed(d.medianMilliseconds, 0)) ms, "
                + "min \(Format.fixed(d.minMilliseconds, 0)), max \(Format.fixed(d.maxMilliseconds, 0))")
            out.append("  idle: \(Format.fixed(d.idleCPUSeconds, 3)) CPU s in \(Format.fixed(d.idleSeconds, 0)) s")
        }
        out += notes(r.notes)
        return out.joined(separator: "\n")
    }

    /// The first line: the version and the machine.
    static func machine(_ m: MachineInfo, version: String) -> String {
        "quantd bench \(version): \(m.cpuModel), \(m.cores) cores, \(m.kernel), kernels \(m.kernelVariant), "
            + "\(Format.fixed(m.memoryGiB, 1)) GiB RAM"
            + (m.cpuFeatures.isEmpty ? "" : ", " + m.cpuFeatures.joined(separator: " "))
    }

    /// The end-to-end runs of `what`, one row per thread count.
    static func endToEnd(_ what: String, _ runs: [BenchReport.EndToEnd], repeats: Int) -> [String] {
        table("end to end: \(what), hot page cache, best of \(repeats)",
              ["  threads", "wall s", "GB/s", "peak RSS MiB", "user s", "sys s", "cores busy"],
              widths: [24, 9, 9, 14, 9, 9, 11], runs.map { e in
                  ["  \(e.threads)" + (e.pinned ? " (taskset -c 0)" : ""), Format.fixed(e.best.seconds, 2),
                   Format.fixed(e.gbPerSecond, 2), Format.fixed(e.best.peakRSSMiB, 0),
                   Format.fixed(e.best.userSeconds, 2), Format.fixed(e.best.systemSeconds, 2),
                   Format.fixed(e.best.coresBusy, 2)]
              })
    }

    /// A blank line, the heading (if any), the header row, then the rows, cells padded to `widths`.
    static func table(_ heading: String?, _ header: [String], widths: [Int], _ rows: [[String]]) -> [String] {
        [""] + (heading.map { [$0] } ?? []) + ([header] + rows).map { row($0, widths: widths) }
    }

    static func notes(_ notes: [String]) -> [String] {
        notes.isEmpty ? [] : [""] + notes.map { "note: " + $0 }
    }

    /// Cells padded to their widths: the first left-aligned, numbers right-aligned.
    static func row(_ cells: [String], widths: [Int]) -> String {
        var line = ""
        for (i, cell) in cells.enumerated() {
            let w = i < widths.count ? widths[i] : cell.count
            if i == 0 {
                line += Format.pad(cell, w)
            } else {
                line += " " + (cell.count >= w ? cell : String(repeating: " ", count: w - cell.count) + cell)
            }
        }
        while line.last == " " { line.removeLast() }
        return line
    }
}
