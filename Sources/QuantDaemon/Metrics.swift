import QuantSystem
import SafeTensors

/// Counters for the Prometheus textfile collector (node_exporter reads `*.prom`).
struct Metrics: Equatable {
    var committed = 0
    var failed = 0
    var requeued = 0
    var inputBytes = 0
    var outputBytes = 0
    var busySeconds = 0.0
    var queueLength = 0
    var running = 0
    var lastCommitUnixSeconds: Double?

    /// The text exposition format, labelled with the daemon's instance.
    func render(instance: String) -> String {
        let label = "{instance=\"" + Self.escapedLabelValue(instance) + "\"}"
        var text = ""
        func metric(_ name: String, _ type: String, _ help: String, _ value: Double) {
            text += "# HELP \(name) \(Self.escapedHelp(help))\n# TYPE \(name) \(type)\n"
            text += "\(name)\(label) \(Self.sampleValue(value))\n"
        }
        metric("quantd_jobs_committed_total", "counter", "Jobs committed since start.", Double(committed))
        metric("quantd_jobs_failed_total", "counter", "Inputs quarantined in failed/ since start.", Double(failed))
        metric("quantd_jobs_requeued_total", "counter", "Jobs returned to the queue since start.", Double(requeued))
        metric("quantd_input_bytes_total", "counter", "Source bytes of committed jobs.", Double(inputBytes))
        metric("quantd_output_bytes_total", "counter", "Compressed bytes of committed jobs.", Double(outputBytes))
        metric("quantd_busy_seconds_total", "counter", "Seconds spent in finished jobs.", busySeconds)
        metric("quantd_queue_length", "gauge", "Entries waiting in incoming/.", Double(queueLength))
        metric("quantd_jobs_running", "gauge", "Jobs running now.", Double(running))
        if let lastCommitUnixSeconds {
            metric("quantd_last_commit_timestamp_seconds", "gauge", "Time of the last commit.", lastCommitUnixSeconds)
        }
        return text
    }

    /// A label value as the text format writes it: `\`, `"` and newline escaped, nothing else.
    static func escapedLabelValue(_ value: String) -> String {
        escaped(value, quote: true)
    }

    /// `# HELP` text as the text format writes it: `\` and newline escaped.
    static func escapedHelp(_ help: String) -> String {
        escaped(help, quote: false)
    }

    private static func escaped(_ text: String, quote: Bool) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\"" where quote: out += "\\\""
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// A sample value: whole numbers without a fraction, others to three decimals; `NaN`, `+Inf` and `-Inf` as
    /// the format spells them.
    static func sampleValue(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        return JSONText.number(value)
    }

    func write(to path: String, instance: String) throws(SystemError) {
        try FS.writeAtomically(Array(render(instance: instance).utf8), to: path)
    }
}
