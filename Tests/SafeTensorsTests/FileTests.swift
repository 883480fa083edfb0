import Glibc
import SafeTensors
import Testing
import TestSupport

@Suite struct SafeTensorsFileReading {
    /// A writer-made file whose data bytes are numbered 0, 1, 2, ... (mod 256).
    static func makeFile(in folder: TempDir) throws -> (path: String, tensors: [TensorInfo], bytes: [UInt8]) {
        let (header, tensors) = HeaderWriter.encode(
            metadata: [(key: "format", value: "pt")],
            tensors: [(name: "a", dtype: .F32, shape: [2, 3]), (name: "empty", dtype: .F16, shape: [0]),
                      (name: "b", dtype: .BF16, shape: [5]), (name: "c", dtype: .I8, shape: [300])])
        let dataLength = tensors.last!.dataRange.upperBound
        let bytes = header + (0..<dataLength).map { UInt8(truncatingIfNeeded: $0) }
        return (try folder.write(bytes, as: "model.safetensors"), tensors, bytes)
    }

    @Test func openValidatesAgainstTheRealFileSize() throws {
        let folder = TempDir("safetensors-tests")
        defer { folder.remove() }
        let (path, tensors, bytes) = try Self.makeFile(in: folder)
        let file = try SafeTensorsFile(path: path)
        #expect(file.path == path)
        #expect(file.fileSize == bytes.count)
        #expect(file.header.tensors == tensors)
        #expect(file.header.dataStart + file.header.dataLength == bytes.count)
        #expect(file.header.metadata.first?.value == "pt")
    }

    @Test func readsReturnTheBytesOfEachRange() throws {
        let folder = TempDir("safetensors-tests")
        defer { folder.remove() }
        let (path, tensors, bytes) = try Self.makeFile(in: folder)
        let file = try SafeTensorsFile(path: path)
        let dataStart = file.header.dataStart
        for tensor in tensors {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: tensor.byteCount, alignment: 16)
            defer { buffer.deallocate() }
            try file.read(dataRange: tensor.dataRange, into: buffer)
            let expected = bytes[(dataStart + tensor.dataRange.lowerBound)..<(dataStart + tensor.dataRange.upperBound)]
            #expect(Array(buffer) == Array(expected), "tensor \(tensor.name)")
        }
        let prefix = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 8)
        defer { prefix.deallocate() }
        try file.read(absoluteOffset: 0, into: prefix)
        #expect(Array(prefix) == Array(bytes[..<8]))
        try file.read(absoluteOffset: bytes.count - 8, into: prefix)
        #expect(Array(prefix) == Array(bytes[(bytes.count - 8)...]))
    }

    @Test func concurrentReadsDoNotShareACursor() async throws {
        let folder = TempDir("safetensors-tests")
        defer { folder.remove() }
        let (path, _, bytes) = try Self.makeFile(in: folder)
        let file = try SafeTensorsFile(path: path)
        let starts = Array(stride(from: 0, to: bytes.count - 16, by: 7))
        let mismatches = await withTaskGroup(of: Int.self) { group in
            for start in starts {
                group.addTask {
                    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 16)
                    defer { buffer.deallocate() }
                    guard (try? file.read(absoluteOffset: start, into: buffer)) != nil else { return 1 }
                    return Array(buffer) == Array(bytes[start..<(start + 16)]) ? 0 : 1
                }
            }
            return await group.reduce(0, +)
        }
        #expect(mismatches == 0)
    }

    @Test func fileThatShrankAfterOpenGivesAnIOErrorNamingIt() throws {
        let folder = TempDir("safetensors-tests")
        defer { folder.remove() }
        let (path, tensors, _) = try Self.makeFile(in: folder)
        let file = try SafeTensorsFile(path: path)
        #expect(truncate(path, off_t(file.header.dataStart)) == 0)
        let last = tensors.last!
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: last.byteCount, alignment: 16)
        defer { buffer.deallocate() }
        do {
            try file.read(dataRange: last.dataRange, into: buffer)
            Issue.record("read past the end of a truncated file")
        } catch {
            #expect(error.kind == .io)
            #expect(error.description.hasPrefix(path + ": "))
            #expect(error.detail.contains("ended"))
        }
    }

    @Test(.enabled(if: Paths.hasMiniLM, "MiniLM fixture absent at \(Paths.minilm)"))
    func miniLMCheckpointParses() throws {
        let file = try SafeTensorsFile(path: Paths.minilm)
        #expect(file.header.tensors.count == 104)
        #expect(file.header.metadata.map(\.key) == ["format"])
        #expect(file.header.metadata.first?.value == "pt")
        #expect(file.header.dataStart + file.header.dataLength == file.fileSize)
        #expect(file.header.tensors.allSatisfy { $0.dtype == .F32 || $0.dtype == .I64 })
        let last = try #require(file.header.tensorsByOffset.last)
        #expect(last.dataRange.upperBound == file.header.dataLength)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: last.byteCount, alignment: 16)
        defer { buffer.deallocate() }
        try file.read(dataRange: last.dataRange, into: buffer)
        let floats = buffer.bindMemory(to: Float.self)
        #expect(floats.allSatisfy { $0.isFinite })
    }
}
