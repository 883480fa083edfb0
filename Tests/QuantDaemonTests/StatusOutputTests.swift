import Foundation
import Testing
import TestSupport

@Suite("quantd status output")
struct StatusOutputTests {
    /// A name holding a newline, a terminal escape (C0 ESC and C1 CSI) or a line separator is shown escaped, by
    /// the same rule as error messages: one entry, one line, nothing a terminal acts on.
    @Test func oddNamesAreShownEscapedOnOneLine() throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        for folder in ["incoming", "active", "out", "done", "failed"] {
            try FileManager.default.createDirectory(atPath: scratch.spool + "/" + folder,
                                                    withIntermediateDirectories: true)
        }
        let names = ["new\nline.safetensors", "esc\u{1B}[2J.safetensors", "csi\u{9B}31m.safetensors",
                     "sep\u{2028}.safetensors", "ünïcödé 模型.safetensors"]
        for name in names {
            try Data([1]).write(to: URL(fileURLWithPath: scratch.incoming + "/" + name))
        }
        let result = Shell.run(Paths.quantd, ["status", "--spool", scratch.spool])
        #expect(result.status == 0)
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        for shown in [#"new\u{a}line.safetensors"#, #"esc\u{1b}[2J.safetensors"#, #"csi\u{9b}31m.safetensors"#,
                      #"sep\u{2028}.safetensors"#, "ünïcödé 模型.safetensors"] {
            #expect(lines.contains { $0.hasSuffix("waiting  " + shown + "  0.0 MB") }, "\(shown) in \(result.stdout)")
        }
        #expect(!result.stdout.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{9B}" || $0 == "\u{2028}" })
    }
}
