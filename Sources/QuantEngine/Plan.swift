import Quantization
import SafeTensors

/// How a quantized tensor is cut into scales and laid out on disk: the N-D tensor is viewed as [rows, cols] with
/// rows = dim 0 (1 for a 1-D tensor) and cols = the product of the other dimensions.
///
/// Groups always divide the row: compressed-tensors (and so transformers and vLLM) refuses a group size that does
/// not divide the columns. A requested size that does not is replaced by its largest divisor of the row length
/// from the requested size down to 16 (or the requested size, when smaller), else by one group per row
/// (per channel); `adjustment` says which and why.
struct QuantLayout: Sendable, Hashable {
    let granularity: QuantizeOptions.Granularity
    let rows: Int
    let cols: Int
    /// Elements per scale along a row (cols for per-channel and per-tensor).
    let groupSize: Int
    let symmetric: Bool
    let scaleDtype: QuantizeOptions.ScaleDtype
    let format: WeightFormat
    /// Input activations the consumer quantizes at run time (W8A8's linear layers); nil: weight-only.
    let inputActivations: ActivationScheme?
    /// Why the group size differs from the requested one; nil when it does not.
    let adjustment: String?

    init(shape: [Int], granularity: QuantizeOptions.Granularity, groupSize: Int, symmetric: Bool,
         scaleDtype: QuantizeOptions.ScaleDtype = .f32, format: WeightFormat = .intQuantized,
         inputActivations: ActivationScheme? = nil) {
        let count = shape.reduce(1, *)
        let rows = shape.count >= 2 ? shape[0] : 1
        let cols = rows == 0 ? 0 : count / rows
        self.rows = rows
        self.cols = cols
        var granularity = granularity
        var size = granularity == .group ? min(groupSize, max(cols, 1)) : max(cols, 1)
        var adjustment: String?
        if granularity == .group && cols % size != 0 {
            let floor = min(16, size)
            if let d = stride(from: size, through: floor, by: -1).first(where: { cols % $0 == 0 }) {
                adjustment = "group \(size) does not divide \(cols) columns: groups of \(d)"
                size = d
            } else {
                adjustment = "no group from \(size) down to \(floor) divides \(cols) columns: per channel"
                granularity = .channel
                size = cols
            }
        }
        self.granularity = granularity
        self.groupSize = size
        self.adjustment = adjustment
        self.symmetric = symmetric
        self.scaleDtype = scaleDtype
        self.format = format
        self.inputActivations = inputActivations
    }

    /// The layout `options` give tensor `t`. The scheme's format and input activations apply to linear-layer
    /// weights; any other weight quantized (an embedding or a convolution, by `--include` or a bare checkpoint's
    /// rule) is written `int-quantized` with weights alone: compressed-tensors packs only `Linear` modules
    /// (transformers loses an `Embedding`'s weight to `weight_packed`), and only a linear layer's input is
    /// quantized at run time.
    init(_ t: TensorInfo, options: QuantizeOptions) {
        let linear = Selection.isLinearWeight(t.name, shape: t.shape)
        // Asymmetric weights are written int-quantized too: compressed-tensors 0.20 packs a zero point along dim 0
        // when it compresses, but expects it unpacked when transformers builds the empty model, so transformers
        // 5.24 refuses packed zero points (llm-compressor's own as well).
        let packed = linear && options.scheme.format == .packQuantized && options.symmetric
        self.init(shape: t.shape, granularity: options.granularity, groupSize: options.groupSize,
                  symmetric: options.symmetric, scaleDtype: options.scaleDtype,
                  format: packed ? .packQuantized : .intQuantized,
                  inputActivations: linear ? options.scheme.inputActivations : nil)
    }

    /// The layout a manifest record describes.
    init(shape: [Int], scheme s: Manifest.Scheme) {
        let scales: QuantizeOptions.ScaleDtype = s.scaleDtype == .F16 ? .f16 : s.scaleDtype == .BF16 ? .bf16 : .f32
        self.init(shape: shape, granularity: s.granularity, groupSize: s.groupSize ?? 1, symmetric: s.symmetric,
                  scaleDtype: scales, format: s.format, inputActivations: s.inputActivations)
    }

    /// The same layout with groups of `size` columns.
    func withGroups(_ size: Int, shape: [Int]) -> QuantLayout {
        QuantLayout(shape: shape, granularity: .group, groupSize: size, symmetric: symmetric, scaleDtype: scaleDtype,
                    format: format, inputActivations: inputActivations)
    }

    var grid: CodeGrid { CodeGrid(symmetric: symmetric, scaleFormat: scaleDtype.format) }
    var scaleBytes: Int { scaleDtype.format.bytesPerElement }
    var scaleStorage: DType { scaleDtype.storage }

