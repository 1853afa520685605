import AnySize
import ArgumentParser

/// `anysize montage`: places PNG images side by side with a label above each (the `make run` demo grid).
struct MontageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "montage",
        abstract: "Place PNG images side by side, left to right, each at its own size with an optional label above it.")

    @Argument(help: "The PNG files, left to right.") var inputs: [String] = []
    @Option(help: "The PNG file to write.") var output: String
    @Option(parsing: .upToNextOption, help: "One label per image, in order (printable ASCII), e.g. --labels \"trained\" \"2x\".")
    var labels: [String] = []
    @Option(parsing: .unconditional, help: "White pixels around and between the panels.") var gap: Int = 8
    @Option(name: .customLong("label-scale"), parsing: .unconditional, help: "Label size: font pixels per glyph pixel (the glyphs are 5x7).")
    var labelScale: Int = 2

    func run() throws {
        try Montage.write(inputs: inputs, labels: labels, gap: gap, labelScale: labelScale, output: output)
        print("wrote \(output)")
    }
}
