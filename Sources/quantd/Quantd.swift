import ArgumentParser
import QuantEngine

@main
struct Quantd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantd",
        abstract: "Quantize fp32/fp16/bf16 safetensors checkpoints to int8, as zstd frames with a manifest.",
        version: quantdVersion,
        subcommands: [Quantize.self, Inspect.self, Verify.self, Dequantize.self, Report.self]
    )
}

/// Prints an engine error the way every command does and exits with its sysexits code.
func fail(_ error: EngineError) -> ExitCode {
    Terminal.error("\(error)")
    return ExitCode(error.exitCode)
}
