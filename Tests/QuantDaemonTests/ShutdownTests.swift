import Testing
@testable import QuantDaemon

@Suite("Shutdown after SIGTERM")
struct ShutdownTests {
    @Test func runningJobsGetTheGraceThenAreCancelledWhileSystemdIsAskedForTime() {
        var stop = Shutdown(now: 100, graceSeconds: 12)
        var tick = stop.tick(now: 100, running: 2)
        #expect(tick.actions == [.extendTimeout(microseconds: 42_000_000)] && tick.wake == 105)
        tick = stop.tick(now: 103, running: 2)
        #expect(tick.actions.isEmpty && tick.wake == 105)
        tick = stop.tick(now: 105, running: 2)
        #expect(tick.actions == [.extendTimeout(microseconds: 37_000_000)] && tick.wake == 110)
        tick = stop.tick(now: 112, running: 1)
        #expect(tick.actions == [.cancel(reason: "shutdown_grace_seconds elapsed"),
                                 .extendTimeout(microseconds: 30_000_000)])
        #expect(tick.wake == 117, "after the cancel: a look every 5 s until the jobs are back")
        #expect(stop.tick(now: 113, running: 1).actions.isEmpty, "cancelled once")
        #expect(stop.signalledAgain("SIGTERM", running: 1) == nil)
    }

    @Test func aSecondSignalCancelsAtOnceButNotWhenNothingRuns() {
        var idle = Shutdown(now: 0, graceSeconds: 60)
        #expect(idle.tick(now: 0, running: 0).actions.isEmpty)
        #expect(idle.signalledAgain("SIGINT", running: 0) == nil)
        var busy = Shutdown(now: 0, graceSeconds: 60)
        #expect(busy.signalledAgain("SIGINT", running: 1) == .cancel(reason: "second SIGINT"))
        #expect(busy.signalledAgain("SIGTERM", running: 1) == nil)
        #expect(busy.tick(now: 61, running: 1).actions == [.extendTimeout(microseconds: 30_000_000)])
    }

    @Test func aZeroGraceCancelsAtTheFirstLook() {
        var stop = Shutdown(now: 5, graceSeconds: 0)
        #expect(stop.tick(now: 5, running: 1).actions
            == [.cancel(reason: "shutdown_grace_seconds elapsed"), .extendTimeout(microseconds: 30_000_000)])
    }
}
