internal import CPUFeatures
internal import FoundationEssentials

/// The builds of the fast kernels in every quantd binary, one per x86-64 instruction-set level of the psABI
/// (Sources/FastKernels compiled three times, each with its `-march`), so that one binary runs on any x86-64
/// machine at the speed of the best level that machine has. `selected` is chosen once, at the first kernel call:
/// the best variant this CPU and OS can run, or the one QUANTD_KERNELS names. All of them give the same bits.
public enum KernelVariant: Int, CaseIterable, Sendable, Comparable, CustomStringConvertible {
    /// x86-64 with SSE2 only: runs anywhere.
    case baseline
    /// x86-64-v3: AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE (Intel since Haswell, AMD since Zen 1).
    case v3
    /// x86-64-v4: AVX-512 F, BW, CD, DQ and VL (Intel Skylake-SP and later Xeons, AMD since Zen 4).
    case v4

    /// The name QUANTD_KERNELS takes.
    public var name: String {
        switch self {
        case .baseline: "baseline"
        case .v3: "v3"
        case .v4: "v4"
        }
    }

    /// The instruction-set level this variant is compiled for (what `-march` was given).
    public var level: String {
        switch self {
        case .baseline: "x86-64"
        case .v3: "x86-64-v3"
        case .v4: "x86-64-v4"
        }
    }

    /// The level and its widest vectors, as `quantd --version` and the daemon's `started` line show it:
    /// "x86-64-v3 (avx2)".
    public var description: String {
        switch self {
        case .baseline: "\(level) (sse2)"
        case .v3: "\(level) (avx2)"
        case .v4: "\(level) (avx512)"
        }
    }

    public static func < (a: KernelVariant, b: KernelVariant) -> Bool { a.rawValue < b.rawValue }

    /// Whether this CPU and OS can run this variant (every kernel call asks: a bit test).
    public var isSupported: Bool { Self.runnable & 1 << rawValue != 0 }

    /// Bit `rawValue` set for each variant this machine runs, found once.
    private static let runnable = allCases.reduce(0) { $1.missingFeatures.isEmpty ? $0 | 1 << $1.rawValue : $0 }

    /// The features this variant is compiled for that this CPU (or its OS) lacks, by their /proc/cpuinfo names.
    public var missingFeatures: [String] {
        let have = Self.cpuFeatures
        return requiredFeatures.filter { have & $0.bit == 0 }.map(\.name)
    }

    /// The best variant this machine runs.
    public static let best: KernelVariant = allCases.last { $0.isSupported } ?? .baseline

    /// The variant the kernels run unless a caller names one: QUANTD_KERNELS when it is set (to a lower variant,
    /// for tests and A/B measurements), else `best`. A value that is no variant, or one this CPU cannot run,
    /// stops the program with the reason; a program that wants to say so itself calls `fromEnvironment()` first.
    public static let selected: KernelVariant = {
        do {
            return try fromEnvironment()
        } catch {
            fatalError("\(error)")
        }
    }()

    /// The variant QUANTD_KERNELS asks for (`best` when it is unset or empty); throws when it names no variant
    /// or one this CPU cannot run.
    public static func fromEnvironment() throws(KernelVariantError) -> KernelVariant {
        guard let value = ProcessInfo.processInfo.environment["QUANTD_KERNELS"], !value.isEmpty else { return best }
        return try requested(value)
    }

    /// The variant `value` names (`baseline`, `v3`, `v4`, or the level: `x86-64`, `x86-64-v3`, `x86-64-v4`),
    /// when this CPU can run it.
    public static func requested(_ value: String) throws(KernelVariantError) -> KernelVariant {
        guard let variant = allCases.first(where: { $0.name == value || $0.level == value }) else {
            throw KernelVariantError(description: "QUANTD_KERNELS=\(value) names no kernel variant: use "
                + allCases.map(\.name).joined(separator: ", ") + ", or leave it unset for the best this CPU runs ("
                + "\(best))")
        }
        guard variant.isSupported else {
            throw KernelVariantError(description: "QUANTD_KERNELS=\(value): this CPU cannot run the \(variant) "
                + "kernels (it lacks \(variant.missingFeatures.joined(separator: ", "))); the best it runs is \(best)")
        }
        return variant
    }

    /// `selected`, and whether QUANTD_KERNELS chose it: "x86-64-v3 (avx2)", or "x86-64 (sse2), set by
    /// QUANTD_KERNELS (best here: x86-64-v3 (avx2))".
    public static var selectedSummary: String {
        selected == best && ProcessInfo.processInfo.environment["QUANTD_KERNELS"] == nil
            ? selected.description : "\(selected), set by QUANTD_KERNELS (best here: \(best))"
    }

    /// The features of this CPU and OS (`CPUFeatures`), read once.
    private static let cpuFeatures = UInt32(quantd_cpu_features())

    /// What `-march=<level>` lets the compiler use beyond SSE2, each level including the ones below.
    private var requiredFeatures: [(name: String, bit: UInt32)] {
        let v2: [(String, Int)] = [
            ("sse3", QUANTD_CPU_SSE3), ("ssse3", QUANTD_CPU_SSSE3), ("sse4_1", QUANTD_CPU_SSE4_1),
            ("sse4_2", QUANTD_CPU_SSE4_2), ("popcnt", QUANTD_CPU_POPCNT), ("cx16", QUANTD_CPU_CX16),
            ("lahf_lm", QUANTD_CPU_LAHF_SAHF),
        ]
        let v3: [(String, Int)] = [
            ("avx", QUANTD_CPU_AVX), ("avx2", QUANTD_CPU_AVX2), ("fma", QUANTD_CPU_FMA), ("f16c", QUANTD_CPU_F16C),
            ("bmi1", QUANTD_CPU_BMI1), ("bmi2", QUANTD_CPU_BMI2), ("abm", QUANTD_CPU_LZCNT),
            ("movbe", QUANTD_CPU_MOVBE), ("xsave", QUANTD_CPU_XSAVE),
        ]
        let v4: [(String, Int)] = [
            ("avx512f", QUANTD_CPU_AVX512F), ("avx512bw", QUANTD_CPU_AVX512BW), ("avx512cd", QUANTD_CPU_AVX512CD),
            ("avx512dq", QUANTD_CPU_AVX512DQ), ("avx512vl", QUANTD_CPU_AVX512VL),
        ]
        let features: [(String, Int)] = switch self {
        case .baseline: []
        case .v3: v2 + v3
        case .v4: v2 + v3 + v4
        }
        return features.map { (name: $0.0, bit: UInt32($0.1)) }
    }
}

/// QUANTD_KERNELS names no kernel variant, or one this CPU cannot run.
public struct KernelVariantError: Error, Sendable, CustomStringConvertible {
    public var description: String
}