    var groupsPerRow: Int { granularity == .group ? (cols + groupSize - 1) / groupSize : 1 }
    var scaleCount: Int { granularity == .tensor ? 1 : rows * groupsPerRow }
    var scaleShape: [Int] {
        switch granularity {
        case .tensor: [1]
        case .channel: [rows, 1]
        case .group: [rows, groupsPerRow]
        }
    }

    /// Bytes of one row of codes on disk: cols, or cols rounded up to whole int32 words when packed.
    var storedRowBytes: Int { format == .packQuantized ? PackedCodes.paddedCols(cols) : cols }
    var zeroPointBytes: Int { symmetric ? 0 : scaleCount }

    /// The tensors written for a quantized tensor `name` of `shape`, in file order.
    func stored(_ name: String, shape: [Int]) -> [(name: String, dtype: DType, shape: [Int])] {
        var out: [(name: String, dtype: DType, shape: [Int])] = []
        switch format {
        case .intQuantized:
            out.append((name, .I8, shape))
        case .packQuantized:
            out.append((name + "_packed", .I32, [rows, storedRowBytes / 4]))
        }
        out.append((name + "_scale", scaleStorage, scaleShape))
        if !symmetric { out.append((name + "_zero_point", .I8, scaleShape)) }
        if format == .packQuantized { out.append((name + "_shape", .I64, [shape.count])) }
        return out
    }

    /// Output bytes of the weight's codes, scales, zero points and shape.
    func storedBytes(shape: [Int]) -> Int {
        rows * storedRowBytes + scaleCount * scaleBytes + zeroPointBytes
            + (format == .packQuantized ? 8 * shape.count : 0)
    }
}

extension QuantizeOptions.ScaleDtype {
    var storage: DType {
        switch self {
        case .f32: .F32
        case .f16: .F16
        case .bf16: .BF16
        }
    }
}

/// One input tensor and what happens to it.
struct TensorPlan: Sendable {
    let info: TensorInfo
    /// nil when the tensor is copied through.
    let layout: QuantLayout?
    let reason: String
    /// What the sensitivity guard measured and decided, when it changed the plan.
    var sensitivity: Manifest.Sensitivity? = nil

    var scaleName: String { info.name + "_scale" }
    var zeroPointName: String { info.name + "_zero_point" }
    var shapeName: String { info.name + "_shape" }
}

/// A piece of work that yields at most one zstd frame, in output order.
enum UnitKind: Sendable, Hashable {
    /// The output header; hashes the input's header.
    case header
    /// Copy `range` (relative to the tensor's data) of a tensor left alone.
    case copy(tensor: Int, range: Range<Int>)
    /// Per-tensor granularity: find the tensor's range before its tiles are quantized. No frame.
    case calibrate(tensor: Int)
    /// Quantize rows of a tensor; `tile` numbers the tiles of that tensor from 0.
    case tile(tensor: Int, rows: Range<Int>, tile: Int)
    case scales(tensor: Int)
    case zeroPoints(tensor: Int)
    /// `X.weight_shape` of a packed tensor: its shape as I64.
    case shape(tensor: Int)
}

struct Unit: Sendable, Hashable {
    let kind: UnitKind
    /// Source bytes the unit reads and hands to the writer for hashing.
    let inputBytes: Int
    /// Uncompressed bytes of the frame it produces.
    let outputBytes: Int
}

/// Everything decided about one input file before any tensor data is read.
struct FilePlan: Sendable {
    let sourcePath: String
    let sourceName: String
    let outputName: String
    let tensors: [TensorPlan]
    /// The complete output header (8-byte length + padded JSON).
    let outputHeader: [UInt8]
    let outputTensors: [TensorInfo]
    let units: [Unit]
    let inputHeaderBytes: Int
    let tilesPerTensor: [Int]
    /// The calibrator of every quantized tensor; nil for absmax (the fused path).
    let calibrator: (any Calibrator)?

    var outputRawSize: Int { outputHeader.count + (outputTensors.last?.dataRange.upperBound ?? 0) }
}

