/// What SIGHUP changes: the loaded configuration, except the keys a running daemon cannot change (its spool,
/// instance, watch mode and byte budget), which keep their running values and are named for the log.
enum Reload {
    static func merge(running: DaemonConfig, loaded: DaemonConfig) -> (next: DaemonConfig, needsRestart: [String]) {
        var next = loaded
        var needsRestart: [String] = []
        if next.spool != running.spool { needsRestart.append("spool"); next.spool = running.spool }
        if next.instance != running.instance { needsRestart.append("instance"); next.instance = running.instance }
        if next.poll != running.poll { needsRestart.append("poll"); next.poll = running.poll }
        if next.memoryBudgetMiB != running.memoryBudgetMiB {
            needsRestart.append("memory_budget_mib")
            next.memoryBudgetMiB = running.memoryBudgetMiB
        }
        return (next, needsRestart)
    }
}
