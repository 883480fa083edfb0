internal import Glibc
import FoundationEssentials
import QuantEngine

/// The spool folders and the moves between them. Every move is a `rename` on one filesystem
/// that refuses to replace anything (RENAME_NOREPLACE); the claim into `active/` is the rename,
/// so that several daemons can share a spool and each entry has one owner.
public struct Spool: Sendable {
    public let root: String
    /// Prefix of this daemon's claims: `active/<instance>.<NAME>`.
    public let instance: String

    public init(root: String, instance: String) {
        var root = root
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        self.root = root
        self.instance = instance
    }

    public var incoming: String { root + "/incoming" }
    public var active: String { root + "/active" }
    public var out: String { root + "/out" }
    public var done: String { root + "/done" }
    public var failed: String { root + "/failed" }
    static let folders = ["incoming", "active", "out", "done", "failed"]

    /// Creates the folders when missing and checks that they are writable folders on one filesystem.
    public func prepare() throws(SpoolError) {
        do {
            try makePath(root)
            let rootStat = try FS.lstatEntry(root)
            for folder in Self.folders {
                let path = root + "/" + folder
                try FS.makeDirectory(path, mode: 0o750)
                let entry = try FS.lstatEntry(path)
                guard entry.kind == .directory else {
                    throw SpoolError("\(path) is a \(entry.kind.rawValue), not a folder")
                }
                guard entry.device == rootStat.device else {
                    throw SpoolError(
                        "\(path) is on another filesystem than \(root): every move in the spool must be a rename "
                            + "on one filesystem (mount them together or pick another spool)")
                }
                guard access(path, W_OK | X_OK) == 0 else {
                    throw SpoolError("\(path) is not writable by this user (uid \(getuid()))")
                }
            }
        } catch let error as SystemError {
            throw SpoolError(error.description)
        } catch let error as SpoolError {
            throw error
        } catch {
            throw SpoolError("\(error)")
        }
    }

