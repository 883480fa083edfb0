import FoundationEssentials
import QuantEngine
import QuantSystem
import SystemPackage

/// What a failed job becomes: requeued as it is, retried after a delay, or quarantined. Transient failures
/// (not the input's fault) wait `initialSeconds`, doubling with each attempt up to `maxSeconds`.
struct RetryPolicy: Equatable {
    var initialSeconds: Double
    var maxSeconds: Double

    /// A failure as the policy sees it (the loop classifies the engine's error).
    enum Failure: Equatable {
        /// Cancelled at shutdown: requeued, no attempt counted.
        case cancelled
        /// ENOSPC, EIO, EMFILE, ...: retried with a growing delay.
        case transient
        /// The output name was taken meanwhile (EEXIST at the commit): retried at once under another name.
        case outputExists
        /// The input's fault: quarantined.
        case permanent

        /// What a job's error is, for this policy.
        init(_ error: EngineError) {
            self = error.kind == .cancelled ? .cancelled
                : error.isTransient ? .transient
                : error.kind == .cannotCreateOutput && error.errno == Errno.fileExists.rawValue ? .outputExists
                : .permanent
        }
    }

    enum Decision: Equatable {
        case requeue
        case retry(attempt: Int, delaySeconds: Double)
        case quarantine
    }

    /// The delay before attempt `attempt + 1`, after `attempt` (1 or more) transient failures.
    func delay(afterAttempt attempt: Int) -> Double {
        min(initialSeconds * Double(1 << min(max(attempt, 1) - 1, 30)), maxSeconds)
    }

    func decide(_ failure: Failure, previousAttempts: Int) -> Decision {
        switch failure {
        case .cancelled: .requeue
        case .transient: .retry(attempt: previousAttempts + 1, delaySeconds: delay(afterAttempt: previousAttempts + 1))
        case .outputExists: .retry(attempt: previousAttempts + 1, delaySeconds: 0)
        case .permanent: .quarantine
        }
    }
}

/// `active/.<instance>.retry.json`: the backoffs of one instance, kept across restarts. Written through a
/// temporary file and renamed; removed when no backoff is left. Times are wall-clock (Unix seconds), since the
/// monotonic clock starts over with the machine; a restarted daemon waits what is left of each, at most
/// `maxWait` (a clock set back does not make it wait longer than the policy allows).
struct RetryState: Equatable {
    static let version = 1

    var backoffs: [String: Admission.Backoff]

    private struct File: Codable {
        var version: Int
        var entries: [String: Item]
        struct Item: Codable {
            var attempts: Int
            var retryAtUnixSeconds: Double
            enum CodingKeys: String, CodingKey {
                case attempts
                case retryAtUnixSeconds = "retry_at_unix_seconds"
            }
        }
    }

    struct Corrupt: Error, Equatable, CustomStringConvertible {
        var description: String
    }

    /// The file's bytes for `backoffs` (monotonic `until`s) at `now` (monotonic) and `unixNow`.
    func encoded(now: Double, unixNow: Double) -> [UInt8] {
        let file = File(version: Self.version, entries: backoffs.mapValues {
            File.Item(attempts: $0.attempts, retryAtUnixSeconds: unixNow + max($0.until - now, 0))
        })
        // No key strategy: it would rewrite the entry names, which are dictionary keys.
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(file)) ?? Data("{}".utf8)) + [0x0A]
    }

    /// The backoffs a file holds, on the monotonic clock at `now`; throws `Corrupt` for anything but a file this
    /// version wrote (bad JSON, another version, a negative attempt count, a time that is not a number).
    static func decode(_ bytes: [UInt8], now: Double, unixNow: Double, maxWait: Double) throws(Corrupt) -> RetryState {
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: Data(bytes))
        } catch {
            throw Corrupt(description: "not a retry state file: \(error)")
        }
        guard file.version == version else {
            throw Corrupt(description: "version \(file.version), this quantd reads version \(version)")
        }
        var backoffs: [String: Admission.Backoff] = [:]
        for (name, item) in file.entries {
            guard item.attempts >= 0, item.retryAtUnixSeconds.isFinite, !name.isEmpty, !name.contains("/") else {
                throw Corrupt(description: "entry '\(name)': attempts \(item.attempts), "
                    + "retry_at_unix_seconds \(item.retryAtUnixSeconds)")
            }
            let left = min(max(item.retryAtUnixSeconds - unixNow, 0), maxWait)
            backoffs[name] = Admission.Backoff(attempts: item.attempts, until: now + left)
        }
        return RetryState(backoffs: backoffs)
    }
}
