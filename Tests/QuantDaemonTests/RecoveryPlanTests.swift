import Testing
@testable import QuantDaemon

/// What a start or a rescan takes back, from the spool's listings alone.
@Suite("Recovery plan")
struct RecoveryPlanTests {
    /// The spool of `restartRequeuesOwnClaimsAndRemovesStaleStaging`, plus a dead instance's leftovers.
    static func facts(atStart: Bool, dead: Set<String>) -> RecoveryPlan.Facts {
        RecoveryPlan.Facts(
            instance: "me", atStart: atStart, deadOwners: dead,
            active: ["me.x.txt", ".me.x.txt.job", "other.y.safetensors", ".other.y.safetensors.job",
                     ".me.w.safetensors.job", ".me.v.job.tmp-77", "gone.z.safetensors", ".gone.z.safetensors.job",
                     ".gone.q.job", ".me.retry.json", ".me.retry.json.tmp", "stranger"],
            out: [".x.tmp-me-1234", ".y.tmp-other-99", ".z.tmp-4321", ".z.tmp-gone-5", "x", ".hidden"],
            failed: ["lost.safetensors", "bad.safetensors", "bad.safetensors.error.json",
                     ".bad2.error.json.tmp-me", ".b3.error.json.tmp-other", ".b4.error.json.tmp-gone"])
    }

    @Test func atStartThisInstanceTakesBackItsOwnAndLeavesLiveAndUnknownOnesAlone() {
        let plan = RecoveryPlan(Self.facts(atStart: true, dead: []))
        #expect(plan.owners == ["me"])
        #expect(plan.claims == [.init(owner: "me", claim: "me.x.txt", name: "x.txt")])
        #expect(plan.orphanJournals == [.init(owner: "me", claim: "me.w.safetensors", name: "w.safetensors")],
                "a journal beside its claim goes with the claim")
        #expect(plan.journalTemps == [".me.v.job.tmp-77"], "the retry state is no journal")
        #expect(plan.staging == [".x.tmp-me-1234"], "another instance's and a quantize run's staging stay")
        #expect(plan.recordTemps == [".bad2.error.json.tmp-me"])
        #expect(plan.missingRecords == ["lost.safetensors"])
    }

    @Test func aRescanWithEveryInstanceAliveDoesNothing() {
        #expect(RecoveryPlan(Self.facts(atStart: false, dead: [])) == RecoveryPlan(RecoveryPlan.Facts(
            instance: "me", atStart: false, deadOwners: [], active: [], out: [], failed: [])))
    }

    @Test func aRescanTakesBackDeadInstancesOnly() {
        let plan = RecoveryPlan(Self.facts(atStart: false, dead: ["gone", "me"]))
        #expect(plan.owners == ["gone"], "this instance's own claims are running jobs after its start")
        #expect(plan.claims == [.init(owner: "gone", claim: "gone.z.safetensors", name: "z.safetensors")])
        #expect(plan.orphanJournals == [.init(owner: "gone", claim: "gone.q", name: "q")])
        #expect(plan.journalTemps.isEmpty)
        #expect(plan.staging.isEmpty && plan.resumable == [".z.tmp-gone-5"], "z goes back to incoming: it resumes")
        #expect(plan.recordTemps == [".b4.error.json.tmp-gone"])
        #expect(plan.missingRecords.isEmpty, "records are put right at start only")
    }

    /// The staging folder of a claim going back to incoming/, or of an entry waiting there, is kept for its job
    /// to resume in (the engine checks its journal); the owner's others are removed.
    @Test func stagingOfAJobQueuedAgainIsKeptForItToResume() {
        let plan = RecoveryPlan(RecoveryPlan.Facts(
            instance: "me", atStart: true, deadOwners: ["gone"],
            active: ["me.model.safetensors", "gone.folder"],
            out: [".model.tmp-me-1", ".folder.2.tmp-gone-7", ".waiting.tmp-me-3", ".old.tmp-me-4",
                  ".v1.2.tmp-me-5", ".model.tmp-other-9"],
            failed: [], incoming: ["waiting.safetensors", "v1.2.safetensors"]))
        #expect(plan.resumable == [".model.tmp-me-1", ".folder.2.tmp-gone-7", ".waiting.tmp-me-3", ".v1.2.tmp-me-5"])
        #expect(plan.staging == [".old.tmp-me-4"], "nothing is queued for it")
        #expect(RecoveryPlan.stagingOutput(".a.b.tmp-x.tmp-me-12") == "a.b.tmp-x")
        #expect(RecoveryPlan.stagingOutput(".tmp-me-1") == nil && RecoveryPlan.stagingOutput("x.tmp-me-1") == nil)
        #expect(RecoveryPlan.stem(ofOutput: "model.12") == "model" && RecoveryPlan.stem(ofOutput: "model.") == "model.")
    }

    @Test func deadInstancesAreThoseWhoseLeftoversWereTakenBack() {
        #expect(RecoveryPlan.deadInstances(owners: ["me", "a", "b", "c"], instance: "me", touched: ["me", "c", "a"])
            == ["a", "c"])
    }

    @Test func lockAndJournalNames() {
        #expect(RecoveryPlan.lockOwner("node-1.lock") == "node-1")
        #expect(RecoveryPlan.lockOwner("a.b.lock") == nil && RecoveryPlan.lockOwner("a.lck") == nil)
        #expect(RecoveryPlan.lockOwner(".lock") == nil)
        #expect(RecoveryPlan.journalOutput(Array("model.2".utf8)) == "model.2")
        #expect(RecoveryPlan.journalOutput(nil) == nil && RecoveryPlan.journalOutput([]) == nil)
        #expect(RecoveryPlan.journalOutput(Array("../x".utf8)) == nil)
        #expect(RecoveryPlan.journalOutput([0xFF, 0x41]) == nil)
    }

    @Test func theLogTellsWhatRecoveryDidInOrder() {
        var recovery = Spool.Recovery()
        recovery.problems = ["rename(x): Permission denied"]
        recovery.recordsWritten = ["lost.safetensors"]
        recovery.removedStaging = [".x.tmp-me-1"]
        recovery.finished = [(owner: "me", name: "w.safetensors", output: "w", input: nil)]
        recovery.requeued = [(owner: "me", from: "me.x.txt", to: "x.txt"),
                             (owner: "gone", from: "gone.y.safetensors", to: "y.2.safetensors")]
        recovery.deadInstances = ["gone"]
        let lines = recovery.lines(spool: Spool(root: "/s/", instance: "me"))
        #expect(lines.map(\.event) == ["instance_dead", "requeued", "requeued", "commit_recovered", "staging_removed",
                                       "record_recovered", "recovery_failed"])
        #expect(lines.map(\.level) == [.notice, .notice, .notice, .notice, .notice, .warning, .error])
        #expect(lines[0].metadata["lock"] == "/s/locks/gone.lock")
        #expect(lines[1].metadata["reason"] == "claimed by this instance before a restart")
        #expect(lines[2].metadata["reason"] == "claimed by instance 'gone', which is dead")
        #expect(lines[2].metadata["job"] == "y.2.safetensors")
        #expect(lines[2].metadata["claim"] == "/s/active/gone.y.safetensors")
        #expect(lines[3].metadata["input"] == "deleted" && lines[3].metadata["output"] == "/s/out/w")
        #expect(lines[5].metadata["path"] == "/s/failed/lost.safetensors.error.json")
    }
}
