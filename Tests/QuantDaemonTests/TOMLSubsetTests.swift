import Foundation
import Testing
import TestSupport
@testable import QuantDaemon

/// The configuration file's syntax is TOML 1.0's for everything it reads (toml.io/en/v1.0.0, its ABNF):
/// what TOML accepts is read with TOML's value, what TOML refuses is refused, naming why.
@Suite("TOML subset")
struct TOMLSubsetTests {
    static let integers: [(String, Int)] = [
        ("0", 0), ("+0", 0), ("-0", 0), ("42", 42), ("+99", 99), ("-17", -17), ("1_000", 1000),
        ("5_349_221", 5_349_221), ("1_2_3_4_5", 12345), ("9223372036854775807", Int.max),
        ("-9223372036854775808", Int.min), ("0xDEADBEEF", 0xDEAD_BEEF), ("0xdead_beef", 0xDEAD_BEEF),
        ("0x00ff", 255), ("0o01234567", 0o1234567), ("0o755", 0o755), ("0b11010110", 0b1101_0110),
        ("0b1_0", 2), ("0x7FFF_FFFF_FFFF_FFFF", Int.max),
    ]

    @Test(arguments: integers)
    func integersTOMLAccepts(text: String, value: Int) throws {
        #expect(try TOMLSubset.parseValue(text) == .integer(value))
    }

    static let floats: [(String, Double)] = [
        ("+1.0", 1), ("3.1415", 3.1415), ("-0.01", -0.01), ("5e+22", 5e22), ("1e06", 1e6), ("-2E-2", -0.02),
        ("6.626e-34", 6.626e-34), ("224_617.445_991_228", 224_617.445_991_228), ("0.0", 0), ("-0.0", -0.0),
        ("+0.0", 0), ("0e0", 0), ("1e1_0", 1e10), ("9_9.5", 99.5), ("1.5E+0_3", 1500), ("0.000_1", 0.0001),
    ]

    @Test(arguments: floats)
    func floatsTOMLAccepts(text: String, value: Double) throws {
        #expect(try TOMLSubset.parseValue(text) == .float(value))
    }

    /// Each refused spelling with the words of its reason.
    static let refusedNumbers: [(String, String)] = [
        ("_1", "underscore must stand between two digits"), ("1_", "underscore must stand between two digits"),
        ("1__0", "underscore must stand between two digits"), ("1_.5", "underscore must stand between two digits"),
        ("1._5", "underscore must stand between two digits"), ("1e_5", "underscore must stand between two digits"),
        ("1e5_", "underscore must stand between two digits"), ("0x_1", "underscore must stand between two digits"),
        ("0b1__0", "underscore must stand between two digits"),
        ("01", "leading zeros"), ("+01", "leading zeros"), ("-00", "leading zeros"), ("0_0", "leading zeros"),
        ("00.5", "leading zeros"), ("07e2", "leading zeros"),
        ("0x", "no digits"), ("0o", "no digits"), ("+", "no digits"), ("-", "no digits"),
        ("0xg1", "'g' is not a hexadecimal digit"), ("0o8", "'8' is not an octal digit"),
        ("0b102", "'2' is not a binary digit"), ("0x1.5", "'.' is not a hexadecimal digit"),
        ("+0x1", "no sign"), ("-0o7", "no sign"), ("+0b1", "no sign"),
        ("0X1", "unexpected 'X'"), ("0B1", "unexpected 'B'"),
        ("1.", "digits on both sides"), (".5", "digits on both sides"), ("-.5", "digits on both sides"),
        ("1.e5", "digits on both sides"), ("1e", "exponent has no digits"), ("1e+", "exponent has no digits"),
        ("1.5.3", "unexpected '.'"), ("1e5.0", "unexpected '.'"), ("1e5e5", "unexpected 'e'"),
        ("1979-05-27", "unexpected '-'"), ("12abc", "unexpected 'a'"), ("3é", "non-ASCII"),
        ("9223372036854775808", "64-bit integer"), ("-9223372036854775809", "64-bit integer"),
        ("0x8000000000000000", "64-bit integer"), ("1e400", "64-bit float"), ("-1e309", "64-bit float"),
        ("inf", "expected a finite number"), ("+inf", "expected a finite number"),
        ("-inf", "expected a finite number"), ("nan", "expected a finite number"),
        ("+nan", "expected a finite number"), ("-nan", "expected a finite number"),
    ]

    @Test(arguments: refusedNumbers)
    func numbersTOMLRefusesAreRefused(text: String, reason: String) {
        let refused = Self.refusal(text)
        #expect(refused?.contains(reason) == true, "\(text): \(refused ?? "accepted")")
    }

    /// Why `text` is refused as a value, nil when it is accepted.
    static func refusal(_ text: String) -> String? {
        do {
            _ = try TOMLSubset.parseValue(text)
            return nil
        } catch {
            return error.reason
        }
    }

    @Test func wordsThatAreNotNumbersSayWhatWasExpected() throws {
        for text in ["yes", "True", "FALSE", "Inf", "NaN", "x1", "_"] {
            #expect(Self.refusal(text) == "expected a quoted string, a number, true, false or [\"...\"], got \(text)")
        }
        #expect(try TOMLSubset.parseValue("true") == .bool(true))
        #expect(try TOMLSubset.parseValue("false # no") == .bool(false))
    }

