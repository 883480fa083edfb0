import SafeTensors
#if canImport(Glibc)
import Glibc
#endif

/// The file the reader is run on: one per fuzzing process, rewritten for each input (tmpfs when there is one).
private let scratchPath: String = {
    let folder = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
    return "\(folder)/quantd-fuzz-\(getpid()).safetensors"
}()

/// Small bounds, so that every input is judged quickly; the code paths are the same as with the defaults.
private let limits: HeaderLimits = {
    var limits = HeaderLimits()
    limits.maxHeaderBytes = 1 << 20
    limits.maxTensors = 4096
    limits.maxRank = 8
    return limits
}()

/// libFuzzer's entry point: the bytes go, as a whole safetensors file, through the strict reader (open, header
/// length, JSON header, layout, then every tensor read back), through the header parser alone in stream mode,
/// and as a shard index through its parser. A refusal is a thrown error; anything else (a trap, an ASan report,
/// a broken invariant of an accepted header) is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    readWhole(bytes)
    parseStreamed(bytes)
    _ = try? ShardIndex.parse(bytes, file: "fuzz.index.json")
    return 0
}

private func readWhole(_ bytes: UnsafeRawBufferPointer) {
    let fd = open(scratchPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    precondition(fd >= 0, "cannot write \(scratchPath)")
    var done = 0
    while done < bytes.count {
        let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
        precondition(n > 0, "cannot write \(scratchPath)")
        done += n
    }
    close(fd)
    guard let file = try? SafeTensorsFile(path: scratchPath, limits: limits) else { return }
    let header = file.header
    check(header, dataLength: bytes.count - header.dataStart)
    precondition(header.dataStart + header.dataLength == file.fileSize, "the data buffer ends at the file's end")
    for tensor in header.tensors {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: tensor.byteCount, alignment: 16)
        defer { buffer.deallocate() }
        do {
            try file.read(dataRange: tensor.dataRange, into: buffer)
        } catch {
            preconditionFailure("an accepted tensor cannot be read: \(error)")
        }
    }
}

private func parseStreamed(_ bytes: UnsafeRawBufferPointer) {
    guard let length = try? Header.headerLength(prefix: bytes, fileSize: nil, file: "fuzz", limits: limits),
          length <= bytes.count - 8 else { return }
    let json = UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + length)])
    guard let header = try? Header.parse(json: json, dataLength: nil, file: "fuzz", limits: limits) else { return }
    check(header, dataLength: header.dataLength)
}

/// What an accepted header promises: bounded, and its tensors tile the data buffer exactly.
private func check(_ header: Header, dataLength: Int) {
    precondition(header.tensors.count <= limits.maxTensors, "tensor bound")
    var covered = 0
    for tensor in header.tensors {
        precondition(tensor.shape.count <= limits.maxRank, "rank bound")
        precondition(tensor.shape.allSatisfy { $0 >= 0 }, "non-negative dimensions")
        precondition(tensor.elementCount * tensor.dtype.bitsPerElement == tensor.byteCount * 8, "size")
        precondition(tensor.dataRange.lowerBound >= 0 && tensor.dataRange.upperBound <= dataLength, "in bounds")
        covered += tensor.byteCount
    }
    precondition(covered == dataLength, "tensors cover the data buffer exactly")
    precondition(header.dataLength == dataLength, "data length")
}

@_silgen_name("LLVMFuzzerRunDriver")
private func runDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

/// SwiftPM links an executable target's entry point as `main` under the name `<Module>_main`; here it hands
/// the command line to libFuzzer's driver (libFuzzer's own `main` is displaced by SwiftPM's alias).
@_cdecl("FuzzHeader_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    atexit { unlink(scratchPath) }
    return runDriver(&count, &arguments) { data, size in fuzzOneInput(data, size) }
}
