import Quantization
import SafeTensors

/// Tensor bytes as Float32, and whole-tensor scans tile by tile through reused scratch: the range of a
/// tensor (per-tensor granularity) and its count of NaN and Inf values.
enum TensorScan {
    /// `count` values of `dtype` read into `raw` as Float32: F32 is used in place, other float types are
    /// decoded into `floats`.
    static func asFloats(_ raw: UnsafeMutableRawBufferPointer, dtype: DType, count: Int,
                         floats: inout ScratchBuffer) -> UnsafeBufferPointer<Float> {
        if dtype == .F32 { return UnsafeBufferPointer(raw.bindMemory(to: Float.self)) }
        let out = floats.reserve(count * 4).bindMemory(to: Float.self)
        Kernels.decode(UnsafeRawPointer(raw.baseAddress!), format: dtype.floatFormat, count: count,
                       into: out.baseAddress!)
        return UnsafeBufferPointer(out)
    }

    static func range(_ info: TensorInfo, file: SafeTensorsFile, raw: inout ScratchBuffer,
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
            stats.merge(Kernels.range(asFloats(bytes, dtype: info.dtype, count: n, floats: &floats)))
            element += n
        }
        return stats
    }
}