    @Test func stringsHaveTOMLsEscapesAndLiteralsNone() throws {
        #expect(try TOMLSubset.parseValue(#""a\b\t\n\f\r\"\\\u00e9\U0001F600z""#)
            == .string("a\u{08}\t\n\u{0C}\r\"\\é😀z"))
        #expect(try TOMLSubset.parseValue(#"'C:\Users\nobody' # a literal"#) == .string(#"C:\Users\nobody"#))
        #expect(try TOMLSubset.parseValue("\"tab\tinside\"") == .string("tab\tinside"), "TOML allows a raw tab")
        #expect(try TOMLSubset.parseValue(#"["a", 'b\c',]"#) == .strings(["a", #"b\c"#]))
        #expect(try TOMLSubset.parseValue("''") == .string(""))
        let refused: [(String, String)] = [
            (#""\x41""#, "invalid escape \\x"), (#""\e""#, "invalid escape \\e"), (#""\u00e""#, "invalid \\u escape"),
            (#""\u+0e9""#, "invalid \\u escape"), (#""\ud800""#, "invalid \\u escape"),
            (#""\U00110000""#, "invalid \\U escape"), ("\"del\u{7F}\"", "control character in a string"),
            ("'nul\u{0}'", "control character in a string"), ("\"\"\"multi\"\"\"", "multi-line strings"),
            ("'''multi'''", "multi-line strings"), ("'open", "unterminated string"), (#""a" "b""#, "unexpected text"),
            (#"["a" "b"]"#, "expected , or ]"), ("[1]", "arrays hold quoted strings only"),
            ("1 # bell\u{07}", "control character in a comment"),
        ]
        for (text, reason) in refused {
            #expect(Self.refusal(text)?.contains(reason) == true, "\(text): \(Self.refusal(text) ?? "accepted")")
        }
    }

    @Test func commentsAndTablesFollowTOML() throws {
        let entries = try TOMLSubset.parse("# tab\tin a comment\n[quantize] # c\nlevel = 0x3\n\n[ limits ]\n"
                                               + "max_rank = 0o10\r\n", source: "f")
        #expect(entries == [TOMLSubset.Entry(key: "quantize.level", value: .integer(3), line: 3),
                            TOMLSubset.Entry(key: "limits.max_rank", value: .integer(8), line: 6)])
        let crlf = try TOMLSubset.parse("# TOML's other newline\r\nmax_jobs = 2\r\n[limits]\r\nmax_rank = 4\r\n",
                                        source: "f")
        #expect(crlf.map(\.value) == [.integer(2), .integer(4)] && crlf.map(\.line) == [2, 4])
        for (text, reason) in [("# del\u{7F}", "control character in a comment"),
                               ("[quantize] # esc\u{1B}", "control character in a comment"),
                               ("[quantize]\nlevel = 1\n[quantize]", "table [quantize] defined twice")] {
            #expect(throws: ConfigError.self) { try TOMLSubset.parse(text, source: "f") }
            do {
                _ = try TOMLSubset.parse(text, source: "f")
            } catch {
                #expect(error.reason == reason && error.key == nil)
            }
        }
    }

    /// Where users meet the syntax: `quantd run --config FILE` refuses to start, exit 78, naming file, line and key.
    @Test(arguments: [
        ("max_jobs = 1__0", "max_jobs': invalid number 1__0: an underscore must stand between two digits"),
        ("max_jobs = _1", "max_jobs': invalid number _1: an underscore must stand between two digits"),
        ("max_jobs = 01", "max_jobs': invalid number 01: leading zeros are not allowed"),
        ("max_jobs = +0x2", "max_jobs': invalid number +0x2: no sign is allowed before 0x, 0o or 0b"),
        ("max_jobs = 0o9", "max_jobs': invalid number 0o9: '9' is not an octal digit"),
        ("max_jobs = 9223372036854775808",
         "max_jobs': invalid number 9223372036854775808: out of the range of a 64-bit integer"),
        ("settle_seconds = 2.", "settle_seconds': invalid number 2.: '.' needs digits on both sides"),
        ("settle_seconds = inf", "settle_seconds': expected a finite number, got inf"),
    ])
    func refusedNumberStopsTheDaemonNamingLineAndKey(line: String, message: String) async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let file = try scratch.write("spool = \"\(scratch.spool)\"\n\n\(line)\n", as: "n.toml")
        let daemon = try DaemonProcess(arguments: ["run", "--config", file], scratch: scratch, logToFile: false)
        defer { daemon.stop() }
        #expect(try await daemon.waitForExit() == 78)
        #expect(daemon.stderr.contains("n.toml:3: key '" + message), "\(daemon.stderr)")
    }

    /// Every spelling of a number TOML accepts reaches the daemon with its value (the `started` line's config).
    @Test func acceptedSpellingsReachTheDaemon() async throws {
        let scratch = TempDir()
        defer { scratch.remove() }
        let file = try scratch.write("""
            spool = '\(scratch.spool)'
            max_jobs = 0x3
            memory_budget_mib = 0o4_000
            settle_seconds = 1_5e-1
            rescan_seconds = +6E1
            shutdown_grace_seconds = 1_0.25
            [limits]
            max_tensors = 0b1_010
            max_rank = +1_6
            """, as: "ok.toml")
        let daemon = try DaemonProcess(arguments: ["run", "--config", file], scratch: scratch)
        defer { daemon.stop() }
        let started = try #require(try await daemon.waitFor("started").first)
        let config = try #require(started["config"] as? [String: Any])
        #expect(config["max_jobs"] as? Int == 3 && config["memory_budget_mib"] as? Int == 2048)
        #expect(config["settle_seconds"] as? Double == 1.5 && config["rescan_seconds"] as? Int == 60)
        #expect(config["shutdown_grace_seconds"] as? Double == 10.25)
        #expect(config["limits.max_tensors"] as? Int == 10 && config["limits.max_rank"] as? Int == 16)
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
    }
}
