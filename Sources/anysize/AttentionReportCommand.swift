import AnySize
import ArgumentParser
import Foundation

/// `anysize attention-report`: the attention-entropy diagnostic (METHODS.md) over sizes x formulations.
struct AttentionReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention-report",
        abstract: "Compare self-attention entropy per layer and step across canvas sizes and attention formulations.",
        discussion: """
            Samples the same prompt and seed at every size with every formulation (no image decoding) and records, per \
            self-attention layer and model call, the mean entropy -sum p ln p of the attention probabilities, averaged \
            over queries, heads and the whole UNet batch (under CFG: the unconditional and conditional halves). Writes \
            DIR/entropy.csv, DIR/summary.csv and DIR/entropy.png, and prints each run's mean absolute entropy gap to the \
            trained-size standard run (added automatically when not requested).
            """)

    @Option(help: "A diffusers model folder or a single-file .safetensors checkpoint.") var model: String
    @Option(help: "The prompt every run samples.") var prompt: String
    @OptionGroup var sampling: SamplingArguments
    @Option(help: "Comma list of canvases WxH, multiples of 8 from 64 to 4096.") var sizes: String = "256x256,512x512,768x768"
    @Option(help: "Comma list of formulations: standard, scaled, local, log-bias, auto.") var attention: String = "standard,scaled,local"
    @Option(parsing: .unconditional, help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Output folder (created if needed).") var out: String = "attention-report"
    @Flag(help: "No progress output.") var quiet = false

    func run() throws {
        let sizes = try AttentionReportOptions.parseSizes(self.sizes)
        let modes = try AttentionReportOptions.parseModes(attention)
        let resolved = try sampling.request(model: model, prompt: prompt, seed: seed, defaultCompose: .none).resolve()
        // Every canvas (and the trained-size baseline) must fit before any weights load.
        let trained = resolved.options.trainedSize ?? resolved.footprint.trainedSize
        for size in sizes + [trained] { _ = try resolved.resized(width: size.width, height: size.height) }
        let options = AttentionReportOptions(generation: resolved.options, sizes: sizes, modes: modes)
        try options.validate()

        let progress = ProgressReporter(quiet: quiet)
        let loadStart = Date()
        let pipeline = try StableDiffusionPipeline(checkpoint: try resolved.loadCheckpoint(), precision: resolved.options.precision)
        progress.phase("load", seconds: Date().timeIntervalSince(loadStart))
        let report = try AttentionReport.run(pipeline: pipeline, options: options) { event in
            switch event {
            case .run(let i, let n, let label): progress.line("run \(i)/\(n): \(label)")
            case .notice(let text): progress.line("note: \(text)")
            case .pipeline(.notice(let text)): progress.line("  \(text)")
            case .pipeline(.step(let i, let n, let spi)): progress.step(i, of: n, secondsPerStep: spi)
            case .pipeline: break
            }
        }
        let modelName = URL(fileURLWithPath: model).deletingPathExtension().lastPathComponent
        let title = "Self-attention entropy per layer: \(modelName), \(sampling.steps) steps, seed \(seed)"
        let paths = try report.write(to: out, chartTitle: title)
        print(report.gapTable(), terminator: "")
        fflush(stdout)  // the table before the stderr lines that follow, also when stdout is a pipe
        for path in paths { progress.line("wrote \(path)") }
    }
}
