import Logging

extension Spool.Recovery {
    /// One log line of what recovery did.
    struct Line {
        var level: Logger.Level
        var event: String
        var metadata: Logger.Metadata
    }

    /// What recovery did, as the log tells it, in this order: `instance_dead`, `requeued`, `commit_recovered`,
    /// `staging_removed`, `staging_kept`, `record_recovered`, `recovery_failed`.
    func lines(spool: Spool) -> [Line] {
        var lines: [Line] = []
        for owner in deadInstances {
            lines.append(Line(level: .notice, event: "instance_dead", metadata: [
                "instance": .string(owner), "lock": .string(spool.lockPath(owner)),
                "reason": .string("its lock is free: its claims and staging are taken back"),
            ]))
        }
        for (owner, from, to) in requeued {
            lines.append(Line(level: .notice, event: "requeued", metadata: [
                "job": .string(to), "claim": .string(spool.active + "/" + from), "instance": .string(owner),
                "reason": .string(owner == spool.instance ? "claimed by this instance before a restart"
                                    : "claimed by instance '\(owner)', which is dead"),
            ]))
        }
        for (owner, name, output, input) in finished {
            lines.append(Line(level: .notice, event: "commit_recovered", metadata: [
                "job": .string(name), "output": .string(spool.out + "/" + output), "instance": .string(owner),
                "input": .string(input ?? "deleted"),
                "reason": .string("committed before a crash; its manifest matches the claimed input"),
            ]))
        }
        for name in removedStaging {
            lines.append(Line(level: .notice, event: "staging_removed", metadata: [
                "path": .string(spool.out + "/" + name), "reason": .string("left by an interrupted job"),
            ]))
        }
        for name in keptStaging {
            lines.append(Line(level: .notice, event: "staging_kept", metadata: [
                "path": .string(spool.out + "/" + name),
                "reason": .string("left by an interrupted job that is queued again: it resumes from what its "
                    + "journal proves finished"),
            ]))
        }
        for name in recordsWritten {
            lines.append(Line(level: .warning, event: "record_recovered", metadata: [
                "path": .string(spool.failed + "/" + name + ".error.json"),
                "reason": .string("a quarantined entry had no record (a crash between the move and the record)"),
            ]))
        }
        for problem in problems {
            lines.append(Line(level: .error, event: "recovery_failed", metadata: ["reason": .string(problem)]))
        }
        return lines
    }
}
