import Quantization
import SafeTensors

/// Whole-tensor scans, tile by tile through reused scratch: the range of a tensor (per-tensor
/// granularity) and its count of NaN and Inf values.
enum NonFinite {
    static func scan(_ info: TensorInfo, file: SafeTensorsFile, raw: inout ScratchBuffer,
                     floats: inout ScratchBuffer) throws(EngineError) -> RangeStats {
        let width = info.dtype.bitsPerElement / 8
        let chunk = max(1, Planner.unitBytes / width)
        var stats = RangeStats.empty
        var element = 0
        while element < info.elementCount {
            let n = min(chunk, info.elementCount - element)
            let bytes = raw.reserve(n * width)
            let start = info.dataRange.lowerBound + element * width
            do { try file.read(dataRange: start..<(start + n * width), into: bytes) } catch {
                throw EngineError(error, stage: "read")
            }
            if info.dtype == .F32 {
                stats.merge(Kernels.range(UnsafeBufferPointer(bytes.bindMemory(to: Float.self))))
            } else {
                let out = floats.reserve(n * 4).bindMemory(to: Float.self)
                Kernels.decode(UnsafeRawPointer(bytes.baseAddress!), format: info.dtype.floatFormat, count: n,
                               into: out.baseAddress!)
                stats.merge(Kernels.range(UnsafeBufferPointer(out)))
            }
            element += n
        }
        return stats
    }
}
