/// Writes safetensors headers the way the reference writer does: compact JSON, `{` first, padded with spaces.
public enum HeaderWriter {
    /// Serializes a header: the 8-byte little-endian length followed by the JSON padded with spaces to a multiple
    /// of 8. Tensors get consecutive data_offsets in the given order (each byteCount = elements x dtype size).
    /// `__metadata__` first when non-empty. Strings written by `JSONText` (quotes, backslash, control chars as
    /// \u00XX; non-ASCII written as UTF-8). Output must be deterministic.
    ///
    /// The caller's contract (checked with preconditions, since breaking it would write a file no reader accepts):
    /// tensor names distinct and not `__metadata__`, metadata keys distinct, dimensions non-negative, sizes that
    /// fit `Int` and are whole bytes.
    public static func encode(metadata: [(key: String, value: String)],
                              tensors: [(name: String, dtype: DType, shape: [Int])])
        -> (bytes: [UInt8], tensors: [TensorInfo]) {
        var json: [UInt8] = [.openBrace]
        if !metadata.isEmpty {
            JSONText.appendString("__metadata__", to: &json)
            json.append(contentsOf: ":{".utf8)
            var keys = Set<String>()
            for (index, entry) in metadata.enumerated() {
                precondition(keys.insert(entry.key).inserted, "duplicate metadata key '\(entry.key)'")
                if index > 0 {
                    json.append(.comma)
                }
                JSONText.appendString(entry.key, to: &json)
                json.append(.colon)
                JSONText.appendString(entry.value, to: &json)
            }
            json.append(.closeBrace)
        }
        var infos: [TensorInfo] = []
        infos.reserveCapacity(tensors.count)
        var names = Set<String>(minimumCapacity: tensors.count)
        var offset = 0
        for tensor in tensors {
            precondition(tensor.name != "__metadata__", "a tensor cannot be named __metadata__")
            precondition(names.insert(tensor.name).inserted, "duplicate tensor name '\(tensor.name)'")
            let byteCount = byteCount(shape: tensor.shape, dtype: tensor.dtype)
            let (end, overflow) = offset.addingReportingOverflow(byteCount)
            precondition(!overflow, "total data size overflows Int")
            if json.count > 1 {
                json.append(.comma)
            }
            JSONText.appendString(tensor.name, to: &json)
            json.append(contentsOf: ":{\"dtype\":".utf8)
            JSONText.appendString(tensor.dtype.rawValue, to: &json)
            json.append(contentsOf: ",\"shape\":[".utf8)
            for (index, dimension) in tensor.shape.enumerated() {
                if index > 0 {
                    json.append(.comma)
                }
                json.append(contentsOf: String(dimension).utf8)
            }
            json.append(contentsOf: "],\"data_offsets\":[\(offset),\(end)]}".utf8)
            infos.append(TensorInfo(name: tensor.name, dtype: tensor.dtype, shape: tensor.shape,
                                    dataRange: offset..<end))
            offset = end
        }
        json.append(.closeBrace)
        while json.count % 8 != 0 {
            json.append(.space)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 + json.count)
        let length = UInt64(json.count)
        for shift in stride(from: 0, to: 64, by: 8) {
            bytes.append(UInt8(truncatingIfNeeded: length >> UInt64(shift)))
        }
        bytes.append(contentsOf: json)
        return (bytes, infos)
    }

    /// Bytes of a tensor; traps on a negative dimension, overflow or a fractional byte count.
    private static func byteCount(shape: [Int], dtype: DType) -> Int {
        var elements = 1
        for dimension in shape {
            precondition(dimension >= 0, "negative dimension in shape \(shape)")
            let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
            precondition(!overflow, "element count of shape \(shape) overflows Int")
            elements = product
        }
        let (bits, overflow) = elements.multipliedReportingOverflow(by: dtype.bitsPerElement)
        precondition(!overflow && bits % 8 == 0, "shape \(shape) of \(dtype) is not a whole number of bytes")
        return bits / 8
    }
}
