// swift-tools-version: 6.1
import PackageDescription

/// quantd runs on Linux: Debian bookworm, x86-64, Swift 6.3. `platforms:` is left out, since SwiftPM names
/// minimum versions of Apple's systems only and has none for Linux.
///
/// The kernel modules (QuantizationCore, the three builds of the fast kernels, Quantization) are compiled
/// `-Ounchecked` in release builds: no bounds, overflow or exclusivity checks, and `precondition` is not evaluated
/// there. What holds: each public entry of Quantization that takes buffers checks the sizes and shapes it indexes by
/// (products of dimensions with overflow detection) with `check`, an `if` around `fatalError`, which `-Ounchecked`
/// keeps, so a mismatch stops the program with the check's message in every build (KernelEdgeTests runs the
/// release-built Tests/KernelEdgeProbe to see it). Within checked sizes the loops stay in bounds by construction,
/// and the reference-agreement tests run them on many shapes. Entries given raw pointers (`decode`,
/// `ScaleFormat.encode`) cannot see the memory behind them: their caller vouches for it.
///
/// Fast kernels in every build, on any x86-64: Sources/FastKernels is compiled three times, for the psABI levels
/// x86-64 (SSE2), x86-64-v3 (AVX2, FMA) and x86-64-v4 (AVX-512), into KernelsBaseline, KernelsV3 and KernelsV4,
/// whose folders hold links to its files (SwiftPM takes no file into two targets). `-Xcc -march=LEVEL` sets the
/// level: swiftc's own `-target-cpu` knows no `x86-64-v3`, and it takes its CPU and features from the C side.
/// Quantization reads the CPU's features once (CPUFeatures: CPUID and XGETBV) and calls the best build it can run
/// (`KernelVariant`); QUANTD_KERNELS=baseline|v3 asks for a lower one.
///
/// The three builds are optimised in debug builds too: the tests then run the code that ships, and an
/// unoptimised build would call shared copies of generic library code (`loadUnaligned`, ...), weak symbols of
/// the same name in all three modules, of which the linker keeps any one, say the AVX-512 one. An optimised build
/// inlines them; KernelEdgeTests checks that the builds define no weak code but their own.
///
/// QUANTD_KERNELS_V4_MARCH (an `-march` value, e.g. `sapphirerapids` or `znver4`) builds KernelsV4 for one CPU
/// instead, as the former TARGET_CPU did for the whole program: only for `scripts/ab-march.sh`, which times such
/// a build against the default one, in a scratch path of its own.
let uncheckedFlags = ["-Ounchecked", "-enforce-exclusivity=unchecked"]
let v4March = Context.environment["QUANTD_KERNELS_V4_MARCH"] ?? "x86-64-v4"
let unchecked: [SwiftSetting] = [.unsafeFlags(uncheckedFlags, .when(configuration: .release))]
func kernelBuild(_ name: String, march: String?) -> Target {
    .target(name: name, dependencies: ["QuantizationCore", "CPrefetch"],
            swiftSettings: [.unsafeFlags(uncheckedFlags + (march.map { ["-Xcc", "-march=\($0)"] } ?? []))])
}

let package = Package(
    name: "quantd",
    products: [
        .executable(name: "quantd", targets: ["quantd"]),
        .executable(name: "quantd-bench", targets: ["QuantBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        .target(name: "Zstd", dependencies: ["CZstd"]),
        .target(name: "CLinux"),
        /// Every system call quantd makes, on swift-system, with one error type; C stays inside it.
        .target(
            name: "QuantSystem",
            dependencies: ["CLinux", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .target(name: "SafeTensors", dependencies: ["QuantSystem"]),
        .target(name: "QuantizationCore", swiftSettings: unchecked),
        kernelBuild("KernelsBaseline", march: nil),
        kernelBuild("KernelsV3", march: "x86-64-v3"),
        kernelBuild("KernelsV4", march: v4March),
        .target(name: "CPUFeatures"),
        /// A cache prefetch hint for the kernels (Swift has none).
        .target(name: "CPrefetch"),
        /// SHA-256's compression function with the SHA extensions: the input's hash, whose state a checkpoint saves
        /// (swift-crypto's cannot be saved).
        .target(name: "CSHA256"),
        /// The kernels' API: size checks, then the build of the fast kernels that this CPU runs best.
        .target(
            name: "Quantization",
            dependencies: ["QuantizationCore", "KernelsBaseline", "KernelsV3", "KernelsV4", "CPUFeatures"],
            swiftSettings: unchecked
        ),
        .target(
            name: "QuantEngine",
            dependencies: [
                "Zstd", "SafeTensors", "Quantization", "QuantSystem", "CSHA256", "CPUFeatures",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "QuantDaemon",
            dependencies: [
                "QuantEngine", "Quantization", "SafeTensors", "QuantSystem", "CLinux",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Console",
            dependencies: ["QuantSystem", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .executableTarget(
            name: "quantd",
            dependencies: [
                "QuantDaemon", "QuantEngine", "Quantization", "QuantSystem", "Console",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The benchmark: its own program beside quantd, which it times and runs as a daemon.
        .executableTarget(
            name: "QuantBench",
            dependencies: [
                "QuantEngine", "Quantization", "SafeTensors", "Zstd", "QuantSystem", "Console",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Calls the kernels with wrong sizes, for KernelEdgeTests: built in release, it shows that the checks hold.
        .executableTarget(name: "KernelEdgeProbe", dependencies: ["Quantization"], path: "Tests/KernelEdgeProbe"),
        // What every test target shares: seeded inputs, temporary folders, checkpoints, running the built programs,
        // decoding outputs. It runs quantd as a program: it links the formats and the system layer, not the engine
        // or the daemon.
        .target(
            name: "TestSupport",
            dependencies: [
                "SafeTensors", "Zstd", "QuantSystem", .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "ZstdTests", dependencies: ["Zstd", "TestSupport"]),
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors", "TestSupport"]),
        .testTarget(name: "QuantizationTests", dependencies: ["Quantization", "TestSupport"]),
        .testTarget(
            name: "QuantEngineTests",
            dependencies: [
                "QuantEngine", "Quantization", "Zstd", "SafeTensors", "QuantSystem", "TestSupport",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(name: "QuantDaemonTests", dependencies: ["QuantDaemon", "QuantEngine", "QuantSystem", "TestSupport"]),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "SafeTensors", "Zstd", "QuantSystem", "TestSupport",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// The libFuzzer harness over the safetensors reader links only with `-sanitize=fuzzer`, so it is part of the
// package only when QUANTD_FUZZ is set: scripts/fuzz.sh builds it with `QUANTD_FUZZ=1 swift build
// --scratch-path .build/fuzz -Xswiftc -sanitize=fuzzer,address --product quantd-fuzz-header`.
if Context.environment["QUANTD_FUZZ"] != nil {
    package.targets.append(.executableTarget(
        name: "FuzzHeader", dependencies: ["SafeTensors"], swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
    package.products.append(.executable(name: "quantd-fuzz-header", targets: ["FuzzHeader"]))
}
