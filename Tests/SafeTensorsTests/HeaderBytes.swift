import SafeTensors
import Testing
import TestSupport

/// The bytes of a safetensors file: the 8-byte length of `json` (padded with spaces to a multiple of 8 when `pad`),
/// the JSON, then `data` bytes numbered 0, 1, 2, ... (mod 256).
func safetensors(_ json: String, data: Int = 0, pad: Bool = true) -> [UInt8] {
    safetensors(bytes: Array(json.utf8), data: data, pad: pad)
}

func safetensors(bytes json: [UInt8], data: Int = 0, pad: Bool = true) -> [UInt8] {
    var json = json
    while pad, json.count % 8 != 0 {
        json.append(UInt8(ascii: " "))
    }
    return lengthPrefix(UInt64(json.count)) + json + (0..<data).map { UInt8(truncatingIfNeeded: $0) }
}

/// The 8-byte little-endian length prefix.
func lengthPrefix(_ length: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: length >> (8 * UInt64($0))) }
}

/// The JSON of one F32 tensor entry.
func entry(_ shape: [Int], _ begin: Int, _ end: Int) -> String {
    entry("F32", shape, begin, end)
}

/// The JSON of one tensor entry.
func entry(_ dtype: String, _ shape: [Int], _ begin: Int, _ end: Int) -> String {
    #"{"dtype":"\#(dtype)","shape":\#(shape),"data_offsets":[\#(begin),\#(end)]}"#
}

/// Writes `bytes` to a file, opens it, and expects the open to fail with `kind` in a message naming the file.
@discardableResult
func expectRefusal(_ kind: SafeTensorsError.Kind, _ bytes: [UInt8], limits: HeaderLimits = HeaderLimits(),
                   sourceLocation: SourceLocation = #_sourceLocation) -> SafeTensorsError? {
    let folder = TempDir("safetensors-tests")
    defer { folder.remove() }
    do {
        let path = try folder.write(bytes, as: "model.safetensors")
        return expectRefusal(kind, path: path, limits: limits, sourceLocation: sourceLocation)
    } catch {
        Issue.record(error, sourceLocation: sourceLocation)
        return nil
    }
}

/// Opens `path` and expects the open to fail with `kind` in a message naming the file.
@discardableResult
func expectRefusal(_ kind: SafeTensorsError.Kind, path: String, limits: HeaderLimits = HeaderLimits(),
                   sourceLocation: SourceLocation = #_sourceLocation) -> SafeTensorsError? {
    do {
        let file = try SafeTensorsFile(path: path, limits: limits)
        Issue.record("accepted, with \(file.header.tensors.count) tensors; expected \(kind)",
                     sourceLocation: sourceLocation)
        return nil
    } catch {
        #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
        #expect(error.file == path, sourceLocation: sourceLocation)
        #expect(error.description.hasPrefix(path + ": "), "\(error)", sourceLocation: sourceLocation)
        return error
    }
}

/// Parses header text directly (no file) and returns the error it must raise.
func parseError(_ json: String, dataLength: Int? = nil, limits: HeaderLimits = HeaderLimits()) -> SafeTensorsError? {
    let bytes = Array(json.utf8)
    return bytes.withUnsafeBytes { buffer -> SafeTensorsError? in
        do throws(SafeTensorsError) {
            _ = try Header.parse(json: buffer, dataLength: dataLength, file: "mem.safetensors", limits: limits)
            return nil
        } catch {
            return error
        }
    }
}

/// Parses header text directly (no file); a failure is recorded and rethrown.
func parse(_ json: String, dataLength: Int? = nil) throws -> Header {
    let bytes = Array(json.utf8)
    return try bytes.withUnsafeBytes { buffer in
        try Header.parse(json: buffer, dataLength: dataLength, file: "mem.safetensors")
    }
}
