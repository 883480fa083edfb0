import ArgumentParser
import Console
import QuantEngine

@main
struct Quantd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantd",
        abstract: "Quantize fp32/fp16/bf16 safetensors checkpoints to int8 (zstd frames with a manifest), "
            + "as a spool daemon or one-shot.",
        version: quantdVersion,
        subcommands: [Run.self, Status.self, Quantize.self, Inspect.self, Verify.self, Unpack.self, Dequantize.self,
                      Report.self]
    )
}

/// Prints an engine error the way every command does and exits with its sysexits code.
func fail(_ error: EngineError) -> ExitCode {
    Terminal.error("\(error)")
    return ExitCode(error.exitCode)
}
