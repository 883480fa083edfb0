import Quantization

/// How a checkpoint is quantized. Every field is recorded in the manifest as "the config used". Decoding fills
/// missing keys with their defaults (older manifests, partial daemon configs).
public struct QuantizeOptions: Sendable, Hashable, Codable {
    /// compressed-tensors' preset names and meanings (`compressed_tensors/quantization/quant_scheme.py`).
    public enum Scheme: String, Sendable, Hashable, Codable, CaseIterable {
        /// int8 symmetric weights in groups of 128, weight-only: written `pack-quantized`, as llm-compressor does.
        case w8a16 = "W8A16"
        /// int8 symmetric weights per output channel, int8 input activations quantized dynamically per token by the
        /// consumer: written `int-quantized`, the layout vLLM's int8 matrix kernels run.
        case w8a8 = "W8A8"

        /// The scheme's weight settings; `--granularity`, `--group-size`, ... refine them.
        public var defaults: (granularity: Granularity, groupSize: Int) {
            switch self {
            case .w8a16: (.group, 128)
            case .w8a8: (.channel, 128)
            }
        }

        /// How the weights of this scheme are laid out on disk.
        public var format: WeightFormat { self == .w8a8 ? .intQuantized : .packQuantized }

        /// Input activations the consumer quantizes at run time (nil: weight-only).
        public var inputActivations: ActivationScheme? { self == .w8a8 ? .int8DynamicPerToken : nil }
    }

    public enum Granularity: String, Sendable, Hashable, Codable, CaseIterable {
        case tensor, channel, group
    }

    /// How each scale's range is set (see `Quantization.Calibrator` and docs/ARCHITECTURE.md).
    public enum Calibration: String, Sendable, Hashable, Codable, CaseIterable {
        case absmax, percentile, mse, entropy, auto
    }

    /// The dtype the scales are stored in; each scale is rounded up to it before the codes are made with it.
    public enum ScaleDtype: String, Sendable, Hashable, Codable, CaseIterable {
        case f32, f16, bf16
    }

    /// What the sensitivity guard does with a tensor whose SQNR falls below `minSQNR`.
    public enum Fallback: String, Sendable, Hashable, Codable, CaseIterable {
        /// Halve the group size (powers of two, down to 16) until the SQNR holds, else keep the source dtype.
        case group
        /// Keep the source dtype.
        case keep
    }

    /// The preset; setting it through `init(scheme:)` also sets its granularity and group size.
    public var scheme: Scheme = .w8a16
    /// Row granularity of the scales: one per tensor, per output channel (dim 0), or per group.
    public var granularity: Granularity = .group
    /// Group length along the flattened last dimension when `granularity == .group`.
    public var groupSize: Int = 128
    /// Symmetric (zero point 0, range [-127, 127]) or asymmetric ([-128, 127] with an int8 zero point).
    public var symmetric: Bool = true
    /// The range-setting method.
    public var calibration: Calibration = .absmax
    /// P for `percentile` (and `auto`'s percentile candidate), in [50, 100].
    public var percentile: Double = 99.99
    /// Stored dtype of the scales.
    public var scaleDtype: ScaleDtype = .f32
    /// Sensitivity guard: a tensor whose int8 SQNR would fall below this many dB gets `fallback`. nil: off.
    /// Needs a measuring pass over the candidates before planning (the output header depends on it).
    public var minSQNR: Double?
    public var fallback: Fallback = .group
    /// Tensors with fewer elements than this stay in their source dtype.
    public var minElements: Int = 0
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

    /// The scheme with its own granularity and group size; the other fields at their defaults.
    public init(scheme: Scheme) {
        self.scheme = scheme
        (granularity, groupSize) = scheme.defaults
    }

