/// A growable, 64-byte aligned scratch buffer that is reused across work units: it reallocates only
/// when a unit needs more than it has ever held.
struct ScratchBuffer: ~Copyable {
    private(set) var pointer: UnsafeMutableRawPointer
    private(set) var capacity: Int

    init() {
        capacity = 0
        pointer = .allocate(byteCount: 64, alignment: 64)
    }

    deinit { pointer.deallocate() }

    /// At least `bytes` of room; the contents are not kept when it grows.
    mutating func reserve(_ bytes: Int) -> UnsafeMutableRawBufferPointer {
        if bytes > capacity {
            pointer.deallocate()
            let rounded = max(bytes, capacity * 5 / 4)
            pointer = .allocate(byteCount: max(rounded, 64), alignment: 64)
            capacity = rounded
        }
        return UnsafeMutableRawBufferPointer(start: pointer, count: bytes)
    }
}

/// What one work unit hands to the writer: the source bytes it read (hashed in order by the writer)
/// and its compressed frame. Recycled through a pool.
final class UnitBuffers: @unchecked Sendable {
    // @unchecked: a UnitBuffers belongs to exactly one worker or to the writer at a time, handed over
    // under the pipeline's monitor.
    var input = ScratchBuffer()
    var inputCount = 0
    var frame: [UInt8] = []

    var inputBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: input.pointer, count: inputCount) }

    func reset() {
        inputCount = 0
        frame.removeAll(keepingCapacity: true)
    }
}
