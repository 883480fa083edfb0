import Dispatch
import Quantization
import SafeTensors
import Synchronization

/// The kernel calls for one quantized tensor, shared by the pipeline's units and the guard's measuring pass, so
/// that what the guard measures is what the pipeline writes.
enum TensorQuantizer {
    /// Per-tensor params from the whole tensor's finite values `x` and their `range`.
    /// Per-tensor params from the whole tensor's finite values `x` and their `range`, and how the calibrator
    /// fared (`CalibrationGuard`).
    static func tensorParams(_ x: UnsafeBufferPointer<Float>, range: RangeStats, layout: QuantLayout,
                             calibrator: (any Calibrator)?) -> (params: QuantParams, calibration: CalibrationCounts) {
        let grid = layout.grid
        var counts = CalibrationCounts()
        guard let calibrator, x.count > 0 else { return (grid.params(.full(range, symmetric: grid.symmetric)), counts) }
        let guarded = CalibrationGuard.range(calibrator, x, observed: range, grid: grid)
        counts.count(guarded.outcome)
        return (grid.params(guarded.range), counts)
    }

    /// Rows of a per-channel or per-group tensor: codes, scales and zero points (sized by the caller).
    static func groups(_ x: UnsafeBufferPointer<Float>, rows: Int, layout: QuantLayout, calibrator: (any Calibrator)?,
                       q: UnsafeMutableBufferPointer<Int8>, scales: UnsafeMutableBufferPointer<Float>,
                       zeroPoints: UnsafeMutableBufferPointer<Int8>) -> TileResult {
        Kernels.quantizeGroups(x, rows: rows, cols: layout.cols, groupSize: layout.groupSize, grid: layout.grid,
                               calibrator: calibrator, q: q, scales: scales, zeroPoints: zeroPoints)
    }

    /// The error figures of the whole tensor `x` quantized with `layout`, into scratch (nothing is kept); nil when
    /// it holds NaN or Inf.
    static func measure(_ x: UnsafeBufferPointer<Float>, layout: QuantLayout, calibrator: (any Calibrator)?)
        -> ErrorStats?
    {
        let q = UnsafeMutableBufferPointer<Int8>.allocate(capacity: x.count)
        defer { q.deallocate() }
        if layout.granularity == .tensor {
            let range = Kernels.range(x)
            guard range.nonFinite == 0 else { return nil }
            let (params, calibration) = tensorParams(x, range: range, layout: layout, calibrator: calibrator)
            var stats = Kernels.quantize(x, params: params, symmetric: layout.symmetric, q: q)
            stats.calibration = calibration
            return stats
        }
        let scales = UnsafeMutableBufferPointer<Float>.allocate(capacity: layout.scaleCount)
        let zeroPoints = UnsafeMutableBufferPointer<Int8>.allocate(capacity: layout.symmetric ? 0 : layout.scaleCount)
        defer {
            scales.deallocate()
            zeroPoints.deallocate()
        }
        let result = groups(x, rows: layout.rows, layout: layout, calibrator: calibrator, q: q, scales: scales,
                            zeroPoints: zeroPoints)
        return result.nonFinite == 0 ? result.stats : nil
    }

    /// A whole tensor as Float32 (F32 read in place; other float types decoded from a raw copy).
    static func floats(_ info: TensorInfo, file: SafeTensorsFile) throws(EngineError) -> [Float] {
        var out = [Float](repeating: 0, count: info.elementCount)
        guard info.elementCount > 0 else { return out }
        var raw = ScratchBuffer()
        let failure = out.withUnsafeMutableBufferPointer { floats -> SafeTensorsError? in
            let bytes = info.dtype == .F32 ? UnsafeMutableRawBufferPointer(floats) : raw.reserve(info.byteCount)
            do throws(SafeTensorsError) {
                try file.read(dataRange: info.dataRange, into: bytes)
            } catch {
                return error
            }
            if info.dtype != .F32 {
                Kernels.decode(UnsafeRawPointer(bytes.baseAddress!), format: info.dtype.floatFormat,
                               count: info.elementCount, into: floats.baseAddress!)
            }
            return nil
        }
        if let failure { throw EngineError(failure, stage: "read") }
        return out
    }
}

