import QuantSystem
import Testing
@testable import QuantDaemon

/// When an entry of incoming/ may be claimed, from the events and looks the loop reports: the decisions that the
/// process tests could only sample with sleeps.
@Suite("Readiness of incoming/ entries")
struct ReadinessTests {
    static let file = Entry(kind: .file, size: 100, mtimeNanoseconds: 1, device: 1)
    static let grown = Entry(kind: .file, size: 200, mtimeNanoseconds: 2, device: 1)

    /// A look whose signature must not be read.
    static func unread() -> Entry? {
        Issue.record("the signature was read")
        return file
    }

    @Test func renamedInIsReadyAtOnceWithoutLookingAtItsSignature() {
        var readiness = Readiness()
        readiness.movedIn("a.safetensors", now: 10)
        #expect(readiness.verdict("a.safetensors", now: 10, settleSeconds: 30, signature: Self.unread)
            == .ready(signature: nil))
    }

    @Test func recoveredIsReadyAtOnceAndAScanDoesNotMakeItSettle() {
        var readiness = Readiness()
        readiness.recovered("a.safetensors", now: 10)
        // The first scan after recovery finds it in incoming/ like any other entry.
        readiness.scanned(["a.safetensors", "b.safetensors"], now: 10)
        #expect(readiness.origin(of: "a.safetensors") == .recovered)
        #expect(readiness.verdict("a.safetensors", now: 10, settleSeconds: 30, signature: Self.unread)
            == .ready(signature: nil))
        #expect(readiness.verdict("b.safetensors", now: 10, settleSeconds: 30) { Self.file } == .waiting(until: 40))
    }

    /// A writer holding the file open (`cp` in place, pausing longer than settle_seconds) is never taken, however
    /// long it pauses; after its close, the file is taken once unchanged for settle_seconds.
    @Test func writerHoldingTheFileOpenIsNeverReadyUntilItClosesAndSettles() {
        var readiness = Readiness()
        readiness.created("slow.safetensors", isDirectory: false, now: 0)
        readiness.modified("slow.safetensors", now: 0.1)
        for now in [0.1, 1, 2.5, 60, 3600.0] {
            #expect(readiness.verdict("slow.safetensors", now: now, settleSeconds: 1) { Self.file }
                == .waiting(until: nil), "at \(now)")
        }
        readiness.closedWrite("slow.safetensors", now: 3600)
        #expect(readiness.verdict("slow.safetensors", now: 3600.2, settleSeconds: 1) { Self.grown }
            == .waiting(until: 3601.2))
        #expect(readiness.verdict("slow.safetensors", now: 3601, settleSeconds: 1) { Self.grown }
            == .waiting(until: 3601.2))
        #expect(readiness.verdict("slow.safetensors", now: 3601.2, settleSeconds: 1) { Self.grown }
            == .ready(signature: Self.grown))
    }

    @Test func writtenAgainAfterACloseWaitsForTheNextClose() {
        var readiness = Readiness()
        readiness.created("a.safetensors", isDirectory: false, now: 0)
        readiness.closedWrite("a.safetensors", now: 1)
        readiness.modified("a.safetensors", now: 2)
        #expect(readiness.origin(of: "a.safetensors") == .writing)
        #expect(readiness.verdict("a.safetensors", now: 100, settleSeconds: 1) { Self.file } == .waiting(until: nil))
        // A renamed-in entry that is then written in place is no longer complete either.
        readiness.movedIn("b.safetensors", now: 0)
        readiness.modified("b.safetensors", now: 1)
        #expect(readiness.verdict("b.safetensors", now: 100, settleSeconds: 0) { Self.file } == .waiting(until: nil))
    }

    @Test func aChangeOfSignatureRestartsTheSettleWindow() {
        var readiness = Readiness()
        readiness.scanned(["a.safetensors"], now: 0)
        #expect(readiness.verdict("a.safetensors", now: 1, settleSeconds: 5) { Self.file } == .waiting(until: 6))
        #expect(readiness.verdict("a.safetensors", now: 4, settleSeconds: 5) { Self.grown } == .waiting(until: 9))
        #expect(readiness.verdict("a.safetensors", now: 8.9, settleSeconds: 5) { Self.grown } == .waiting(until: 9))
        #expect(readiness.verdict("a.safetensors", now: 9, settleSeconds: 5) { Self.grown }
            == .ready(signature: Self.grown))
        // settle_seconds = 0: ready at the first unchanged look.
        readiness.scanned(["a.safetensors", "c.safetensors"], now: 10)
        #expect(readiness.verdict("c.safetensors", now: 10, settleSeconds: 0) { Self.file }
            == .ready(signature: Self.file))
    }

    @Test func aFolderCreatedInPlaceSettlesOnItsTreeSignature() {
        var readiness = Readiness()
        readiness.created("model", isDirectory: true, now: 0)
        #expect(readiness.origin(of: "model") == .settling)
        let tree = Entry(kind: .directory, size: 4096, mtimeNanoseconds: 7, device: 1)
        #expect(readiness.verdict("model", now: 0.5, settleSeconds: 2) { tree } == .waiting(until: 2.5))
        #expect(readiness.verdict("model", now: 2.5, settleSeconds: 2) { tree } == .ready(signature: tree))
    }

    @Test func aScanForgetsVanishedEntriesAndKeepsWhatEventsSaid() {
        var readiness = Readiness()
        readiness.created("open.safetensors", isDirectory: false, now: 0)
        readiness.movedIn("renamed.safetensors", now: 0)
        readiness.scanned(["gone.safetensors"], now: 1)
        #expect(readiness.count == 1 && readiness.origin(of: "gone.safetensors") == .settling)
        // After an inotify overflow the rescan sees everything again: an open file found by it settles.
        readiness.created("open.safetensors", isDirectory: false, now: 2)
        readiness.scanned(["gone.safetensors", "open.safetensors"], now: 3)
        #expect(readiness.origin(of: "open.safetensors") == .writing, "a scan does not override an event")
        readiness.removed("gone.safetensors")
        #expect(readiness.origin(of: "gone.safetensors") == nil)
        #expect(readiness.verdict("gone.safetensors", now: 9, settleSeconds: 0, signature: Self.unread)
            == .waiting(until: nil))
        readiness.removeAll()
        #expect(readiness.count == 0)
    }

    @Test func entriesAreOfferedInArrivalOrderAndKeepTheirPlace() {
        var readiness = Readiness()
        readiness.scanned(["c", "a"], now: 0)
        readiness.movedIn("b", now: 1)
        readiness.closedWrite("c", now: 2)  // seen again: keeps its place
        #expect(readiness.inArrivalOrder == ["c", "a", "b"])
        readiness.removed("c")
        readiness.movedIn("c", now: 3)  // gone and back: a new arrival
        #expect(readiness.inArrivalOrder == ["a", "b", "c"])
    }
}
