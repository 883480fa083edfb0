extension Header {
    /// Reads the 8-byte prefix: returns N after checking it against limits (and against `fileSize` when given).
    public static func headerLength(prefix: UnsafeRawBufferPointer, fileSize: Int?, file: String,
                                    limits: HeaderLimits = HeaderLimits()) throws(SafeTensorsError) -> Int {
        if let fileSize, fileSize < 8 {
            throw SafeTensorsError(.fileTooSmall, file: file,
                                   "file holds \(fileSize) bytes, fewer than the 8-byte header length")
        }
        guard prefix.count >= 8 else {
            throw SafeTensorsError(.fileTooSmall, file: file,
                                   "only \(prefix.count) bytes, fewer than the 8-byte header length")
        }
        var length: UInt64 = 0
        for index in (0..<8).reversed() {
            length = length << 8 | UInt64(prefix[index])
        }
        guard length > 0 else {
            throw SafeTensorsError(.headerLengthZero, file: file, "header length is 0")
        }
        guard length <= UInt64(max(0, limits.maxHeaderBytes)) else {
            throw SafeTensorsError(.headerTooLarge, file: file,
                                   "header length \(length) exceeds the limit of \(limits.maxHeaderBytes) bytes")
        }
        let n = Int(length)
        if let fileSize, n > fileSize - 8 {
            throw SafeTensorsError(.headerPastEnd, file: file, "header of \(n) bytes ends at byte \(8 + n), "
                                       + "past the end of the \(fileSize)-byte file")
        }
        return n
    }

    /// Parses the N JSON bytes; `dataLength` is the real data buffer length when known (file size - 8 - N),
    /// nil when parsing from a stream (then dataLength = last end).
    ///
    /// The text may start and end with spaces (the reference writer pads with them); NUL, tab, CR or LF there is
    /// refused as `badPadding`. Inside the object any JSON whitespace is accepted.
    /// Syntax is checked over the whole text first, then the schema (entries, metadata, sizes), then the layout
    /// of the data buffer. Memory use is proportional to the header's size: shapes stop at `maxRank`, the tensor
    /// list at `maxTensors`, and no tensor data is touched.
    public static func parse(json: UnsafeRawBufferPointer, dataLength: Int?, file: String,
                             limits: HeaderLimits = HeaderLimits()) throws(SafeTensorsError) -> Header {
        guard !json.isEmpty else {
            throw SafeTensorsError(.headerLengthZero, file: file, "header length is 0")
        }
        guard json.count <= limits.maxHeaderBytes else {
            throw SafeTensorsError(.headerTooLarge, file: file,
                                   "header length \(json.count) exceeds the limit of \(limits.maxHeaderBytes) bytes")
        }
        var scanner = JSONScanner(json, file: file)
        try scanner.validateDocument(maxDepth: limits.maxNestingDepth)
        scanner.rewindToObject()
        _ = scanner.enterObject()

        var metadata: [(key: String, value: String)] = []
        var sawMetadata = false
        var tensors: [TensorInfo] = []
        var names = Set<String>()
        var isFirst = true
        while let key = try scanner.nextKey(isFirst: &isFirst) {
            if key == "__metadata__" {
                guard !sawMetadata else {
                    throw SafeTensorsError(.duplicateKey, file: file, "'__metadata__' appears twice")
                }
                sawMetadata = true
                metadata = try parseMetadata(&scanner)
                continue
            }
            guard names.insert(key).inserted else {
                throw SafeTensorsError(.duplicateTensor, file: file, tensor: key, "tensor name appears twice")
            }
            guard tensors.count < limits.maxTensors else {
                throw SafeTensorsError(.tooManyTensors, file: file,
                                       "header has more than \(limits.maxTensors) tensors (the limit)")
            }
            do throws(SafeTensorsError) {
                tensors.append(try parseEntry(name: key, &scanner, limits: limits))
            } catch {
                var error = error
                error.tensor = key
                throw error
            }
        }
        let end = try checkLayout(tensors, dataLength: dataLength, file: file)
        return Header(metadata: metadata, tensors: tensors, dataStart: 8 + json.count, dataLength: end)
    }

    private static func parseMetadata(_ scanner: inout JSONScanner) throws(SafeTensorsError)
        -> [(key: String, value: String)] {
        let file = scanner.file
        guard scanner.enterObject() else {
            throw SafeTensorsError(.invalidMetadata, file: file,
                                   "'__metadata__' is \(scanner.describeNextValue()), not an object of strings")
        }
        var entries: [(key: String, value: String)] = []
        var keys = Set<String>()
        var isFirst = true
        while let key = try scanner.nextKey(isFirst: &isFirst) {
            guard keys.insert(key).inserted else {
                throw SafeTensorsError(.duplicateKey, file: file,
                                       "'__metadata__' key \(SafeTensorsError.quoted(key)) appears twice")
            }
            guard let value = try scanner.readString() else {
                throw SafeTensorsError(.invalidMetadata, file: file,
                                       "'__metadata__' value of \(SafeTensorsError.quoted(key)) is "
                                           + "\(scanner.describeNextValue()), not a string")
            }
            entries.append((key, value))
        }
        return entries
    }

    /// Reads one `{"dtype", "shape", "data_offsets"}` entry and checks its sizes.
    private static func parseEntry(name: String, _ scanner: inout JSONScanner,
                                   limits: HeaderLimits) throws(SafeTensorsError) -> TensorInfo {
        let file = scanner.file
        guard scanner.enterObject() else {
            throw SafeTensorsError(.invalidEntry, file: file, "entry is \(scanner.describeNextValue()), not an object")
        }
        var dtype: DType?
        var shape: [Int]?
        var offsets: [Int]?
        var isFirst = true
        while let key = try scanner.nextKey(isFirst: &isFirst) {
            func duplicate() -> SafeTensorsError {
                SafeTensorsError(.duplicateKey, file: file, "key '\(key)' appears twice in the entry")
            }
            switch key {
            case "dtype":
                guard dtype == nil else { throw duplicate() }
                guard let text = try scanner.readString() else {
                    throw SafeTensorsError(.invalidEntry, file: file,
                                           "dtype is \(scanner.describeNextValue()), not a string")
                }
                guard let value = DType(rawValue: text) else {
                    throw SafeTensorsError(.unknownDType, file: file, "unknown dtype \(SafeTensorsError.quoted(text))")
                }
                dtype = value
            case "shape":
                guard shape == nil else { throw duplicate() }
                shape = try readIntegers(&scanner, field: "shape", kind: .invalidShape, limit: limits.maxRank) {
                    SafeTensorsError(.rankTooLarge, file: file,
                                     "shape has more than \(limits.maxRank) dimensions (the limit)")
                }
            case "data_offsets":
                guard offsets == nil else { throw duplicate() }
                let pair = try readIntegers(&scanner, field: "data_offsets", kind: .invalidOffsets, limit: 2) {
                    SafeTensorsError(.invalidOffsets, file: file,
                                     "data_offsets has more than 2 elements (it must be [begin, end])")
                }
                guard pair.count == 2 else {
                    throw SafeTensorsError(.invalidOffsets, file: file,
                                           "data_offsets has \(pair.count) elements (it must be [begin, end])")
                }
                offsets = pair
            default:
                throw SafeTensorsError(.unknownKey, file: file, "unknown key \(SafeTensorsError.quoted(key)) "
                                           + "(an entry holds only dtype, shape and data_offsets)")
            }
        }
        guard let dtype else { throw SafeTensorsError(.missingField, file: file, "entry has no dtype") }
        guard let shape else { throw SafeTensorsError(.missingField, file: file, "entry has no shape") }
        guard let offsets else { throw SafeTensorsError(.missingField, file: file, "entry has no data_offsets") }

        var described: String { "shape \(shape) of \(dtype.rawValue)" }
        var elements = 1
        for dimension in shape {
            let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
            guard !overflow else {
                throw SafeTensorsError(.sizeOverflow, file: file, "element count of \(described) overflows Int")
            }
            elements = product
        }
        let (bits, overflow) = elements.multipliedReportingOverflow(by: dtype.bitsPerElement)
        guard !overflow else {
            throw SafeTensorsError(.sizeOverflow, file: file, "size in bits of \(described) overflows Int")
        }
        guard bits % 8 == 0 else {
            throw SafeTensorsError(.fractionalBytes, file: file,
                                   "\(described) holds \(bits) bits, not a whole number of bytes")
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin <= end else {
            throw SafeTensorsError(.offsetsReversed, file: file, "data_offsets [\(begin), \(end)] have begin > end")
        }
        guard end - begin == bits / 8 else {
            throw SafeTensorsError(.sizeMismatch, file: file, "data_offsets [\(begin), \(end)] hold \(end - begin) "
                                       + "bytes but \(described) needs \(bits / 8)")
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, dataRange: begin..<end)
    }

    /// Reads an array of non-negative integers, refusing (with `tooLong`) before it grows past `limit`.
    private static func readIntegers(_ scanner: inout JSONScanner, field: String, kind: SafeTensorsError.Kind,
                                     limit: Int, tooLong: () -> SafeTensorsError) throws(SafeTensorsError) -> [Int] {
        guard scanner.enterArray() else {
            throw SafeTensorsError(kind, file: scanner.file,
                                   "\(field) is \(scanner.describeNextValue()), not an array of integers")
        }
        var values: [Int] = []
        var isFirst = true
        while try scanner.nextElement(isFirst: &isFirst) {
            guard values.count < limit else { throw tooLong() }
            guard let value = try scanner.readInteger("\(field) element \(values.count)") else {
                throw SafeTensorsError(kind, file: scanner.file, "\(field) element \(values.count) is "
                                           + "\(scanner.describeNextValue()), not an integer")
            }
            values.append(value)
        }
        return values
    }

    /// Checks that the tensors, in offset order, tile the data buffer from 0 with no gap or overlap, and that
    /// the buffer (when its length is known) ends exactly at the last tensor's end. Returns that end.
    private static func checkLayout(_ tensors: [TensorInfo], dataLength: Int?,
                                    file: String) throws(SafeTensorsError) -> Int {
        // (begin, end, index), sorted like the reference reader: by offsets; the index makes the order total.
        var spans = tensors.indices.map { (tensors[$0].dataRange.lowerBound, tensors[$0].dataRange.upperBound, $0) }
        spans.sort { $0 < $1 }
        var end = 0
        var previous: Int?
        for (begin, spanEnd, index) in spans {
            let name = tensors[index].name
            if begin > end {
                guard let previous else {
                    throw SafeTensorsError(.firstNotAtZero, file: file, tensor: name,
                                           "first tensor in offset order starts at \(begin), not 0")
                }
                throw SafeTensorsError(.gap, file: file, tensor: name,
                                       "starts at \(begin) but \(SafeTensorsError.quoted(tensors[previous].name)) "
                                           + "ends at \(end): \(begin - end) bytes belong to no tensor")
            }
            if begin < end, let previous {
                throw SafeTensorsError(.overlap, file: file, tensor: name,
                                       "starts at \(begin) but \(SafeTensorsError.quoted(tensors[previous].name)) "
                                           + "ends at \(end): \(end - begin) bytes overlap")
            }
            end = spanEnd
            previous = index
        }
        if let dataLength {
            if dataLength < end {
                throw SafeTensorsError(.truncatedData, file: file, "data buffer holds \(dataLength) bytes "
                                           + "but the tensors need \(end): the file is truncated")
            }
            if dataLength > end {
                throw SafeTensorsError(.trailingBytes, file: file, "data buffer holds \(dataLength) bytes "
                                           + "but the tensors end at \(end): \(dataLength - end) trailing bytes")
            }
        }
        return end
    }
}
