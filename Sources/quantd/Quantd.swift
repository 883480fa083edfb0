import ArgumentParser

/// The `quantd` command: a daemon that quantizes checkpoints dropped into a spool, and its tools.
@main
struct Quantd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantd",
        abstract: "Quantize fp32/fp16/bf16 safetensors checkpoints to int8, as a spool daemon or one-shot.",
        subcommands: [Run.self, Status.self]
    )
}
