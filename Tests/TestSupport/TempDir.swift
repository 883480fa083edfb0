internal import Glibc
import QuantSystem
import SystemPackage

/// A fresh folder under /tmp for one test, removed with everything in it by `remove()` (call it in a `defer`).
/// Its static helpers read, write and list files anywhere, through QuantSystem.
public struct TempDir: Sendable {
    public let path: String

    public init(_ label: String = "quantd-test") {
        while true {
            let candidate = "/tmp/\(label)-\(String(UInt64.random(in: 0...UInt64.max), radix: 36))"
            do throws(SystemError) {
                try FileSystem.makeDirectory(FilePath(candidate), mode: [.ownerReadWriteExecute], existingOK: false)
                path = candidate
                return
            } catch let error where error.errno == .fileExists {
                continue
            } catch {
                preconditionFailure("cannot make a temporary folder: \(error)")
            }
        }
    }

    /// Removes the folder and everything in it, never following a symlink.
    public func remove() {
        try? FileSystem.removeTree(FilePath(path))
    }

    public subscript(_ name: String) -> String { path + "/" + name }

    /// Writes `bytes` to a new file `name` in the folder and returns its path.
    @discardableResult
    public func write(_ bytes: [UInt8], as name: String) throws -> String {
        try Self.write(bytes, to: self[name])
        return self[name]
    }

    /// Writes `text` (UTF-8) to a new file `name` in the folder and returns its path.
    @discardableResult
    public func write(_ text: String, as name: String) throws -> String {
        try write(Array(text.utf8), as: name)
    }

    /// Makes a sub-folder `name` and returns its path.
    public func makeFolder(_ name: String) throws -> String {
        try FileSystem.makeDirectory(FilePath(self[name]), existingOK: false)
        return self[name]
    }

    /// Makes a FIFO `name` in the folder and returns its path (QuantSystem makes none: Glibc's mkfifo).
    public func makeFIFO(_ name: String) throws -> String {
        guard mkfifo(self[name], 0o644) == 0 else { throw TestError("mkfifo \(self[name]): errno \(errno)") }
        return self[name]
    }

    /// Makes a symbolic link `name` pointing at `target` and returns its path (Glibc's symlink, as for FIFOs).
    public func makeSymlink(_ name: String, to target: String) throws -> String {
        guard symlink(target, self[name]) == 0 else { throw TestError("symlink \(self[name]): errno \(errno)") }
        return self[name]
    }

    /// Writes `bytes` to `path`, replacing what is there.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        let file = FilePath(path)
        let descriptor = try FileDescriptor.openFile(file, .writeOnly, options: [.create, .truncate],
                                                     permissions: [.ownerReadWrite, .groupRead, .otherRead])
        defer { try? descriptor.close() }
        try bytes.withUnsafeBytes { try descriptor.writeFully($0, path: file) }
    }

    /// The whole of the regular file at `path` (a symlink is not followed).
    public static func read(_ path: String) throws -> [UInt8] {
        try FileSystem.readFile(FilePath(path), limit: .max)
    }

    /// Names in a folder, sorted, without "." and ".."; none when it cannot be listed.
    public static func list(_ path: String) -> [String] {
        ((try? FileSystem.list(FilePath(path))) ?? []).sorted()
    }

    /// Whether anything is at `path` (a symlink counts, followed or not).
    public static func exists(_ path: String) -> Bool {
        FileSystem.exists(FilePath(path))
    }
}

public struct TestError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
