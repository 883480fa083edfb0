import Synchronization

/// The version written into every manifest and output header.
public let quantdVersion = "0.1.0"

/// Set from outside to make a running job stop at the next work unit, leaving nothing behind.
public final class CancellationFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public func cancel() { flag.store(true, ordering: .relaxed) }
    public var isCancelled: Bool { flag.load(ordering: .relaxed) }
}

public enum Engine {
    /// Quantize `input` (a `.safetensors` file, or a folder of shards with an optional
    /// `model.safetensors.index.json` and `config.json`) into the folder `output`.
    ///
    /// The folder is staged beside `output` as `.NAME.tmp-*`, fsynced and renamed into place
    /// only when complete; on failure nothing is left behind. An existing `output` is refused
    /// unless `force`.
    public static func quantize(
        input: String,
        output: String,
        options: QuantizeOptions,
        force: Bool = false,
        budget: ByteBudget? = nil,
        cancel: CancellationFlag? = nil,
        progress: (@Sendable (Progress) -> Void)? = nil
    ) throws(EngineError) -> Manifest {
        throw EngineError(.io, file: input, reason: "engine not built yet", stage: "open")
    }
}
