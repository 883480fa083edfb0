public import QuantSystem
import SystemPackage
import FoundationEssentials


/// The system layer's calls as the spool uses them: paths as the spool's strings (a folder joined with an
/// entry name), failures as the system layer's `SystemError`.
enum FS {
    static func lstatEntry(_ path: String) throws(SystemError) -> Entry { try FileSystem.entry(FilePath(path)) }

    static func exists(_ path: String) -> Bool { FileSystem.exists(FilePath(path)) }

    /// Names in a folder (without "." and ".."), as raw bytes: a name need not be valid UTF-8.
    static func listNames(_ path: String, limit: Int = .max) throws(SystemError) -> [[UInt8]] {
        try FileSystem.listNames(FilePath(path), limit: limit)
    }

    static func makeDirectory(_ path: String, mode: FilePermissions = [.ownerReadWriteExecute, .groupReadExecute,
        .otherReadExecute]) throws(SystemError)
    {
        try FileSystem.makeDirectory(FilePath(path), mode: mode)
    }

    /// `rename` that refuses to replace an existing target, so that no daemon ever overwrites a file another
    /// one put there (the system layer falls back to link+unlink where the filesystem lacks RENAME_NOREPLACE).
    static func renameNoReplace(_ from: String, _ to: String) throws(SystemError) {
        try FileSystem.renameNoReplace(FilePath(from), FilePath(to))
    }

    /// The same for a source path given as raw bytes (a name that is not valid UTF-8).
    static func renameNoReplace(_ from: [UInt8], _ to: String) throws(SystemError) {
        try FileSystem.renameNoReplace(FilePath(platformString: from.map { CChar(bitPattern: $0) } + [0]), FilePath(to))
    }

    static func rename(_ from: String, _ to: String) throws(SystemError) {
        try FileSystem.rename(FilePath(from), FilePath(to))
    }

    static func unlink(_ path: String) throws(SystemError) { try FileSystem.unlink(FilePath(path)) }

    /// fsync a folder, which makes the renames and creations inside it durable.
    static func syncDirectory(_ path: String) throws(SystemError) { try FileSystem.sync(FilePath(path)) }

    /// Writes `bytes` to `path` through a temporary sibling (`temp`, or `path.tmp-<pid>`), fsynced, then
    /// renamed over `path`.
    static func writeAtomically(_ bytes: [UInt8], to path: String, temp: String? = nil,
                                mode: FilePermissions = [.ownerReadWrite, .groupRead, .otherRead]) throws(SystemError) {
        try FileSystem.writeAtomically(bytes, to: FilePath(path), temp: temp.map { FilePath($0) }, mode: mode)
    }

    /// Writes `bytes` to a new file `path` through `temp` (fsynced), refusing to replace one (EEXIST).
    static func writeNew(_ bytes: [UInt8], to path: String, temp: String) throws(SystemError) {
        try FileSystem.writeNew(bytes, to: FilePath(path), temp: FilePath(temp))
    }

    /// A small regular file whole; refused when larger than `limit`.
    static func readFile(_ path: String, limit: Int = 16 << 20) throws(SystemError) -> [UInt8] {
        try FileSystem.readFile(FilePath(path), limit: limit)
    }

    /// Removes a file, or a folder with everything in it, never following symlinks.
    static func removeTree(_ path: String) throws(SystemError) { try FileSystem.removeTree(FilePath(path)) }

    /// The largest mtime, the total size and the number of entries of a folder and the entries in it (one
    /// level: the engine reads no deeper), at most `limit` of them: unchanged figures over the settle window
    /// mean nobody is writing into it.
    static func treeSignature(_ path: String, limit: Int = 1 << 20) throws(SystemError) -> Entry {
        let folder = FilePath(path)
        var total = try FileSystem.entry(folder)
        guard total.kind == .directory else { return total }
        for name in try FileSystem.listNames(folder, limit: limit) {
            let child = try FileSystem.entry(folder.appending(FileSystem.component(name)))
            total.size += child.size + 1
            total.mtimeNanoseconds = max(total.mtimeNanoseconds, child.mtimeNanoseconds)
        }
        return total
    }

    static func hostName() -> String { FileSystem.hostName() }

    /// Seconds on the monotonic clock, for deadlines.
    static func monotonicSeconds() -> Double { FileSystem.monotonicSeconds() }

    /// A line on standard error, for what must be seen even when the log goes to a file.
    static func printError(_ text: String) { FileSystem.printError(text) }

    /// Seconds since the epoch, for metrics.
    static func unixSeconds() -> Double { Date.now.timeIntervalSince1970 }
}
