import Foundation
import Testing
import TestSupport

/// KernelEdgeProbe built in release, beside $QUANTD_RELEASE_BIN.
private let releaseProbe: String? = ProcessInfo.processInfo.environment["QUANTD_RELEASE_BIN"].map {
    URL(fileURLWithPath: $0).deletingLastPathComponent().appendingPathComponent("KernelEdgeProbe").path
}

/// The release build keeps the kernels' size checks: Quantization is `-Ounchecked` there, which drops
/// `precondition`, so each public entry checks what it indexes in a way that stays (Package.swift says how).
@Suite("kernel edge checks in a release build",
       .enabled(if: releaseProbe != nil,
                "QUANTD_RELEASE_BIN is unset (`make test` as root sets it and builds KernelEdgeProbe beside it)"))
struct KernelEdgeTests {
    /// Runs the probe on one case, without the crash backtrace (slow, and not what is tested).
    private func probe(_ name: String) throws -> Shell.Result {
        var environment = ProcessInfo.processInfo.environment
        environment["SWIFT_BACKTRACE"] = "enable=no"
        return Shell.run(try #require(releaseProbe), [name], environment: environment)
    }

    @Test func rightSizesReturn() throws {
        let r = try probe("valid")
        #expect(r.status == 0 && r.stdout == "returned\n", "\(r.status) \(r.stderr)")
    }

    @Test(arguments: [
          ("tile-codes", "x and q must hold rows * cols elements"),
          ("tile-scales", "scales must hold rows * groupsPerRow elements"),
          ("tile-overflow", "x and q must hold rows * cols elements"),
          ("per-tensor", "q must hold as many elements as x"),
          ("dequantize", "q and out must hold rows * cols elements"),
          ("pack", "pack: buffers smaller than the rows"),
          ("unpack", "unpack: buffers smaller than the rows"),
          ("quantile", "a quantile in [0, 1] of at least one value"),
          ("histogram", "a histogram of 2048 bins and at least one level"),
          ])
    func wrongSizesStopTheProgramWithTheChecksMessage(_ name: String, _ message: String) throws {
        let r = try probe(name)
        // fatalError ends the process on SIGILL (ud2); it never gets to print "returned".
        #expect(r.status == SIGILL && r.stdout.isEmpty, "\(name): status \(r.status), stdout \(r.stdout)")
        #expect(r.stderr.contains("Fatal error: \(message)"), "\(name): \(r.stderr)")
    }
}
