import Foundation
import Testing
@testable import QuantDaemon
import QuantEngine

@Suite("Admission, retry policy and the retry state file")
struct AdmissionTests {
    @Test func startsUpToMaxJobsInArrivalOrderSkippingHeldAndRunningEntries() {
        var readiness = Readiness()
        for (index, name) in ["a", "b", "c", "d", "e"].enumerated() { readiness.movedIn(name, now: Double(index)) }
        var admission = Admission()
        admission.retry("b", attempt: 1, delaySeconds: 30, now: 0)
        var running: Set<String> = ["d"]
        var started: [String] = []
        for name in readiness.inArrivalOrder where admission.heldUntil(name, now: 10) == nil {
            guard Admission.mayStart(name, running: running, maxJobs: 3) else { continue }
            running.insert(name)
            started.append(name)
        }
        #expect(started == ["a", "c"], "b waits its backoff, d runs, e finds no slot")
        #expect(admission.heldUntil("b", now: 10) == 30)
        #expect(admission.heldUntil("b", now: 30) == nil, "a backoff ends at its time")
        #expect(!Admission.mayStart("x", running: [String](), maxJobs: 0))
        #expect(Admission.mayStart("x", running: [String](), maxJobs: 1))
        #expect(!Admission.mayStart("x", running: ["x"], maxJobs: 2), "a name runs once")
    }

    @Test func holdKeepsTheAttemptsAndClearEndsTheHistory() {
        var admission = Admission()
        admission.retry("a", attempt: 3, delaySeconds: 4, now: 0)
        admission.hold("a", until: 20)
        #expect(admission.attempts("a") == 3 && admission.heldUntil("a", now: 10) == 20)
        admission.hold("new", until: 5)
        #expect(admission.attempts("new") == 0)
        admission.clear("a")
        #expect(admission.attempts("a") == 0 && admission.heldUntil("a", now: 0) == nil)
        admission.restore(["kept": .init(attempts: 2, until: 9), "gone": .init(attempts: 1, until: 9)],
                          present: ["kept", "other"])
        #expect(admission.backoffs["kept"] == .init(attempts: 2, until: 9) && admission.backoffs["gone"] == nil)
    }

    @Test func delaysDoubleUpToTheCap() {
        let policy = RetryPolicy(initialSeconds: 30, maxSeconds: 1800)
        #expect((1...8).map { policy.delay(afterAttempt: $0) } == [30, 60, 120, 240, 480, 960, 1800, 1800])
        #expect(policy.delay(afterAttempt: 10_000) == 1800, "no overflow however many attempts")
        let tight = RetryPolicy(initialSeconds: 0.2, maxSeconds: 0.4)
        #expect((1...3).map { tight.delay(afterAttempt: $0) } == [0.2, 0.4, 0.4])
    }

    @Test func eachFailureHasItsDecision() {
        let policy = RetryPolicy(initialSeconds: 2, maxSeconds: 10)
        #expect(policy.decide(.cancelled, previousAttempts: 4) == .requeue)
        #expect(policy.decide(.transient, previousAttempts: 0) == .retry(attempt: 1, delaySeconds: 2))
        #expect(policy.decide(.transient, previousAttempts: 2) == .retry(attempt: 3, delaySeconds: 8))
        #expect(policy.decide(.transient, previousAttempts: 5) == .retry(attempt: 6, delaySeconds: 10))
        #expect(policy.decide(.outputExists, previousAttempts: 1) == .retry(attempt: 2, delaySeconds: 0))
        #expect(policy.decide(.permanent, previousAttempts: 3) == .quarantine)
    }

    @Test func engineErrorsAreClassifiedForTheRetryPolicy() {
        func error(_ kind: EngineError.Kind, errno: Int32? = nil) -> EngineError {
            EngineError(kind, file: "f", reason: "r", errno: errno, stage: "write")
        }
        #expect(RetryPolicy.Failure(error(.cancelled)) == .cancelled)
        #expect(RetryPolicy.Failure(error(.io, errno: 28)) == .transient, "ENOSPC passes")
        #expect(RetryPolicy.Failure(error(.io, errno: 5)) == .transient, "EIO may pass")
        #expect(RetryPolicy.Failure(error(.cannotCreateOutput, errno: 17)) == .outputExists)
        #expect(RetryPolicy.Failure(error(.cannotCreateOutput, errno: 13)) == .permanent)
        #expect(RetryPolicy.Failure(error(.badInput)) == .permanent)
    }

    /// Written at monotonic 100 (Unix 1000), read after a restart at monotonic 5 (Unix 1010): 20 s are left.
    @Test func aBackoffSurvivesARestartOnTheWallClock() throws {
        let state = RetryState(backoffs: ["a.safetensors": .init(attempts: 2, until: 130),
                                          "b.safetensors": .init(attempts: 1, until: 90),
                                          "My_Model": .init(attempts: 4, until: 100)])
        let bytes = state.encoded(now: 100, unixNow: 1000)
        let read = try RetryState.decode(bytes, now: 5, unixNow: 1010, maxWait: 1800)
        #expect(read.backoffs["a.safetensors"] == .init(attempts: 2, until: 25))
        #expect(read.backoffs["b.safetensors"] == .init(attempts: 1, until: 5), "an ended backoff keeps its count")
        #expect(read.backoffs["My_Model"] == .init(attempts: 4, until: 5), "names are kept as they are")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        #expect(json["version"] as? Int == 1)
        let entry = try #require((json["entries"] as? [String: Any])?["a.safetensors"] as? [String: Any])
        #expect(entry["attempts"] as? Int == 2 && (entry["retry_at_unix_seconds"] as? NSNumber)?.doubleValue == 1030)
    }

    @Test func aClockSetBackDoesNotWaitLongerThanTheCap() throws {
        let bytes = RetryState(backoffs: ["a": .init(attempts: 1, until: 60)]).encoded(now: 0, unixNow: 2_000_000)
        let read = try RetryState.decode(bytes, now: 0, unixNow: 1000, maxWait: 30)
        #expect(read.backoffs["a"] == .init(attempts: 1, until: 30))
    }

    @Test(arguments: [
        ("", "not a retry state file"),
        ("{\"version\":1,\"entries\":{\"a\":{\"attempts\":1", "not a retry state file"),
        ("[1, 2]", "not a retry state file"),
        ("{\"version\":2,\"entries\":{}}", "version 2"),
        ("{\"version\":1,\"entries\":{\"a\":{\"attempts\":-1,\"retry_at_unix_seconds\":5}}}", "entry 'a'"),
        ("{\"version\":1,\"entries\":{\"x/y\":{\"attempts\":1,\"retry_at_unix_seconds\":5}}}", "entry 'x/y'"),
        ("{\"version\":1,\"entries\":{\"a\":{\"attempts\":\"one\",\"retry_at_unix_seconds\":5}}}", "not a retry"),
    ])
    func aCorruptFileIsRefusedWithAReason(text: String, reason: String) {
        #expect {
            _ = try RetryState.decode(Array(text.utf8), now: 0, unixNow: 0, maxWait: 10)
        } throws: { error in
            (error as? RetryState.Corrupt)?.description.contains(reason) == true
        }
    }
}
