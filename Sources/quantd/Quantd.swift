import ArgumentParser
import Console
import QuantEngine
import Quantization
import QuantSystem

@main
struct Quantd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantd",
        abstract: "Quantize fp32/fp16/bf16 safetensors checkpoints to int8 (zstd frames with a manifest), "
            + "as a spool daemon or one-shot.",
        version: "\(quantdVersion)\nkernels: \(KernelVariant.selectedSummary)",
        subcommands: [Run.self, Status.self, Quantize.self, Inspect.self, Verify.self, Unpack.self, Dequantize.self,
                      Report.self]
    )

    /// Refuses a QUANTD_KERNELS that names no kernel variant, or one this CPU cannot run, before any command.
    static func main() {
        do {
            _ = try KernelVariant.fromEnvironment()
        } catch {
            // Plain exit: ArgumentParser's would build its help, and with it `configuration`, which names the
            // variant that cannot be chosen.
            Terminal.error("\(error)")
            FileSystem.exit(status: 78)
        }
        main(nil)
    }
}

/// Prints an engine error the way every command does and exits with its sysexits code.
func fail(_ error: EngineError) -> ExitCode {
    Terminal.error("\(error)")
    return ExitCode(error.exitCode)
}
