import QuantSystem
import SystemPackage

/// Why a job failed. `kind` tells the daemon what to do with the input:
/// a bad input is quarantined, a transient failure is retried later.
public struct EngineError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable, Codable {
        /// The input is malformed or holds data quantd refuses (sysexits 65).
        case badInput
        /// The input does not exist or cannot be opened (66).
        case missingInput
        /// The output cannot be created: exists without --force, bad folder (73).
        case cannotCreateOutput
        /// A read or write failed (74). Transient when errno is one of `Errno.transient` (ENOSPC, EDQUOT, EIO,
        /// EMFILE, ENFILE, ENOMEM).
        case io
        /// Invalid options (64).
        case usage
        /// The job was cancelled (shutdown).
        case cancelled
    }

    public var kind: Kind
    /// The file the problem is about (input or output path).
    public var file: String
    /// The tensor, when there is one.
    public var tensor: String?
    /// What is wrong, in words.
    public var reason: String
    /// The errno of a failed system call, when there is one.
    public var errno: Int32?
    /// The pipeline stage: "open", "header", "plan", "quantize", "write", "commit".
    public var stage: String

    public init(_ kind: Kind, file: String, tensor: String? = nil, reason: String, errno: Int32? = nil, stage: String) {
        self.kind = kind
        self.file = file
        self.tensor = tensor
        self.reason = reason
        self.errno = errno
        self.stage = stage
    }

    public var description: String {
        if let tensor { return "\(file): tensor '\(tensor)': \(reason)" }
        return "\(file): \(reason)"
    }

    /// A failure worth retrying later: the input is fine, the machine was not.
    public var isTransient: Bool {
        guard kind == .io || kind == .cannotCreateOutput, let errno else { return false }
        return Errno(rawValue: errno).isTransient
    }

    /// sysexits(3) code for the command line.
    public var exitCode: Int32 {
        switch kind {
        case .usage: 64
        case .badInput: 65
        case .missingInput: 66
        case .cannotCreateOutput: 73
        case .io: 74
        case .cancelled: 75
        }
    }
}
