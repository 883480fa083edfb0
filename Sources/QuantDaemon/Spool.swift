import QuantSystem
import SystemPackage
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
    /// `locks/<instance>.lock`: one per daemon that ever ran here, held while it runs (see `InstanceLock`).
    public var locks: String { root + "/locks" }
    static let folders = ["incoming", "active", "out", "done", "failed", "locks"]

    /// Creates the folders when missing and checks that they are writable folders on one filesystem.
    public func prepare() throws(SpoolError) {
        do {
            try makePath(root)
            let rootStat = try FS.lstatEntry(root)
            for folder in Self.folders {
                let path = root + "/" + folder
                try FS.makeDirectory(path, mode: FilePermissions(rawValue: 0o750))
                let entry = try FS.lstatEntry(path)
                guard entry.kind == .directory else {
                    throw SpoolError("\(path) is a \(entry.kind.rawValue), not a folder")
                }
                guard entry.device == rootStat.device else {
                    throw SpoolError(
                        "\(path) is on another filesystem than \(root): every move in the spool must be a rename "
                            + "on one filesystem (mount them together or pick another spool)")
                }
                guard FileSystem.canWriteInto(FilePath(path)) else {
                    throw SpoolError("\(path) is not writable by this user (uid \(FileSystem.userID))")
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
            if !FS.exists(prefix) { try FS.makeDirectory(prefix, mode: FilePermissions(rawValue: 0o750)) }
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
    /// Variants longer than `maxBytes` are not tried.
    @discardableResult
    func move(_ from: String, into folder: String, as name: String, maxBytes: Int = 255) throws(SystemError) -> String {
        try move(Array(from.utf8), into: folder, as: name, maxBytes: maxBytes)
    }

    @discardableResult
    func move(_ from: [UInt8], into folder: String, as name: String, maxBytes: Int = 255) throws(SystemError)
        -> String
    {
        for candidate in Self.distinctNames(name).prefix(10_000) where candidate.utf8.count <= maxBytes {
            do {
                try FS.renameNoReplace(from, folder + "/" + candidate)
                try? FS.syncDirectory(folder)
                return candidate
            } catch where error.errno == .fileExists || error.errno == .directoryNotEmpty {
                continue
            }
        }
        throw SystemError("rename", path: FilePath(folder + "/" + name), errno: .fileExists)
    }

    /// The path this daemon's claim of `name` lives at.
    public func claimPath(_ name: String) -> String { active + "/" + instance + "." + name }

    /// `active/.<owner>.<NAME>.job`: the output folder name a claim is being quantized into, written before
    /// the engine starts, so that a restart can tell a job that was committed just before a crash from one
    /// that was not (and not quantize it twice).
    func journalPath(_ name: String, owner: String? = nil) -> String {
        active + "/." + (owner ?? instance) + "." + name + ".job"
    }

    public func lockPath(_ owner: String) -> String { locks + "/" + owner + ".lock" }

    /// `active/.<instance>.retry.json`: this instance's backoffs, kept across restarts (see `RetryState`).
    var retryStatePath: String { active + "/." + instance + ".retry.json" }

    /// The longest entry name (in bytes) this instance can take through the spool: its claim
    /// `<instance>.NAME`, its journal, its staging `.STEM.tmp-<instance>-N`, and its record
    /// `NAME.N.error.json` with the record's temporary `.NAME.N.error.json.tmp-<instance>` must each fit in
    /// 255 bytes.
    public var maxNameBytes: Int { min(226, 230 - instance.utf8.count) }

    /// The longest name a bad input keeps as it is in `failed/`: it and its record `NAME.error.json` fit in
    /// 255 bytes.
    static let maxQuarantineNameBytes = 255 - ".error.json".utf8.count

    /// The temporary name a record is written under before it is renamed into place: `.NAME.error.json.tmp-<instance>`,
    /// with NAME shortened (as `shortened` does) where that would not fit in 255 bytes.
    func recordTemp(_ name: String) -> String {
        let suffix = ".error.json.tmp-" + instance
        let key = 1 + name.utf8.count + suffix.utf8.count <= 255 ? name : shortened(name)
        return failed + "/." + key + suffix
    }

    /// Claims `incoming/NAME` by renaming it into `active/`. Returns false when it is gone
    /// (another daemon claimed it first); throws when the rename fails otherwise.
    ///
    /// Over NFS a rename whose reply was lost is sent again and the retry fails (ENOENT) although the first
    /// did the work; the claim name says whose it is, so a failed rename whose claim exists under this
    /// instance's name, with the entry gone from incoming/, is this daemon's claim.
    func claim(_ name: String) throws(SystemError) -> Bool {
        do {
            try FS.renameNoReplace(incoming + "/" + name, claimPath(name))
        } catch {
            let happened = error.errno != .fileExists && error.errno != .directoryNotEmpty && FS.exists(claimPath(name))
                && !FS.exists(incoming + "/" + name)
            if !happened {
                if error.errno == .noSuchFileOrDirectory { return false }
                throw error
            }
        }
        try? FS.syncDirectory(active)
        try? FS.syncDirectory(incoming)
        return true
    }

    /// Records the output folder of a claimed job before the engine starts (see `journalPath`).
    func writeJournal(_ name: String, output: String) throws(SystemError) {
        try FS.writeAtomically(Array(output.utf8), to: journalPath(name))
        try? FS.syncDirectory(active)
    }

    func removeJournal(_ name: String, owner: String? = nil) {
        try? FS.unlink(journalPath(name, owner: owner))
    }

    /// Returns a claimed entry to `incoming/`; returns the name it got there.
    @discardableResult
    func requeue(_ name: String) throws(SystemError) -> String {
        let used = try move(claimPath(name), into: incoming, as: name)
        removeJournal(name)
        return used
    }

    /// After a commit: the input goes to `done/` (or is deleted). Returns where it went, nil if deleted.
    /// The journal stays until the caller has logged the commit (`removeJournal`): a journal without its claim
    /// at the next start means a commit that may not have been logged.
    func finish(_ name: String, keepInput: Bool) throws(SystemError) -> String? {
        try finish(claim: claimPath(name), as: name, keepInput: keepInput)
    }

    private func finish(claim: String, as name: String, keepInput: Bool) throws(SystemError) -> String? {
        if keepInput { return done + "/" + (try move(claim, into: done, as: name)) }
        try FS.removeTree(claim)
        try? FS.syncDirectory(active)
        return nil
    }

    /// Moves a bad input (claimed, or still in incoming/ as raw name bytes) into `failed/` beside
    /// its record `failed/<name>.error.json`. Returns the name it got in `failed/`: `name`, or a shortened
    /// form of it when `name` is too long to hold a record beside it (the record keeps the whole name).
    func quarantine(from path: [UInt8], as name: String, record: FailureRecord) throws(SystemError) -> String {
        let stored = storableName(name)
        let used: String
        do throws(SystemError) {
            used = try move(path, into: failed, as: stored, maxBytes: Self.maxQuarantineNameBytes)
        } catch where error.errno == .fileExists && stored == name {
            // Every variant of a name near the bound that fits is taken: the shortened form, with its hash, is not.
            used = try move(path, into: failed, as: shortened(name), maxBytes: Self.maxQuarantineNameBytes)
        }
        var record = record
        record.quarantinedAs = used
        try FS.writeAtomically(record.encoded(), to: failed + "/" + used + ".error.json", temp: recordTemp(used))
        try? FS.syncDirectory(failed)
        return used
    }

    /// `name`, or when it and its record would not fit in 255 bytes, `shortened(name)`.
    func storableName(_ name: String) -> String {
        name.utf8.count > Self.maxQuarantineNameBytes ? shortened(name) : name
    }

    /// The first `maxNameBytes - 30` bytes of `name` (whole characters), `~`, a hash of the whole name in hex, and
    /// the `.safetensors` suffix if it had one.
    func shortened(_ name: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        var prefix = ""
        for character in name.unicodeScalars {
            guard prefix.utf8.count + String(character).utf8.count <= maxNameBytes - 30 else { break }
            prefix.unicodeScalars.append(character)
        }
        let hex = String(hash, radix: 16)
        return prefix + "~" + String(repeating: "0", count: 16 - hex.count) + hex
            + (name.hasSuffix(".safetensors") ? ".safetensors" : "")
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
        /// Claims that went back to `incoming/`: (owner instance, claim name, name in incoming/).
        public var requeued: [(owner: String, from: String, to: String)] = []
        /// Claims whose output had been committed just before a crash: finished now, not quantized again; and
        /// jobs finished just before a crash, maybe before their `committed` line (a journal left without its
        /// claim). (owner, name, output folder, where the input is, or nil when deleted).
        public var finished: [(owner: String, name: String, output: String, input: String?)] = []
        /// Staging folders left by a crash, removed.
        public var removedStaging: [String] = []
        /// Staging folders left by a crash whose job is queued again, kept for it to resume.
        public var keptStaging: [String] = []
        /// Entries of failed/ without a record (a crash between the move and the record), given one.
        public var recordsWritten: [String] = []
        /// Other instances found dead (their lock free) that had left claims or staging, now put right.
        public var deadInstances: [String] = []
        /// Failures while recovering, in words.
        public var problems: [String] = []
    }

    /// At start, for this instance and for every instance whose lock nobody holds (dead ones): claims in
    /// `active/` go back to `incoming/` (or, when the journal shows their output was committed, on to
    /// `done/`), and their stale `out/.*.tmp-<instance>-*` staging folders are removed (nothing in them was
    /// committed). Claims and staging of live instances, and of unknown ones (no lock file), are left alone.
    /// At start (`atStart`) this instance's own leftovers and records missing in `failed/` are put right too;
    /// later passes (every rescan) look at dead instances only, so that a daemon that died beside live ones
    /// does not keep its jobs until it restarts. What to take back is a `RecoveryPlan` made from the listings;
    /// this carries it out.
    func recover(keepInputs: Bool, atStart: Bool) -> Recovery {
        var recovery = Recovery()
        var owners = Set<String>()
        // Dead instances' locks, held while their leftovers are put right, released on return.
        var held: [InstanceLock] = []
        defer { held.removeAll() }
        do {
            var dead = Set<String>()
            for raw in try FS.listNames(locks) {
                guard let name = String(validating: raw, as: UTF8.self), let owner = RecoveryPlan.lockOwner(name),
                      owner != instance,
                      let lock = try? InstanceLock.acquire(lockPath(owner), waitSeconds: 0, create: false)
                else { continue }
                held.append(lock)
                dead.insert(owner)
            }
            guard atStart || !dead.isEmpty else { return recovery }
            func names(_ folder: String) throws(SystemError) -> [String] {
                try FS.listNames(folder).compactMap { String(validating: $0, as: UTF8.self) }
            }
            var claims: [String] = []
            do {
                claims = try names(active)
            } catch {
                recovery.problems.append(error.description)
            }
            let plan = RecoveryPlan(RecoveryPlan.Facts(
                instance: instance, atStart: atStart, deadOwners: dead, active: claims, out: try names(out),
                failed: try names(failed), incoming: (try? names(incoming)) ?? []))
            owners = plan.owners
            recoverClaims(plan, keepInputs: keepInputs, into: &recovery)
            recovery.keptStaging = plan.resumable
            for name in plan.staging {
                // A folder whose flock is held is a job's (one of this daemon's took it over to resume it, after
                // an earlier pass requeued its claim): it is left alone. The lock is kept while the folder is
                // removed, so that no job takes it over meanwhile.
                let lock = FileSystem.lockFolder(FilePath(out + "/" + name))
                if case .held = lock { continue }
                do {
                    try FS.removeTree(out + "/" + name)
                    recovery.removedStaging.append(name)
                } catch {
                    recovery.problems.append(error.description)
                }
                if case .locked(let fd) = lock { try? fd.close() }
            }
            try? FS.syncDirectory(out)
            for name in plan.recordTemps { try? FS.unlink(failed + "/" + name) }
            recoverRecords(plan.missingRecords, into: &recovery)
        } catch {
            recovery.problems.append(error.description)
        }
        var touched = Set(recovery.requeued.map(\.owner) + recovery.finished.map(\.owner))
        touched.formUnion((recovery.removedStaging + recovery.keptStaging).compactMap(Self.stagingOwner))
        recovery.deadInstances = RecoveryPlan.deadInstances(owners: owners, instance: instance, touched: touched)
        return recovery
    }

    private func recoverClaims(_ plan: RecoveryPlan, keepInputs: Bool, into recovery: inout Recovery) {
        for claim in plan.claims {
            let path = active + "/" + claim.claim
            do {
                if let output = RecoveryPlan.journalOutput(try? FS.readFile(journalPath(claim.name, owner: claim.owner),
                                                                             limit: 4096)),
                   committed(output, holds: path) {
                    let moved = try finish(claim: path, as: claim.name, keepInput: keepInputs)
                    recovery.finished.append((owner: claim.owner, name: claim.name, output: output, input: moved))
                } else {
                    let used = try move(path, into: incoming, as: claim.name)
                    recovery.requeued.append((owner: claim.owner, from: claim.claim, to: used))
                }
                removeJournal(claim.name, owner: claim.owner)
            } catch {
                recovery.problems.append(error.description)
            }
        }
        // Journals whose claim is gone: the job had finished, and its daemon stopped before it logged the commit
        // or just after.
        for journal in plan.orphanJournals {
            if let output = RecoveryPlan.journalOutput(try? FS.readFile(journalPath(journal.name, owner: journal.owner),
                                                                         limit: 4096)),
               FS.exists(out + "/" + output + "/manifest.json") {
                let input = FS.exists(done + "/" + journal.name) ? done + "/" + journal.name : nil
                recovery.finished.append((owner: journal.owner, name: journal.name, output: output, input: input))
            }
            removeJournal(journal.name, owner: journal.owner)
        }
        for name in plan.journalTemps { try? FS.unlink(active + "/" + name) }
    }

    /// Whether `out/<output>` is the committed output of the claim at `path` (`Manifest.isOutput(of:)`).
    func committed(_ output: String, holds path: String) -> Bool {
        guard let manifest = try? Manifest.read(folder: out + "/" + output) else { return false }
        return manifest.isOutput(of: path)
    }

    /// The instance that wrote the staging folder `.NAME.tmp-<instance>-<random>`, or nil for another name
    /// (instances hold no `.`, so the last `.tmp-` starts the tag).
    static func stagingOwner(_ name: String) -> String? {
        guard name.hasPrefix("."), let dot = name.lastIndex(of: "."), dot != name.startIndex else { return nil }
        let last = name[name.index(after: dot)...]
        guard last.hasPrefix("tmp-") else { return nil }
        let tag = last.dropFirst("tmp-".count)
        guard let dash = tag.lastIndex(of: "-"),
              tag[tag.index(after: dash)...].allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        let owner = String(tag[..<dash])
        return DaemonConfig.isValidInstance(owner) ? owner : nil
    }

    /// An entry of failed/ without its record was moved there by a daemon that stopped before writing it:
    /// it gets a record saying so. Never replaces a record (a live daemon may be writing the real one).
    private func recoverRecords(_ missing: [String], into recovery: inout Recovery) {
        guard !missing.isEmpty else { return }
        for name in missing {
            var record = FailureRecord(
                name: name, reason: "moved to failed/ by a daemon that stopped before writing this record; "
                    + "the original reason is lost (see the log)", kind: "unknown", stage: "recovery",
                instance: instance)
            record.quarantinedAs = name
            do {
                try FS.writeNew(record.encoded(), to: failed + "/" + name + ".error.json", temp: recordTemp(name))
                recovery.recordsWritten.append(name)
            } catch where error.errno == .fileExists {
                continue
            } catch {
                recovery.problems.append(error.description)
            }
        }
        try? FS.syncDirectory(failed)
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
