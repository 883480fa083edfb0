import QuantSystem

/// A growable, page-aligned scratch buffer (O_DIRECT reads land in it) that is reused across work units: it
/// reallocates only when a unit needs more than it has ever held.
struct ScratchBuffer: ~Copyable {
    private(set) var pointer: UnsafeMutableRawPointer
    private(set) var capacity: Int
    /// Bytes mapped from the kernel (`PageMemory`), 0 when `pointer` came from malloc.
    private var mapped = 0
    static let alignment = 4096

    init() {
        capacity = 0
        pointer = .allocate(byteCount: 64, alignment: Self.alignment)
    }

    deinit { Self.free(pointer, mapped: mapped) }

    /// At least `bytes` of room; the contents are not kept when it grows.
    mutating func reserve(_ bytes: Int) -> UnsafeMutableRawBufferPointer {
        if bytes > capacity {
            Self.free(pointer, mapped: mapped)
            let rounded = max(bytes, capacity * 5 / 4, 64)
            // Large blocks are mapped, so that a freed one goes back to the kernel (PageMemory).
            if rounded >= PageMemory.threshold, let block = PageMemory.map(rounded) {
                (pointer, mapped) = (block, rounded)
            } else {
                (pointer, mapped) = (.allocate(byteCount: rounded, alignment: Self.alignment), 0)
            }
            capacity = rounded
        }
        return UnsafeMutableRawBufferPointer(start: pointer, count: bytes)
    }

    private static func free(_ pointer: UnsafeMutableRawPointer, mapped: Int) {
        if mapped > 0 { PageMemory.unmap(pointer, mapped) } else { pointer.deallocate() }
    }
}

/// What one work unit hands to the writer: the source bytes it read (hashed in order by the writer)
/// and its compressed frame. Recycled through a pool.
final class UnitBuffers: @unchecked Sendable {
    // @unchecked: a UnitBuffers belongs to exactly one worker or to the writer at a time, handed over
    // under the pipeline's monitor.
    var input = ScratchBuffer()
    /// Where in `input` the unit's source bytes start: past the head of the first block of an O_DIRECT read.
    var inputStart = 0
    var inputCount = 0
    /// The source bytes were read ahead (`Pipeline.readAhead`): the worker does not read them again.
    var preloaded = false
    var frame: [UInt8] = []

    var inputBytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: input.pointer + inputStart, count: inputCount)
    }

    func reset() {
        inputStart = 0
        inputCount = 0
        preloaded = false
        frame.removeAll(keepingCapacity: true)
    }
}
