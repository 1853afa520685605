import AnySize
import ArgumentParser
import Foundation

/// `anysize generate`: txt2img / img2img to PNG (and optionally the raw latents).
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate images from a prompt (txt2img) or from an init image (img2img).")

    @Option(help: "A diffusers model folder or a single-file .safetensors checkpoint.") var model: String
    @Option(help: "What to draw.") var prompt: String
    @Option(parsing: .unconditional, help: "Width in pixels, a multiple of 8 from 64 to 4096 (default: the model's trained size).") var width: Int?
    @Option(parsing: .unconditional, help: "Height in pixels, a multiple of 8 from 64 to 4096 (default: the model's trained size).") var height: Int?
    @OptionGroup var sampling: SamplingArguments
    @Option(parsing: .unconditional, help: "Random seed (default: random, printed).") var seed: UInt64?
    @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Images per run.") var batchSize: Int = 1
    @Option(name: .customLong("init-image"), help: "img2img: a PNG to start from.") var initImage: String?
    @Option(parsing: .unconditional, help: "img2img: how much of the schedule to run, in (0, 1] (default 0.75).") var strength: Double?
    @Option(name: .customLong("clip-skip"), parsing: .unconditional, help: "1 = last text-encoder layer, 2 = penultimate (A1111).") var clipSkip: Int = 1
    @Option(help: "standard, scaled, local, log-bias or auto.") var attention: String = "auto"
    @Option(name: .customLong("vae-tile"), parsing: .unconditional, help: "VAE tile size in pixels (0 = off; default: 512 px tiles above 768x768).") var vaeTile: Int?
    @Option(help: "Final image decoder: vae, approx or linear.") var decoder: String = "vae"
    @Option(name: .customLong("approx-decoder"), help: "Weights for --decoder approx (.safetensors or .json; default: bundled SD1.5).") var approxDecoder: String?
    @Option(name: .customLong("preview-every"), parsing: .unconditional, help: "Write NAME.step-NN.png every K steps (0 = off).") var previewEvery: Int = 0
    @Option(help: "Preview decoder: approx or linear.") var preview: String = "approx"
    @Option(help: "Output PNG (a batch writes NAME-1.png, NAME-2.png, ...).") var output: String?
    @Option(name: .customLong("save-latents"), help: "Also write the final latents [N, 4, h, w] (float32, key 'latents').") var saveLatents: String?
    @Flag(name: .customLong("skip-decode"), help: "Skip decoding and PNG output (use with --save-latents).") var skipDecode = false
    @Flag(help: "No progress output.") var quiet = false
    @Flag(help: "More detail (memory settings, timings).") var verbose = false

    func run() throws {
        let plan = try GenerationPlan(self)
        try plan.run()
    }
}
