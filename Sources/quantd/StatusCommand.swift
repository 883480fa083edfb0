import ArgumentParser
import FoundationEssentials
import QuantDaemon

extension Quantd {
    /// `quantd status`: the queue and the last jobs of a spool.
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the queue of a spool and its last jobs with their figures.")

        @Option(help: "Spool folder (default: $XDG_STATE_HOME/quantd/spool, or ~/.local/state/quantd/spool).")
        var spool: String?

        @Option(help: "How many finished jobs to list.")
        var last = 10

        func validate() throws {
            guard last >= 0 else { throw ValidationError("--last must be 0 or more") }
        }

        func run() throws {
            let root = spool.map(absolute) ?? DaemonConfig(environment: ProcessInfo.processInfo.environment).spool
            do {
                print(try SpoolStatus.read(spool: root, last: last).render(), terminator: "")
            } catch {
                print("quantd: \(error)")
                throw ExitCode(66)
            }
        }
    }
}