/// The sensitivity guard (`min_sqnr`): before planning, measures each candidate tensor's SQNR under the
/// configured scheme, and gives a tensor below the bar its fallback: finer groups (powers of two below its
/// current group length, down to 16, the first that reaches the bar) or its source dtype. The output header
/// depends on these decisions, so this pass reads every candidate once more (and once per finer group tried on
/// a failing tensor): on by request only. It holds one decoded tensor per core in memory.
enum SensitivityGuard {
    /// Smallest group length the `group` fallback tries.
    static let smallestGroup = 16

    struct Decision: Sendable {
        /// nil: keep the source dtype.
        let layout: QuantLayout?
        let reason: String
        let record: Manifest.Sensitivity
    }

    /// Decisions for the tensors the guard changes, by name (none when `minSQNR` is nil).
    static func decide(_ file: SafeTensorsFile, selection: Selection, options: QuantizeOptions, keep: Set<String>)
        throws(EngineError) -> [String: Decision]
    {
        guard let bar = options.minSQNR else { return [:] }
        let calibrator = options.calibration.calibrator(percentile: options.percentile)
        let candidates = file.header.tensors.filter {
            guard case .quantize = selection.decide($0) else { return false }
            return !keep.contains($0.name) && $0.elementCount >= options.minElements && $0.elementCount > 0
        }
        let found = Mutex<(decisions: [String: Decision], error: EngineError?)>(([:], nil))
        DispatchQueue.concurrentPerform(iterations: candidates.count) { i in
            let t = candidates[i]
            do throws(EngineError) {
                let x = try TensorQuantizer.floats(t, file: file)
                let d = x.withUnsafeBufferPointer {
                    decide(t, $0, layout: QuantLayout(t, options: options), bar: bar,
                           fallback: options.fallback, calibrator: calibrator)
                }
                if let d { found.withLock { $0.decisions[t.name] = d } }
            } catch {
                found.withLock { $0.error = $0.error ?? error }
            }
        }
        let result = found.withLock { $0 }
        if let e = result.error { throw e }
        return result.decisions
    }

    /// The decision for one tensor's values, or nil when the configured scheme reaches the bar (or the tensor
    /// holds NaN or Inf, which the pipeline refuses or keeps).
    static func decide(_ t: TensorInfo, _ x: UnsafeBufferPointer<Float>, layout: QuantLayout, bar: Double,
                       fallback: QuantizeOptions.Fallback, calibrator: (any Calibrator)?) -> Decision? {
        guard let stats = TensorQuantizer.measure(x, layout: layout, calibrator: calibrator),
              stats.sqnrDB < bar else { return nil }
        let measured = stats.sqnrDB
        let why = "SQNR \(fixed(measured)) dB with \(describe(layout)) is below min_sqnr \(fixed(bar)) dB"
        let kept = Manifest.Sensitivity(minSqnrDb: bar, measuredSqnrDb: measured, action: "kept", fallbackSqnrDb: nil)
        if fallback == .group {
            var size = 1
            while size * 2 < layout.groupSize { size *= 2 }
            while size >= smallestGroup {
                let finer = layout.withGroups(size, shape: t.shape)
                if let s = TensorQuantizer.measure(x, layout: finer, calibrator: calibrator), s.sqnrDB >= bar {
                    return Decision(layout: finer, reason: why + ": \(describe(finer)) gives \(fixed(s.sqnrDB)) dB",
                                    record: .init(minSqnrDb: bar, measuredSqnrDb: measured,
                                                  action: describe(finer), fallbackSqnrDb: s.sqnrDB))
                }
                size /= 2
            }
            let reason = why + " and no group down to \(smallestGroup) reaches it: kept in " + t.dtype.rawValue
            return Decision(layout: nil, reason: reason, record: kept)
        }
        return Decision(layout: nil, reason: why + ": kept in " + t.dtype.rawValue, record: kept)
    }

    private static func describe(_ l: QuantLayout) -> String {
        switch l.granularity {
        case .tensor: "per-tensor"
        case .channel: "per-channel"
        case .group: "group-\(l.groupSize)"
        }
    }

    private static func fixed(_ v: Double) -> String {
        guard v.isFinite else { return "\(v)" }
        let r = (v * 10).rounded() / 10
        return "\(r)"
    }
}
