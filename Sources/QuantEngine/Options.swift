/// How a checkpoint is quantized. Every field is recorded in the manifest as "the config used".
public struct QuantizeOptions: Sendable, Hashable, Codable {
    public enum Granularity: String, Sendable, Hashable, Codable, CaseIterable {
        case tensor, channel, group
    }

    /// Row granularity of the scales: one per tensor, per output channel (dim 0), or per group.
    public var granularity: Granularity = .channel
    /// Group length along the flattened last dimension when `granularity == .group`.
    public var groupSize: Int = 128
    /// Symmetric (zero point 0, range [-127, 127]) or asymmetric ([-128, 127] with an int8 zero point).
    public var symmetric: Bool = true
    /// zstd compression level of the output frames.
    public var level: Int = 3
    /// Worker threads; 0 means all cores.
    public var threads: Int = 0
    /// Regular expressions: a tensor whose name matches one of `include` is quantized
    /// (if floating); one matching `exclude` is not. Empty `include` means the default rule.
    public var include: [String] = []
    public var exclude: [String] = []
    /// Leave tensors with NaN or Inf unquantized instead of refusing the checkpoint.
    public var keepNonFinite: Bool = false

    public init() {}
}

/// What the engine reports while it works, a few times a second at most.
public struct Progress: Sendable, Hashable {
    public var tensorsDone: Int
    public var tensorsTotal: Int
    public var bytesDone: Int
    public var bytesTotal: Int
    public var elapsedSeconds: Double

    public init(tensorsDone: Int, tensorsTotal: Int, bytesDone: Int, bytesTotal: Int, elapsedSeconds: Double) {
        self.tensorsDone = tensorsDone
        self.tensorsTotal = tensorsTotal
        self.bytesDone = bytesDone
        self.bytesTotal = bytesTotal
        self.elapsedSeconds = elapsedSeconds
    }

    public var bytesPerSecond: Double { elapsedSeconds > 0 ? Double(bytesDone) / elapsedSeconds : 0 }
    public var etaSeconds: Double? {
        guard bytesDone > 0, bytesPerSecond > 0 else { return nil }
        return Double(bytesTotal - bytesDone) / bytesPerSecond
    }
}
