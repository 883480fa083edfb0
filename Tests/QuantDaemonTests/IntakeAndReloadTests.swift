import QuantSystem
import Testing
@testable import QuantDaemon

@Suite("Intake refusals and what a reload changes")
struct IntakeAndReloadTests {
    static func refusal(_ name: String, _ kind: Entry.Kind, entries: Int? = nil) -> String? {
        Intake.refusal(name: name, kind: kind, maxNameBytes: 20, instance: "me", maxFolderEntries: 3,
                       folderEntries: { entries })?.kind
    }

    @Test func whatIsRefusedBeforeItIsOpened() {
        #expect(Self.refusal("a.safetensors", .file) == nil)
        #expect(Self.refusal("model", .directory, entries: 3) == nil)
        #expect(Self.refusal("model", .directory, entries: 4) == "tooManyEntries")
        #expect(Self.refusal("model", .directory, entries: nil) == nil, "an unlistable folder fails in the engine")
        for kind in [Entry.Kind.symlink, .fifo, .socket, .characterDevice, .blockDevice, .unknown] {
            #expect(Self.refusal("a.safetensors", kind) == "notRegular", "\(kind)")
        }
        #expect(Self.refusal(String(repeating: "x", count: 21), .file) == "nameTooLong")
        #expect(Self.refusal(String(repeating: "é", count: 10), .file) == nil, "20 bytes fit")
        let long = Intake.refusal(name: String(repeating: "x", count: 21), kind: .directory, maxNameBytes: 20,
                                  instance: "me", maxFolderEntries: 3) {
            Issue.record("a folder refused for its name is not listed")
            return 0
        }
        #expect(long?.reason.contains("with instance 'me' names of at most 20 bytes") == true)
        #expect(Intake.refusalWhenReady(name: "notes.txt", kind: .file)?.kind == "notSafetensors")
        #expect(Intake.refusalWhenReady(name: "a.safetensors", kind: .file) == nil)
        #expect(Intake.refusalWhenReady(name: "model", kind: .directory) == nil)
    }

    @Test func aReloadKeepsWhatNeedsARestart() {
        let running = DaemonConfig(environment: [:])
        var loaded = running
        loaded.maxJobs = running.maxJobs + 1
        loaded.settleSeconds = 42
        #expect(Reload.merge(running: running, loaded: loaded).needsRestart.isEmpty)
        loaded.spool = "/elsewhere"
        loaded.instance = "other"
        loaded.poll = !running.poll
        loaded.memoryBudgetMiB = running.memoryBudgetMiB * 2
        let (next, needsRestart) = Reload.merge(running: running, loaded: loaded)
        #expect(needsRestart == ["spool", "instance", "poll", "memory_budget_mib"])
        #expect(next.spool == running.spool && next.instance == running.instance && next.poll == running.poll
            && next.memoryBudgetMiB == running.memoryBudgetMiB)
        #expect(next.maxJobs == running.maxJobs + 1 && next.settleSeconds == 42)
    }
}
