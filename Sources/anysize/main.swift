import AnySize
import AnySizeKernels
import ArgumentParser

struct AnySizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "anysize",
        abstract: "Stable Diffusion 1.x/2.x on the CPU at any canvas size.",
        version: AnySizeVersion.string,
        subcommands: [InfoCommand.self, GenerateCommand.self, AttentionReportCommand.self, BenchCommand.self, ServeCommand.self])

    /// Errors print as `error: <message>` (one line for `AnySizeError`) and exit with status 1.
    static var _errorPrefix: String { "error: " }
}

// OpenBLAS reads its kernel family and thread timeout when it loads; set them before any work (BLASCoreSelection).
BLASCoreSelection.reexecuteWithPreferredSettingsIfNeeded()
AnySizeCommand.main()
