import Foundation
import Testing
import TestSupport

/// The three builds of the fast kernels (KernelsBaseline, KernelsV3, KernelsV4) must not hand each other code. A
/// weak definition of the same name in two of them (a shared copy of generic library code, a default argument of
/// QuantizationCore) is one symbol to the linker, which keeps any one copy for every caller: an AVX-512 copy would
/// then run on a CPU without AVX-512. So each build may define weak code of its own module only, and the
/// compiler's own helpers (`__swift_memcpy<size>_<alignment>`, a jump to memcpy, and `__swift_noop_void_return`)
/// only while they hold no AVX instruction.
@Suite("kernel builds share no code")
struct KernelBuildTests {
    /// The build folders that hold the kernel modules' objects: the tests' own, and the release one beside
    /// $QUANTD_RELEASE_BIN when it is set.
    static let buildFolders: [String] = {
        var folders = [URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().path]
        if let release = ProcessInfo.processInfo.environment["QUANTD_RELEASE_BIN"] {
            folders.append(URL(fileURLWithPath: release).deletingLastPathComponent().path)
        }
        return folders
    }()

    @Test("each kernel build defines no weak code but its own", arguments: ["KernelsBaseline", "KernelsV3", "KernelsV4"])
    func ownWeakCodeOnly(_ module: String) throws {
        let nm = try #require(Shell.which("nm"), "nm (binutils) lists the symbols")
        let objdump = try #require(Shell.which("objdump"), "objdump (binutils) shows the helpers' code")
        // Swift mangles a module's name as its length and the name: every symbol of its own holds that.
        let own = "\(module.utf8.count)\(module)"
        for folder in Self.buildFolders {
            let objects = try FileManager.default.contentsOfDirectory(atPath: "\(folder)/\(module).build")
                .filter { $0.hasSuffix(".o") }.map { "\(folder)/\(module).build/\($0)" }
            #expect(!objects.isEmpty, "no objects in \(folder)/\(module).build")
            let r = Shell.run(nm, ["--defined-only"] + objects)
            #expect(r.status == 0, "\(r.stderr)")
            let weak = r.stdout.split(separator: "\n").compactMap { line -> String? in
                let fields = line.split(separator: " ")
                return fields.count == 3 && fields[1] == "W" && !fields[2].contains(own) ? String(fields[2]) : nil
            }
            let helpers = weak.filter { $0.hasPrefix("__swift_memcpy") || $0 == "__swift_noop_void_return" }
            let foreign = weak.filter { !helpers.contains($0) }
            #expect(foreign.isEmpty, "\(folder)/\(module).build defines weak code of other modules: \(foreign)")
            for helper in Set(helpers) {
                let code = Shell.run(objdump, ["-d", "--no-show-raw-insn", "--disassemble=\(helper)"] + objects)
                // An instruction line is "address:<tab>mnemonic operands"; AVX mnemonics start with v.
                let avx = code.stdout.split(separator: "\n").filter { line in
                    let parts = line.split(separator: "\t")
                    return parts.count >= 2 && line.hasPrefix(" ") && parts[1].hasPrefix("v")
                }
                #expect(code.status == 0 && avx.isEmpty, "\(module): \(helper) holds AVX code: \(avx)")
            }
        }
    }
}