    private func makePath(_ path: String) throws(SystemError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if !FS.exists(prefix) { try FS.makeDirectory(prefix, mode: 0o750) }
        }
    }

    /// Whether producers' in-progress names are to be left alone.
    public static func isIgnored(_ name: String) -> Bool {
        name.hasPrefix(".") || name.hasSuffix(".partial") || name.hasSuffix(".tmp") || name.hasSuffix(".incomplete")
    }

    /// The output name of an input: `NAME.safetensors` and folder `NAME/` both give `NAME`.
    public static func stem(of name: String) -> String {
        name.hasSuffix(".safetensors") && name.count > ".safetensors".count
            ? String(name.dropLast(".safetensors".count)) : name
    }

    /// `name`, or `name` with `.2`, `.3`... before its `.safetensors` suffix (or at the end),
    /// the first that `taken` does not refuse.
    static func distinctNames(_ name: String) -> some Sequence<String> {
        let base = stem(of: name)
        let suffix = name.hasSuffix(".safetensors") && base != name ? ".safetensors" : ""
        return (1...).lazy.map { $0 == 1 ? name : "\(base).\($0)\(suffix)" }
    }

    /// Renames `from` into `folder` under `name`, or the first distinct variant of it; returns the name used.
    @discardableResult
    func move(_ from: String, into folder: String, as name: String) throws(SystemError) -> String {
        try move(Array(from.utf8), into: folder, as: name)
    }

    @discardableResult
    func move(_ from: [UInt8], into folder: String, as name: String) throws(SystemError) -> String {
        for candidate in Self.distinctNames(name).prefix(10_000) {
            do {
                try FS.renameNoReplace(from, folder + "/" + candidate)
                try? FS.syncDirectory(folder)
                return candidate
            } catch where error.errno == EEXIST || error.errno == ENOTEMPTY {
                continue
            }
        }
        throw SystemError("rename", path: folder + "/" + name, errno: EEXIST)
    }

    /// The path this daemon's claim of `name` lives at.
    public func claimPath(_ name: String) -> String { active + "/" + instance + "." + name }

    /// Claims `incoming/NAME` by renaming it into `active/`. Returns false when it is gone
    /// (another daemon claimed it first); throws when the rename fails otherwise.
    func claim(_ name: String) throws(SystemError) -> Bool {
        do {
            try FS.renameNoReplace(incoming + "/" + name, claimPath(name))
        } catch where error.errno == ENOENT {
            return false
        }
        try? FS.syncDirectory(active)
        try? FS.syncDirectory(incoming)
        return true
    }

    /// Returns a claimed entry to `incoming/`; returns the name it got there.
    @discardableResult
    func requeue(_ name: String) throws(SystemError) -> String {
        try move(claimPath(name), into: incoming, as: name)
    }

    /// After a commit: the input goes to `done/` (or is deleted). Returns where it went, nil if deleted.
    func finish(_ name: String, keepInput: Bool) throws(SystemError) -> String? {
        if keepInput { return done + "/" + (try move(claimPath(name), into: done, as: name)) }
        try FS.removeTree(claimPath(name))
        try? FS.syncDirectory(active)
        return nil
    }

    /// Moves a bad input (claimed, or still in incoming/ as raw name bytes) into `failed/` beside
    /// its record `failed/<name>.error.json`. Returns the name it got in `failed/`.
    func quarantine(from path: [UInt8], as name: String, record: FailureRecord) throws(SystemError) -> String {
        let used = try move(path, into: failed, as: name)
        var record = record
        record.quarantinedAs = used
        try FS.writeAtomically(record.encoded(), to: failed + "/" + used + ".error.json")
        try? FS.syncDirectory(failed)
        return used
    }

    /// A free output folder name for `stem`: `out/STEM` or `out/STEM.2`, ... skipping `reserved`
    /// (outputs of jobs still running).
    func outputName(for stem: String, reserved: Set<String>) -> String {
        for candidate in (1...).lazy.map({ $0 == 1 ? stem : "\(stem).\($0)" })
        where !reserved.contains(candidate) && !FS.exists(out + "/" + candidate) {
            return candidate
        }
        return stem
    }

    /// What a start found and put right.
    public struct Recovery: Sendable {
        /// Names this daemon had claimed and that went back to `incoming/` (old name, new name).
        public var requeued: [(from: String, to: String)] = []
        /// Staging folders left by a crash, removed.
        public var removedStaging: [String] = []
        /// Failures while recovering, in words.
        public var problems: [String] = []
    }

    /// At start: this daemon's claims in `active/` go back to `incoming/`; stale `out/.*.tmp-*`
    /// staging folders are removed (nothing in them was committed).
    func recover() -> Recovery {
        var recovery = Recovery()
        let prefix = instance + "."
        do {
            for raw in try FS.listNames(active) {
                guard let name = String(validating: raw, as: UTF8.self), name.hasPrefix(prefix) else { continue }
                let original = String(name.dropFirst(prefix.count))
                do {
                    let used = try move(active + "/" + name, into: incoming, as: original)
                    recovery.requeued.append((from: name, to: used))
                } catch {
                    recovery.problems.append(error.description)
                }
            }
            for raw in try FS.listNames(out) {
                guard let name = String(validating: raw, as: UTF8.self), name.hasPrefix("."), name.contains(".tmp-")
                else { continue }
                do {
                    try FS.removeTree(out + "/" + name)
                    recovery.removedStaging.append(name)
                } catch {
                    recovery.problems.append(error.description)
                }
            }
        } catch {
            recovery.problems.append(error.description)
        }
        return recovery
    }
}

/// Why the spool cannot be used.
public struct SpoolError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// `failed/<name>.error.json`: what happened to a quarantined input.
public struct FailureRecord: Sendable, Codable, Equatable {
    /// The name the input had in incoming/.
    public var name: String
    /// The name it has in failed/.
    public var quarantinedAs: String?
    public var reason: String
    /// Engine error kind (badInput, missingInput, ...) or "notRegular", "notSafetensors", "badName".
    public var kind: String
    public var stage: String
    public var tensor: String?
    public var errno: Int32?
    public var time: String
    public var quantdVersion: String
    public var instance: String

    public init(name: String, reason: String, kind: String, stage: String, tensor: String? = nil,
                errno: Int32? = nil, instance: String) {
        self.name = name
        self.reason = reason
        self.kind = kind
        self.stage = stage
        self.tensor = tensor
        self.errno = errno
        self.time = FS.timestamp()
        self.quantdVersion = QuantEngine.quantdVersion
        self.instance = instance
    }

    func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(self)) ?? Data("{}".utf8)) + [0x0A]
    }

    static func decode(_ bytes: [UInt8]) throws -> FailureRecord {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(FailureRecord.self, from: Data(bytes))
    }
}
