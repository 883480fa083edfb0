public import SystemPackage
internal import Glibc

/// A failed system call, in the manner of swift-nio's `IOError`: which call, on which path, the `Errno` it
/// returned, and, where the call worked but what it found is refused (not a regular file, larger than allowed),
/// the refusal in words. The one error type of this layer: every function here throws it.
public struct SystemError: Error, Sendable, CustomStringConvertible {
    /// The call in words: `open`, `rename to 'out/x'`, `read 4096 bytes at offset 8`.
    public var call: String
    public var path: FilePath?
    public var errno: Errno
    /// Set when nothing failed but the file is refused; `errno` then says the nearest reason.
    public var refusal: String?

    public init(_ call: String, path: FilePath?, errno: Errno, refusal: String? = nil) {
        self.call = call
        self.path = path
        self.errno = errno
        self.refusal = refusal
    }

    /// `open(in/x.safetensors): No such file or directory`; a refusal reads `in/x: not a regular file`.
    public var description: String {
        let place = path.map { $0.string } ?? ""
        if let refusal { return "\(place): \(refusal)" }
        return "\(call)(\(place)): \(errno.description)"
    }

    /// A failure worth retrying later: the machine ran short, the input is not at fault.
    public var isTransient: Bool { refusal == nil && errno.isTransient }
}

extension Errno {
    /// The errnos that say the machine, not the input, failed: a full disk or quota, an I/O error, too many
    /// open files, no memory. A job that fails with one is retried later; any other is the input's fault.
    public static let transient: Set<Errno> = [
        .noSpace, .diskQuotaExceeded, .ioError, .tooManyOpenFiles, .tooManyOpenFilesInSystem, .noMemory,
    ]

    public var isTransient: Bool { Self.transient.contains(self) }
}

/// Runs a swift-system call, turning the `Errno` it throws into a `SystemError` naming the call and path.
@inline(__always)
func system<T>(_ call: @autoclosure () -> String, _ path: FilePath?, _ body: () throws -> T)
    throws(SystemError) -> T
{
    do {
        return try body()
    } catch {
        throw SystemError(call(), path: path, errno: (error as? Errno) ?? .ioError)
    }
}

/// Runs a C call that returns -1 with errno set, retrying it while it is interrupted (EINTR): the one place
/// this layer handles EINTR for calls swift-system does not wrap.
@inline(__always)
func retrying<T: FixedWidthInteger>(_ call: @autoclosure () -> String, _ path: FilePath?, _ body: () -> T)
    throws(SystemError) -> T
{
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Errno(rawValue: Glibc.errno)
        if code == .interrupted { continue }
        throw SystemError(call(), path: path, errno: code)
    }
}
