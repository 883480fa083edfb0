internal import CZstd

/// A failure reported by libzstd, or a rule of this module that a frame broke.
///
/// `code` is a `ZSTD_ErrorCode` value from `zstd_errors.h` (stable across libzstd versions), so callers can tell
/// a checksum mismatch (22) from corruption (20) or truncation (72) without seeing C.
public struct ZstdError: Error, Sendable, CustomStringConvertible {
    public var code: Int
    public var message: String

    public init(code: Int, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "zstd error \(code): \(message)" }

    /// The error behind a libzstd `size_t` result for which `ZSTD_isError` holds.
    init(result: Int) {
        self.init(code: Int(ZSTD_getErrorCode(result).rawValue), message: String(cString: ZSTD_getErrorName(result)))
    }

    /// An error of this module's own, filed under the closest libzstd code.
    init(_ code: ZSTD_ErrorCode, _ message: String) {
        self.init(code: Int(code.rawValue), message: message)
    }
}

/// Returns a libzstd `size_t` result (imported as `Int`), or throws the error it encodes.
@inline(__always)
func checked(_ result: Int) throws(ZstdError) -> Int {
    if ZSTD_isError(result) != 0 {
        throw ZstdError(result: result)
    }
    return result
}

/// Runs `body` on the base address of `buffer`, or on a valid dummy address when the buffer is empty, since
/// libzstd's handling of a null pointer with size 0 has varied between versions.
@inline(__always)
func withBaseAddress<R, E: Error>(
    _ buffer: UnsafeRawBufferPointer, _ body: (UnsafeRawPointer) throws(E) -> R
) throws(E) -> R {
    if let base = buffer.baseAddress {
        return try body(base)
    }
    var dummy: UInt8 = 0
    return try withUnsafePointer(to: &dummy) { (pointer) throws(E) -> R in try body(UnsafeRawPointer(pointer)) }
}

/// The mutable twin of `withBaseAddress`, for output buffers that may be empty.
@inline(__always)
func withMutableBaseAddress<R, E: Error>(
    _ buffer: UnsafeMutableRawBufferPointer, _ body: (UnsafeMutableRawPointer) throws(E) -> R
) throws(E) -> R {
    if let base = buffer.baseAddress {
        return try body(base)
    }
    var dummy: UInt8 = 0
    return try withUnsafeMutablePointer(to: &dummy) { (pointer) throws(E) -> R in
        try body(UnsafeMutableRawPointer(pointer))
    }
}
