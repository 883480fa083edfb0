import QuantSystem
import SystemPackage

/// Writing to the terminal: messages to stderr, a live status line when stderr is a terminal.
public enum Terminal {
    public static let isInteractive = FileDescriptor.standardError.isTerminal

    public static func error(_ message: String) {
        FileSystem.printError("quantd: error: \(message)")
    }

    /// Writes `text` to stderr as it is (a failed write is dropped).
    public static func write(_ text: String) {
        _ = try? FileDescriptor.standardError.writeAll(text.utf8)
    }

    /// Replaces the current status line (only on a terminal).
    public static func status(_ line: String) {
        guard isInteractive else { return }
        write("\r\u{1B}[2K" + line)
    }

    public static func endStatus() {
        guard isInteractive else { return }
        write("\r\u{1B}[2K")
    }
}

/// Numbers, sizes and shapes as the commands print them.
public enum Format {
    public static func bytes(_ n: Int) -> String {
        let v = Double(n)
        if v >= 1e9 { return fixed(v / 1e9, 2) + " GB" }
        if v >= 1e6 { return fixed(v / 1e6, 1) + " MB" }
        if v >= 1e3 { return fixed(v / 1e3, 1) + " kB" }
        return "\(n) B"
    }

    public static func fixed(_ v: Double, _ digits: Int) -> String {
        guard v.isFinite else { return "\(v)" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let r = (abs(v) * scale).rounded() / scale
        var s = String(Int(r))
        if digits > 0 {
            let frac = Int(((r - r.rounded(.down)) * scale).rounded())
            var f = String(frac)
            while f.count < digits { f = "0" + f }
            s += "." + f
        }
        return v < 0 && r != 0 ? "-" + s : s
    }

    public static func shape(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ", ") + "]" }

    public static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
    }
}
