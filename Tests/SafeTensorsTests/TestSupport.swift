import SafeTensors
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fresh folder under /tmp for one test, removed with what the test put in it.
final class TemporaryFolder {
    let path: String
    private var entries: [String] = []

    init() {
        var template = Array("/tmp/safetensors-tests-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed: errno \(errno)")
        path = String(cString: made!)
    }

    deinit {
        for entry in entries.reversed() {
            if unlink(entry) != 0 {
                rmdir(entry)
            }
        }
        rmdir(path)
    }

    /// Writes `bytes` to a new file `name` in the folder and returns its path.
    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let file = add(name)
        let descriptor = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        precondition(descriptor >= 0, "open \(file) failed: errno \(errno)")
        defer { close(descriptor) }
        bytes.withUnsafeBytes { buffer in
            var done = 0
            while done < buffer.count {
                let count = Glibc.write(descriptor, buffer.baseAddress! + done, buffer.count - done)
                precondition(count > 0, "write \(file) failed: errno \(errno)")
                done += count
            }
        }
        return file
    }

    /// Makes a FIFO `name` in the folder and returns its path.
    func makeFIFO(_ name: String) -> String {
        let file = add(name)
        precondition(mkfifo(file, 0o644) == 0, "mkfifo failed: errno \(errno)")
        return file
    }

    /// Makes a symbolic link `name` pointing at `target` and returns its path.
    func makeSymlink(_ name: String, to target: String) -> String {
        let file = add(name)
        precondition(symlink(target, file) == 0, "symlink failed: errno \(errno)")
        return file
    }

    /// Makes a sub-folder `name` and returns its path.
    func makeFolder(_ name: String) -> String {
        let folder = add(name)
        precondition(mkdir(folder, 0o755) == 0, "mkdir failed: errno \(errno)")
        return folder
    }

    private func add(_ name: String) -> String {
        let file = path + "/" + name
        entries.append(file)
        return file
    }
}

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
    let folder = TemporaryFolder()
    let path = folder.write("model.safetensors", bytes)
    return expectRefusal(kind, path: path, limits: limits, sourceLocation: sourceLocation)
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
