import AnySize
import AnySizeKernels
import ArgumentParser
import Foundation

struct AnySizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "anysize",
        abstract: "Stable Diffusion 1.x/2.x on the CPU at any canvas size.",
        version: AnySizeVersion.string,
        subcommands: [InfoCommand.self, GenerateCommand.self, AttentionReportCommand.self, BenchCommand.self, ServeCommand.self,
                      MontageCommand.self])

    /// Errors print as `error: <message>` (one line for `AnySizeError`) and exit with status 1.
    static var _errorPrefix: String { "error: " }

    /// The subcommand names, and `help`.
    static var commandNames: [String] {
        configuration.subcommands.compactMap { $0.configuration.commandName } + ["help"]
    }

    /// For a first argument that is no command (`anysize generat ...`), the error naming the closest command;
    /// ArgumentParser would report the options that follow it instead.
    static func unknownCommandError(_ arguments: [String]) -> String? {
        guard let first = arguments.first, !first.hasPrefix("-"), !commandNames.contains(first) else { return nil }
        let commands = configuration.subcommands.compactMap { $0.configuration.commandName }
        let closest = commands.map { ($0, editDistance($0, first)) }.min { $0.1 < $1.1 }
        let suggestion = closest.flatMap { $0.1 <= max(2, first.count / 3) ? "; did you mean '\($0.0)'?" : nil } ?? ""
        return "error: unknown command '\(first)'\(suggestion) (commands: \(commands.joined(separator: ", ")); see anysize --help)"
    }

    /// Levenshtein distance.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0 ... b.count)
        for i in 1 ... max(a.count, 1) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in 1 ... max(b.count, 1) where !b.isEmpty {
                let current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return row[b.count]
    }
}

if let message = AnySizeCommand.unknownCommandError(Array(CommandLine.arguments.dropFirst())) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(64)
}
// OpenBLAS reads its kernel family and thread timeout when it loads; set them before any work (BLASCoreSelection).
BLASCoreSelection.reexecuteWithPreferredSettingsIfNeeded()
// SIGINT / SIGTERM / SIGHUP during a write remove the temporary file before the process ends.
TemporaryFiles.removeOnSignals()
AnySizeCommand.main()