    private enum CodingKeys: String, CodingKey {
        case scheme, granularity, groupSize, symmetric, calibration, percentile, scaleDtype
        case minSQNR = "minSqnr", fallback
        case minElements, level, threads, include, exclude, keepNonFinite
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func value<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
            try c.decodeIfPresent(T.self, forKey: key) ?? fallback
        }
        scheme = try c.decodeIfPresent(Scheme.self, forKey: .scheme) ?? .w8a16
        let d = QuantizeOptions(scheme: scheme)
        granularity = try value(.granularity, d.granularity)
        groupSize = try value(.groupSize, d.groupSize)
        symmetric = try value(.symmetric, d.symmetric)
        calibration = try value(.calibration, d.calibration)
        percentile = try value(.percentile, d.percentile)
        scaleDtype = try value(.scaleDtype, d.scaleDtype)
        minSQNR = try c.decodeIfPresent(Double.self, forKey: .minSQNR)
        fallback = try value(.fallback, d.fallback)
        minElements = try value(.minElements, d.minElements)
        level = try value(.level, d.level)
        threads = try value(.threads, d.threads)
        include = try value(.include, d.include)
        exclude = try value(.exclude, d.exclude)
        keepNonFinite = try value(.keepNonFinite, d.keepNonFinite)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(scheme, forKey: .scheme)
        try c.encode(granularity, forKey: .granularity)
        try c.encode(groupSize, forKey: .groupSize)
        try c.encode(symmetric, forKey: .symmetric)
        try c.encode(calibration, forKey: .calibration)
        try c.encode(percentile, forKey: .percentile)
        try c.encode(scaleDtype, forKey: .scaleDtype)
        try c.encode(minSQNR, forKey: .minSQNR)
        try c.encode(fallback, forKey: .fallback)
        try c.encode(minElements, forKey: .minElements)
        try c.encode(level, forKey: .level)
        try c.encode(threads, forKey: .threads)
        try c.encode(include, forKey: .include)
        try c.encode(exclude, forKey: .exclude)
        try c.encode(keepNonFinite, forKey: .keepNonFinite)
    }
}

/// compressed-tensors' compression formats quantd writes, per tensor (the `format` of a config group).
public enum WeightFormat: String, Sendable, Hashable, Codable, CaseIterable {
    /// `X.weight_packed` I32 [rows, ceil(cols/4)]: four codes per int32, each stored as code + 128 in the byte
    /// 8*i of the little-endian word (rows padded with zero bytes); `X.weight_scale`; `X.weight_shape` I64.
    /// Written for symmetric linear-layer weights only (see `QuantLayout.init(_:options:)`).
    case packQuantized = "pack-quantized"
    /// `X.weight` I8 of the tensor's shape, `X.weight_scale`, `X.weight_zero_point` I8 (asymmetric only).
    case intQuantized = "int-quantized"
}

/// Activations quantized by the consumer at run time, in compressed-tensors' terms.
public struct ActivationScheme: Sendable, Hashable, Codable {
    public var numBits: Int
    public var type: String
    public var symmetric: Bool
    public var strategy: String
    public var dynamic: Bool

    public static let int8DynamicPerToken = ActivationScheme(numBits: 8, type: "int", symmetric: true,
                                                             strategy: "token", dynamic: true)
}

extension QuantizeOptions.Scheme: CustomStringConvertible {
    public var description: String { rawValue }

    /// Case-insensitive: `W8A8`, `w8a8`.
    public init?(name: String) {
        guard let s = Self.allCases.first(where: { $0.rawValue.lowercased() == name.lowercased() }) else { return nil }
        self = s
    }
}

extension QuantizeOptions.Calibration {
    /// The Quantization calibrator (nil for absmax: the kernels' fused path).
    func calibrator(percentile: Double) -> (any Calibrator)? {
        CalibrationMethod(rawValue: rawValue)!.calibrator(percentile: percentile)
    }
}

extension QuantizeOptions.Calibration {
    /// The name compressed-tensors' `observer` field gets: its own names where they mean the same method.
    var observer: String {
        switch self {
        case .absmax: "minmax"
        case .mse: "mse"
        case .percentile, .entropy, .auto: rawValue
        }
    }
}

extension QuantizeOptions.ScaleDtype {
    var format: ScaleFormat { ScaleFormat(rawValue: rawValue)! }
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
