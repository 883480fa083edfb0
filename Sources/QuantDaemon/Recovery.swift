/// What a start (or a rescan) puts right in the spool, decided from its listings: whose leftovers are taken
/// back, which claims of active/ go back to incoming/ or on to done/, which journals, staging folders and
/// half-written records go, which entries of failed/ get a record. No I/O: `Spool.recover` lists the folders,
/// takes the dead instances' locks, carries the plan out and reads the few facts it needs on the way (a claim's
/// journal, whether its output was committed).
struct RecoveryPlan: Equatable {
    /// What `Spool.recover` found before deciding.
    struct Facts {
        /// This daemon's instance.
        var instance: String
        /// The first pass of a start: this instance's own leftovers and missing records are put right too.
        var atStart: Bool
        /// Other instances whose lock nobody held (now held by this daemon while it recovers).
        var deadOwners: Set<String>
        var active: [String]
        var out: [String]
        var failed: [String]
        /// Names waiting in incoming/: a staging folder of one of them is kept, for its job to resume.
        var incoming: [String] = []
    }

    /// A claim `active/<owner>.<name>` of an owner taken back.
    struct Claim: Equatable {
        var owner: String
        /// Its name in active/.
        var claim: String
        /// Its name in incoming/ (and the `job` of the log).
        var name: String
    }

    /// Instances whose leftovers are put right.
    var owners: Set<String> = []
    /// Claims to finish (journal naming a committed output) or requeue; the journal is read when carried out.
    var claims: [Claim] = []
    /// Journals `.<owner>.<name>.job` whose claim is gone: the job finished, maybe before its `committed` line.
    var orphanJournals: [Claim] = []
    /// Names in active/ to remove: journal temporaries (`.<owner>.<name>.job.tmp-*`) of the owners.
    var journalTemps: [String] = []
    /// Staging folders in out/ of the owners (`.STEM.tmp-<owner>-N`), none of them committed, to remove.
    var staging: [String] = []
    /// Staging folders of the owners kept for the job that will resume in them: those of an input requeued
    /// now or waiting in incoming/ (the engine takes a folder over only when its journal checks out).
    var resumable: [String] = []
    /// Records half written in failed/ by the owners (`.NAME.error.json.tmp-<owner>`).
    var recordTemps: [String] = []
    /// Entries of failed/ without their record (at start only).
    var missingRecords: [String] = []

    /// The instance a lock file names (`<instance>.lock`), or nil for another name.
    static func lockOwner(_ name: String) -> String? {
        guard name.hasSuffix(".lock") else { return nil }
        let owner = String(name.dropLast(".lock".count))
        return DaemonConfig.isValidInstance(owner) ? owner : nil
    }

    init(_ facts: Facts) {
        owners = facts.deadOwners.subtracting([facts.instance])
        if facts.atStart { owners.insert(facts.instance) }
        guard !owners.isEmpty else { return }
        let present = Set(facts.active)
        for claim in facts.active where !claim.hasPrefix(".") {
            guard let dot = claim.firstIndex(of: "."), owners.contains(String(claim[..<dot])) else { continue }
            claims.append(Claim(owner: String(claim[..<dot]), claim: claim,
                                name: String(claim[claim.index(after: dot)...])))
        }
        for name in facts.active where name.hasPrefix(".") {
            let body = name.dropFirst()
            guard let dot = body.firstIndex(of: "."), owners.contains(String(body[..<dot])) else { continue }
            let owner = String(body[..<dot])
            if name.hasSuffix(".job") {
                let claim = String(body.dropLast(".job".count))
                guard !present.contains(claim) else { continue }
                orphanJournals.append(Claim(owner: owner, claim: claim, name: String(claim.dropFirst(owner.count + 1))))
            } else if name.contains(".job.tmp-") {
                journalTemps.append(name)
            }
        }
        let jobs = Set((claims.map(\.name) + facts.incoming).map(Spool.stem))
        for name in facts.out where Spool.stagingOwner(name).map(owners.contains) ?? false {
            if let output = Self.stagingOutput(name), jobs.contains(output) || jobs.contains(Self.stem(ofOutput: output)) {
                resumable.append(name)
            } else {
                staging.append(name)
            }
        }
        recordTemps = facts.failed.filter { name in
            guard name.hasPrefix("."), let marker = name.lastIndex(of: "."), name[marker...].hasPrefix(".tmp-")
            else { return false }
            return owners.contains(String(name[name.index(marker, offsetBy: 5)...]))
        }
        if facts.atStart {
            let names = Set(facts.failed)
            missingRecords = names.sorted().filter {
                !$0.hasPrefix(".") && !$0.hasSuffix(".error.json") && !names.contains($0 + ".error.json")
            }
        }
    }

    /// The output folder a staging folder `.OUTPUT.tmp-TAG-N` is built for.
    static func stagingOutput(_ name: String) -> String? {
        guard name.hasPrefix("."), let marker = name.ranges(of: ".tmp-").last,
              marker.lowerBound > name.index(after: name.startIndex) else { return nil }
        return String(name[name.index(after: name.startIndex)..<marker.lowerBound])
    }

    /// The input stem an output folder name comes from: `STEM`, or `STEM.N` when out/STEM was taken.
    static func stem(ofOutput output: String) -> String {
        guard let dot = output.lastIndex(of: "."), dot != output.startIndex,
              output[output.index(after: dot)...].allSatisfy({ $0.isASCII && $0.isNumber }),
              output.index(after: dot) != output.endIndex else { return output }
        return String(output[..<dot])
    }

    /// The output folder a journal names: one non-empty name, no `/`; nil for anything else.
    static func journalOutput(_ bytes: [UInt8]?) -> String? {
        guard let bytes, let output = String(validating: bytes, as: UTF8.self), !output.isEmpty,
              !output.contains("/") else { return nil }
        return output
    }

    /// The other instances to log as dead: those whose claims, journals or staging were taken back.
    static func deadInstances(owners: Set<String>, instance: String, touched: Set<String>) -> [String] {
        owners.subtracting([instance]).filter(touched.contains).sorted()
    }
}
