/// Why a safetensors file, header or shard index was refused, or why reading it failed.
///
/// Every refusal names the file, and the tensor when one is to blame, so that a quarantined
/// checkpoint's error report says exactly what is wrong with it.
public struct SafeTensorsError: Error, Sendable, CustomStringConvertible {
    /// One case per rule the reader enforces; the raw value is stable and goes into error reports.
    public enum Kind: String, Sendable, CaseIterable {
        // The 8-byte length prefix.
        /// The file is shorter than the 8-byte length prefix.
        case fileTooSmall
        /// The header length N is 0.
        case headerLengthZero
        /// N exceeds `HeaderLimits.maxHeaderBytes`.
        case headerTooLarge
        /// 8 + N reaches past the end of the file.
        case headerPastEnd

        // The JSON text.
        /// The header bytes are not valid UTF-8.
        case notUTF8
        /// The header is not JSON (a syntax error).
        case invalidJSON
        /// A string runs to the end of the header without its closing quote.
        case unterminatedString
        /// A string holds a raw control character (below U+0020), which JSON forbids.
        case invalidString
        /// A backslash escape is unknown or a `\u` escape is not four hex digits.
        case invalidEscape
        /// A `\u` escape is a lone or misordered UTF-16 surrogate.
        case invalidSurrogate
        /// A number is malformed, negative, fractional, has an exponent or a leading zero, or does not fit `Int`.
        case invalidNumber
        /// Arrays and objects are nested deeper than `HeaderLimits.maxNestingDepth`.
        case nestingTooDeep
        /// The top-level JSON value is not an object.
        case notAnObject
        /// Bytes other than padding follow the top-level object.
        case trailingGarbage
        /// Bytes around the object are padding other than spaces (NUL, tab, newline, carriage return).
        case badPadding

        // The header's schema.
        /// Two tensors share a name.
        case duplicateTensor
        /// A key appears twice inside one object (a tensor entry, `__metadata__`, the top level of an index).
        case duplicateKey
        /// A tensor entry has a key other than dtype, shape and data_offsets.
        case unknownKey
        /// A tensor entry lacks dtype, shape or data_offsets (or an index lacks weight_map).
        case missingField
        /// A tensor entry is not an object, or its dtype is not a string.
        case invalidEntry
        /// `__metadata__` is not an object of strings.
        case invalidMetadata
        /// The dtype is not one of the safetensors dtypes.
        case unknownDType
        /// The shape is not an array of integers.
        case invalidShape
        /// The shape has more dimensions than `HeaderLimits.maxRank`.
        case rankTooLarge
        /// The header has more tensors than `HeaderLimits.maxTensors`.
        case tooManyTensors
        /// The element count, or the element count times the dtype's bits, overflows `Int`.
        case sizeOverflow
        /// The tensor's size in bits is not a whole number of bytes (sub-byte dtypes).
        case fractionalBytes
        /// data_offsets is not an array of exactly two integers.
        case invalidOffsets
        /// data_offsets has begin > end.
        case offsetsReversed
        /// end - begin differs from the byte count that shape and dtype call for.
        case sizeMismatch

        // The layout of the data buffer.
        /// The first tensor in offset order does not start at 0.
        case firstNotAtZero
        /// A tensor starts after the previous one (in offset order) ended: unaccounted bytes.
        case gap
        /// A tensor starts before the previous one (in offset order) ended.
        case overlap
        /// The data buffer is shorter than the last tensor's end.
        case truncatedData
        /// The data buffer is longer than the last tensor's end.
        case trailingBytes

        // Shard indexes.
        /// A shard index is not shaped as {"metadata": {...}, "weight_map": {tensor: file}}.
        case invalidIndex
        /// A weight_map file name could leave the checkpoint's folder or is not a plain file name.
        case invalidShardPath

        // Files and reads.
        /// The path is a symlink, FIFO, folder or anything else than a regular file.
        case notRegularFile
        /// A requested byte range lies outside the data buffer or the file.
        case outOfBounds
        /// A system call failed, or the file ended early.
        case io
        /// The file does not exist.
        case notFound
    }

    public var kind: Kind
    /// The path (or name) of the file the error is about.
    public var file: String
    /// The tensor to blame, when there is one.
    public var tensor: String?
    /// What exactly is wrong, with the values involved.
    public var detail: String
    /// The errno of a failed system call (io, notFound, notRegularFile).
    public var errno: Int32?

    public init(_ kind: Kind, file: String, tensor: String? = nil, _ detail: String, errno: Int32? = nil) {
        self.kind = kind
        self.file = file
        self.tensor = tensor
        self.detail = detail
        self.errno = errno
    }

    /// `"<file>: tensor '<name>': <detail>"`, or `"<file>: <detail>"`. Control characters in the file and tensor
    /// names are escaped and very long names shortened, so a hostile name cannot forge log lines.
    public var description: String {
        if let tensor {
            return "\(MessageText.sanitized(file)): tensor \(Self.quoted(tensor)): \(detail)"
        }
        return "\(MessageText.sanitized(file)): \(detail)"
    }

    /// A name from the file, in single quotes, made safe for a one-line message.
    static func quoted(_ name: String) -> String {
        "'\(MessageText.sanitized(name))'"
    }
}
