import FoundationEssentials
import SafeTensors

/// `manifest.json`, the commit marker of an output folder (contract v1). Written last.
/// Keys are snake_case on disk.
public struct Manifest: Sendable, Codable, Hashable {
    public static let schemaVersion = 1

    public var schemaVersion: Int
    public var quantdVersion: String
    public var config: QuantizeOptions
    public var startedAt: String
    public var finishedAt: String
    public var sources: [SourceFile]
    public var outputs: [OutputFile]
    public var tensors: [TensorRecord]
    public var totals: Totals
    public var timings: Timings

    public struct SourceFile: Sendable, Codable, Hashable {
        public var file: String
        public var size: Int
        public var sha256: String
    }

    public struct Frame: Sendable, Codable, Hashable {
        /// Offset of the frame in the compressed file.
        public var offset: Int
        public var compressedSize: Int
        public var rawSize: Int
        /// Offset of the frame's content in the decompressed file.
        public var rawOffset: Int
        /// The tensor the frame carries, or "__header__" for the safetensors header.
        public var tensor: String
    }

    public struct OutputFile: Sendable, Codable, Hashable {
        public var file: String
        /// The source file it was made from (`nil` for files quantd writes itself, like an index).
        public var source: String?
        public var size: Int
        public var sha256: String
        /// Size of the decompressed safetensors (0 for files that are not zstd streams).
        public var rawSize: Int
        public var frames: [Frame]
    }

    public struct Scheme: Sendable, Codable, Hashable {
        public var bits: Int
        /// The layout on disk (the `format` of the tensor's config group).
        public var format: WeightFormat
        public var granularity: QuantizeOptions.Granularity
        /// The group length actually used (it divides the row; see `reason` when it differs from the option).
        public var groupSize: Int?
        public var symmetric: Bool
        /// The range-setting method.
        public var calibrator: QuantizeOptions.Calibration
        /// F32, F16 or BF16: the dtype of the `_scale` tensor.
        public var scaleDtype: DType
        /// Input activations the consumer quantizes at run time (W8A8); nil for weight-only schemes.
        public var inputActivations: ActivationScheme?
        /// Groups whose calibrator fell back to absmax (too few values to mean anything, or a range worse than
        /// absmax's); nil when none did.
        public var calibrationFallback: CalibrationFallback?

        public init(bits: Int, format: WeightFormat, granularity: QuantizeOptions.Granularity, groupSize: Int?,
                    symmetric: Bool, calibrator: QuantizeOptions.Calibration, scaleDtype: DType,
                    inputActivations: ActivationScheme?, calibrationFallback: CalibrationFallback?) {
            self.bits = bits
            self.format = format
            self.granularity = granularity
            self.groupSize = groupSize
            self.symmetric = symmetric
            self.calibrator = calibrator
            self.scaleDtype = scaleDtype
            self.inputActivations = inputActivations
            self.calibrationFallback = calibrationFallback
        }

        private enum CodingKeys: String, CodingKey {
            case bits, format, granularity, groupSize, symmetric, calibrator, scaleDtype, inputActivations
            case calibrationFallback
        }

        /// Manifests written before `format` existed hold the I8 layout (`int-quantized`).
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            bits = try c.decode(Int.self, forKey: .bits)
            format = try c.decodeIfPresent(WeightFormat.self, forKey: .format) ?? .intQuantized
            granularity = try c.decode(QuantizeOptions.Granularity.self, forKey: .granularity)
            groupSize = try c.decodeIfPresent(Int.self, forKey: .groupSize)
            symmetric = try c.decode(Bool.self, forKey: .symmetric)
            calibrator = try c.decode(QuantizeOptions.Calibration.self, forKey: .calibrator)
            scaleDtype = try c.decode(DType.self, forKey: .scaleDtype)
            inputActivations = try c.decodeIfPresent(ActivationScheme.self, forKey: .inputActivations)
            calibrationFallback = try c.decodeIfPresent(CalibrationFallback.self, forKey: .calibrationFallback)
        }
    }

    /// How many of a tensor's groups were given absmax's range instead of the calibrator's, and why.
    public struct CalibrationFallback: Sendable, Codable, Hashable {
        /// Groups given absmax's range, of the tensor's `of` groups.
        public var groups: Int
        public var of: Int
        /// Of those, groups with fewer values than the method needs, and groups where it did worse than absmax.
        public var tooFew: Int
        public var worse: Int
        public var reason: String
    }

    /// What the sensitivity guard (`min_sqnr`) measured on a tensor it changed, and what it did.
    public struct Sensitivity: Sendable, Codable, Hashable {
        /// The bar, in dB.
        public var minSqnrDb: Double
        /// SQNR of the configured scheme on this tensor, below the bar.
        public var measuredSqnrDb: Double
        /// "group-N" (quantized with finer groups) or "kept" (left in its source dtype).
        public var action: String
        /// SQNR with the finer groups, when that was the action.
        public var fallbackSqnrDb: Double?
    }

    public struct ErrorFigures: Sendable, Codable, Hashable {
        public var relativeRmse: Double
        /// Signal-to-quantization-noise ratio; `nil` when the error is exactly zero.
        public var sqnrDb: Double?
        public var maxAbsError: Double
        public var clippedFraction: Double
    }

    public struct TensorRecord: Sendable, Codable, Hashable {
        public var name: String
        /// Source file (relevant for sharded checkpoints).
        public var file: String
        public var shape: [Int]
        public var sourceDtype: String
        public var storedDtype: String
        /// "quantized" or "kept".
        public var decision: String
        /// Why: which rule chose it.
        public var reason: String
        public var scheme: Scheme?
        public var error: ErrorFigures?
        /// Set when the sensitivity guard changed what happens to this tensor.
        public var sensitivity: Sensitivity?
        public var sourceBytes: Int
        /// Bytes stored for it in the output (weight plus scale and zero point tensors).
        public var storedBytes: Int
    }

    public struct Totals: Sendable, Codable, Hashable {
        public var tensors: Int
        public var quantized: Int
        public var kept: Int
        public var sourceBytes: Int
        /// Bytes of the decompressed output safetensors, headers included.
        public var outputRawBytes: Int
        public var compressedBytes: Int
        /// sourceBytes / compressedBytes.
        public var compressionRatio: Double
        /// Bits stored per quantized weight, scales and zero points included.
        public var bitsPerQuantizedWeight: Double?
        public var worstTensor: String?
        public var worstSqnrDb: Double?
        /// Median SQNR over the quantized tensors (exact ones count as +infinity; nil when the median is infinite).
        public var medianSqnrDb: Double?
    }

    public struct Timings: Sendable, Codable, Hashable {
        public var planSeconds: Double
        public var quantizeSeconds: Double
        public var commitSeconds: Double
        public var totalSeconds: Double
        /// Source bytes this run read around the page cache (O_DIRECT) because they were not in it: a figure of
        /// the run, like its times (nil in manifests written before quantd read around the cache).
        public var uncachedReadBytes: Int?
    }
}

extension Manifest {
    static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return e
    }

    /// The manifest as written to disk.
    public func encoded() throws -> [UInt8] {
        var bytes = Array(try Self.encoder().encode(self))
        bytes.append(0x0A)
        return bytes
    }

    public static func decode(_ bytes: [UInt8]) throws -> Manifest {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return try d.decode(Manifest.self, from: Data(bytes))
    }
}
