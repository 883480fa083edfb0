import Foundation
import Logging
import Testing
@testable import QuantDaemon

@Suite("JSON Lines log format")
struct LogFormatTests {
    static let oddNames = [
        "plain.safetensors", "with space.safetensors", "new\nline.safetensors", "quote\"back\\slash",
        "tab\tcr\r", "bell\u{07}esc\u{1b}del\u{7f}", "ünïcödé 模型 🤖", "sep\u{2028}\u{2029}", "nul?\u{0}",
    ]

    @Test(arguments: oddNames)
    func everyLineIsValidJSONWhateverTheName(name: String) throws {
        let event = LogEvent(
            level: .info, message: "committed",
            metadata: ["job": .string(name), "ratio": .stringConvertible(3.25), "bytes": .stringConvertible(42),
                       "ok": .stringConvertible(true), "nan": .stringConvertible(Double.nan),
                       "list": .array([.string(name)]), "nested": .dictionary([name: .string(name)])],
            source: "t", file: #fileID, function: #function, line: #line)
        let line = JSONLinesLogHandler.render(event: event, context: [:])
        #expect(!line.contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["job"] as? String == name)
        #expect(object["event"] as? String == "committed")
        #expect(object["ratio"] as? Double == 3.25)
        #expect(object["bytes"] as? Int == 42)
        #expect(object["ok"] as? Bool == true)
        #expect(object["nan"] is NSNull)
        #expect((object["nested"] as? [String: String])?[name] == name)
    }

    @Test func lineStartsWithTimeLevelEventJob() {
        let event = LogEvent(level: .warning, message: "requeued", metadata: ["zeta": "1", "job": "j"],
                             source: "t", file: #fileID, function: #function, line: #line)
        let line = JSONLinesLogHandler.render(event: event, context: [:])
        #expect(line.hasPrefix("{\"time\":\""))
        #expect(line.contains("\",\"level\":\"warning\",\"event\":\"requeued\",\"job\":\"j\",\"zeta\":\"1\"}"))
    }

    /// `time` is UTC with milliseconds, as docs/DAEMON.md says: `2026-01-31T12:00:00.123Z`.
    @Test func timeIsUTCWithMilliseconds() throws {
        let before = Date()
        let event = LogEvent(level: .info, message: "x", metadata: [:], source: "t", file: #fileID,
                             function: #function, line: #line)
        let line = JSONLinesLogHandler.render(event: event, context: [:])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let time = try #require(object["time"] as? String)
        #expect(time.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil, "\(time)")
        let parsed = try Date(time, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        #expect(abs(parsed.timeIntervalSince(before)) < 5)
    }

    @Test func metricsAreTextExposition() {
        var metrics = Metrics()
        metrics.committed = 2
        metrics.busySeconds = 1.5
        let text = metrics.render(instance: "host-1")
        #expect(text.contains(
            "# TYPE quantd_jobs_committed_total counter\nquantd_jobs_committed_total{instance=\"host-1\"} 2\n"))
        #expect(text.contains("quantd_busy_seconds_total{instance=\"host-1\"} 1.5\n"))
    }

    /// Names are written by the package's one JSON string writer: control characters as `\u00XX`, the rest as it is.
    @Test func logStringsEscapeWhatJSONRequires() {
        let event = LogEvent(level: .info, message: "failed", metadata: ["job": .string("a\nb\t\"c\\\u{7f}\u{2028}é")],
                             source: "t", file: #fileID, function: #function, line: #line)
        let line = JSONLinesLogHandler.render(event: event, context: [:])
        #expect(line.hasSuffix(#","job":"a\u000ab\u0009\"c\\"# + "\u{7f}\u{2028}é\"}"))
    }

    /// Label values escape `\`, `"` and newline and nothing else; read back by the text format's rules, the
    /// instance is the one given.
    @Test(arguments: ["quote\"back\\slash\nnew line", "ünïcödé 模型 🤖", "tab\there", #"\n literally"#])
    func metricsLabelsFollowTheTextFormat(instance: String) throws {
        let text = Metrics(committed: 2).render(instance: instance)
        let sample = try #require(text.split(separator: "\n").first { $0.hasPrefix("quantd_jobs_committed_total{") })
        var rest = Substring(sample.dropFirst("quantd_jobs_committed_total{instance=\"".count))
        var value = ""
        while let c = rest.popFirst(), c != "\"" {
            guard c == "\\" else { value.append(c); continue }
            switch rest.popFirst() {
            case "\\": value.append("\\")
            case "\"": value.append("\"")
            case "n": value.append("\n")
            default: Issue.record("an escape the text format does not have: \(sample)")
            }
        }
        #expect(value == instance)
        #expect(rest == "} 2")
        #expect(text.split(separator: "\n").count == 24, "no line broken by the name")
        #expect(Metrics.escapedHelp("a\\b\n\"c\"") == #"a\\b\n"c""#)
        #expect(Metrics.sampleValue(.nan) == "NaN" && Metrics.sampleValue(-.infinity) == "-Inf")
        #expect(Metrics.sampleValue(.infinity) == "+Inf" && Metrics.sampleValue(1.5) == "1.5")
    }
}
