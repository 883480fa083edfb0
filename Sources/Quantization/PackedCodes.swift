import QuantizationCore

/// compressed-tensors' `pack-quantized` layout for 8-bit codes (`pack_to_int32` with num_bits 8): each code is
/// stored as the unsigned byte code + 128, four to a little-endian int32 with code i of the word in bits
/// 8i..8i+7, rows padded with zero bytes to whole words. Byte for byte, a packed row is the row's codes with the
/// top bit flipped, followed by up to three zero bytes.
public enum PackedCodes {
    /// A row of `cols` codes rounded up to whole int32 words (in bytes).
    @inlinable
    public static func paddedCols(_ cols: Int) -> Int { (cols + 3) & ~3 }

    /// Packs `rows` rows of `cols` codes into `out` (`rows * paddedCols(cols)` bytes).
    public static func pack(_ q: UnsafeBufferPointer<Int8>, rows: Int, cols: Int, into out: UnsafeMutableRawBufferPointer) {
        let padded = checkRows(rows, cols)
        check(q.count >= rows * cols && out.count >= rows * padded, "pack: buffers smaller than the rows")
        guard rows > 0, cols > 0, let src = q.baseAddress, let dst = out.baseAddress else { return }
        if padded == cols {
            flipTopBits(UnsafeRawPointer(src), into: dst, count: rows * cols)
            return
        }
        for r in 0..<rows {
            let row = dst + r * padded
            flipTopBits(UnsafeRawPointer(src + r * cols), into: row, count: cols)
            (row + cols).initializeMemory(as: UInt8.self, repeating: 0, count: padded - cols)
        }
    }

    /// The codes of packed rows (the inverse of `pack`).
    public static func unpack(_ packed: UnsafeRawBufferPointer, rows: Int, cols: Int,
                              into q: UnsafeMutableBufferPointer<Int8>) {
        let padded = checkRows(rows, cols)
        check(packed.count >= rows * padded && q.count >= rows * cols, "unpack: buffers smaller than the rows")
        guard rows > 0, cols > 0, let src = packed.baseAddress, let dst = q.baseAddress else { return }
        for r in 0..<rows {
            flipTopBits(src + r * padded, into: UnsafeMutableRawPointer(dst + r * cols), count: cols)
        }
    }

    /// Checks a shape at the public edge (rows * paddedCols(cols) bytes must not overflow); returns paddedCols.
    static func checkRows(_ rows: Int, _ cols: Int) -> Int {
        check(rows >= 0 && cols >= 0 && cols <= Int.max - 3, "bad shape for packed rows")
        let padded = paddedCols(cols)
        // padded >= cols, so rows * cols cannot overflow once rows * padded did not.
        check(product(rows, padded) != nil, "bad shape for packed rows")
        return padded
    }

    /// `out[i] = in[i] ^ 0x80`, eight bytes a step.
    @inline(__always)
    static func flipTopBits(_ src: UnsafeRawPointer, into dst: UnsafeMutableRawPointer, count: Int) {
        var i = 0
        while i + 8 <= count {
            dst.storeBytes(of: src.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ 0x8080_8080_8080_8080,
                           toByteOffset: i, as: UInt64.self)
            i += 8
        }
        while i < count {
            dst.storeBytes(of: src.load(fromByteOffset: i, as: UInt8.self) ^ 0x80, toByteOffset: i, as: UInt8.self)
            i += 1
        }
    }
}