package enum Planner {
    /// Source bytes per work unit: large enough that a frame compresses well and scheduling costs nothing,
    /// small enough that a unit's buffers stay in the caches' neighbourhood and memory stays bounded.
    package static let unitBytes = 4 << 20

    static func plan(
        file: SafeTensorsFile, selection: Selection, options: QuantizeOptions, keep: Set<String>,
        guarded: [String: SensitivityGuard.Decision] = [:], name: String? = nil
    ) -> FilePlan {
        let header = file.header
        let names = Set(header.tensors.map(\.name))
        var tensors: [TensorPlan] = []
        for t in header.tensorsByOffset {
            switch selection.decide(t) {
            case .keep(let reason):
                tensors.append(TensorPlan(info: t, layout: nil, reason: reason))
            case .quantize(let reason):
                if let why = keepReason(t.name, names: names, keep: keep) {
                    tensors.append(TensorPlan(info: t, layout: nil, reason: why))
                    continue
                }
                if t.elementCount < options.minElements {
                    tensors.append(TensorPlan(info: t, layout: nil, reason: "has \(t.elementCount) elements, fewer "
                        + "than min_elements \(options.minElements)"))
                    continue
                }
                if let d = guarded[t.name] {
                    tensors.append(TensorPlan(info: t, layout: d.layout, reason: d.reason, sensitivity: d.record))
                    continue
                }
                let layout = QuantLayout(t, options: options)
                tensors.append(TensorPlan(info: t, layout: layout,
                                          reason: reason + (layout.adjustment.map { "; " + $0 } ?? "")))
            }
        }

        var outTensors: [(name: String, dtype: DType, shape: [Int])] = []
        for p in tensors {
            guard let l = p.layout else {
                outTensors.append((p.info.name, p.info.dtype, p.info.shape))
                continue
            }
            outTensors += l.stored(p.info.name, shape: p.info.shape)
        }
        let (headerBytes, outInfos) = HeaderWriter.encode(
            metadata: metadata(header.metadata, options: options), tensors: outTensors)

        var units = [Unit(kind: .header, inputBytes: header.dataStart, outputBytes: headerBytes.count)]
        var tiles = [Int](repeating: 0, count: tensors.count)
        for (i, p) in tensors.enumerated() {
            let bytes = p.info.byteCount
            guard let l = p.layout else {
                var start = 0
                while start < bytes {
                    let end = min(bytes, start + unitBytes)
                    units.append(Unit(kind: .copy(tensor: i, range: start..<end),
                                      inputBytes: end - start, outputBytes: end - start))
                    start = end
                }
                continue
            }
            if l.granularity == .tensor {
                units.append(Unit(kind: .calibrate(tensor: i), inputBytes: 0, outputBytes: 0))
            }
            let rowBytes = l.cols * p.info.dtype.bitsPerElement / 8
            let rowsPerTile = max(1, unitBytes / max(rowBytes, 1))
            var row = 0
            while row < l.rows {
                let end = min(l.rows, row + rowsPerTile)
                units.append(Unit(kind: .tile(tensor: i, rows: row..<end, tile: tiles[i]),
                                  inputBytes: (end - row) * rowBytes, outputBytes: (end - row) * l.storedRowBytes))
                tiles[i] += 1
                row = end
            }
            units.append(Unit(kind: .scales(tensor: i), inputBytes: 0, outputBytes: l.scaleCount * l.scaleBytes))
            if !l.symmetric {
                units.append(Unit(kind: .zeroPoints(tensor: i), inputBytes: 0, outputBytes: l.zeroPointBytes))
            }
            if l.format == .packQuantized {
                units.append(Unit(kind: .shape(tensor: i), inputBytes: 0, outputBytes: 8 * p.info.shape.count))
            }
        }
        let name = name ?? Path.base(of: file.path)
        return FilePlan(sourcePath: file.path, sourceName: name, outputName: name + ".zst", tensors: tensors,
                        outputHeader: headerBytes, outputTensors: outInfos, units: units,
                        inputHeaderBytes: header.dataStart, tilesPerTensor: tiles,
                        calibrator: options.calibration.calibrator(percentile: options.percentile))
    }

    /// A candidate stays in its dtype when its companion names are taken or the caller said so.
    private static func keepReason(_ name: String, names: Set<String>, keep: Set<String>) -> String? {
        if keep.contains(name) { return "holds non-finite values (kept by --keep-nonfinite)" }
        for companion in ["_scale", "_zero_point", "_packed", "_shape"].map({ name + $0 }) where names.contains(companion) {
            return "output name '\(companion)' is taken by another tensor"
        }
        return nil
    }

    /// The input's `__metadata__` plus the scheme and the quantd version (replacing older values of those keys).
    static func metadata(_ input: [(key: String, value: String)], options: QuantizeOptions)
        -> [(key: String, value: String)]
    {
        let added: [(key: String, value: String)] = [
            ("quantization_format", options.scheme.format.rawValue),
            ("quantization_scheme", options.schemeDescription),
            ("quantd_version", quantdVersion),
        ]
        let addedKeys = Set(added.map(\.key))
        return input.filter { !addedKeys.contains($0.key) } + added
    }
}

extension QuantizeOptions {
    /// "W8A16: int8 symmetric group-128 absmax", "W8A8: int8 symmetric per-channel absmax", ...
    public var schemeDescription: String {
        let g: String
        switch granularity {
        case .tensor: g = "per-tensor"
        case .channel: g = "per-channel"
        case .group: g = "group-\(groupSize)"
        }
        let scales = scaleDtype == .f32 ? "" : " \(scaleDtype.rawValue)-scales"
        return "\(scheme): int8 \(symmetric ? "symmetric" : "asymmetric") \(g) \(calibration.rawValue)" + scales
    }
}
