import AnySize
import AnySizeKernels
import ArgumentParser
import Foundation

/// `anysize bench`: times one model component on seeded inputs and prints one JSON line.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time one model component (unet, vae-decode, text-encoder, sample) on seeded random inputs.",
        discussion: "Prints one JSON line on stdout: component, width, height, batch, repeats, seconds_median, seconds_min, gflops (analytic FLOPs / median), peak_rss_mb, precision, matmul_path (fp32, AVX512-BF16 or widened fallback); for sample also compose and estimated_relative_cost (run it with --compose none for the direct run to compare with). With --profile, also seconds per op family (in the JSON and as a table on stderr).")

    @Option(help: "A diffusers model folder or a single-file .safetensors checkpoint.") var model: String
    @Option(help: "unet, vae-decode, text-encoder or sample (the UNet calls of a whole sampling run through --compose).") var component: String
    @Option(parsing: .unconditional, help: "Canvas width in pixels (multiple of 8).") var width: Int = 512
    @Option(parsing: .unconditional, help: "Canvas height in pixels (multiple of 8).") var height: Int = 512
    @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Images (or 77-token windows) per call.") var batchSize: Int = 1
    @Option(parsing: .unconditional, help: "Timed runs.") var repeats: Int = 3
    @Option(parsing: .unconditional, help: "Untimed runs before the timed ones.") var warmup: Int = 1
    @Option(parsing: .unconditional, help: "Seed of the random inputs.") var seed: UInt64 = 0
    @Flag(help: "Record and print seconds per op family.") var profile = false
    @Option(help: "fp32 (default) or bf16 (bfloat16 weights and products, float32 accumulation) for the component (generation runs only the UNet in bf16; vae-decode and text-encoder in bf16 are for measuring).") var precision: String = "fp32"
    @Flag(help: "unet, vae-decode, text-encoder: instead of timing, run one call in fp32 and in bf16 on the same inputs and print the relative max-abs error.") var accuracy = false
    @Option(help: "sample: the composition method (none, redilate, hires, cascade, deep-shrink, resize, auto); none is the direct run to compare with.") var compose: String = "none"
    @Option(parsing: .unconditional, help: "sample: sampling steps of a direct run.") var steps: Int = 20
    @Option(name: .customLong("hires-strength"), parsing: .unconditional, help: "sample, hires and cascade: img2img strength of each pass after the first, in (0, 1].") var hiresStrength: Double = 0.7
    @Option(name: .customLong("redilate-until"), parsing: .unconditional, help: "sample, redilate: re-dilate while the timestep is at least T (0 to 1000).") var redilateUntil: Double = 400
    @Option(name: .customLong("deep-shrink-end"), parsing: .unconditional, help: "sample, deep-shrink: shrink while the timestep is at least (1 - E) * 1000, E in [0, 1].") var deepShrinkEnd: Double = 0.35

    func run() throws {
        guard let part = BenchmarkComponent(rawValue: component) else {
            throw AnySizeError(.invalidArgument, "--component '\(component)' is not one of: \(BenchmarkComponent.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let mode = CompositionMode(rawValue: compose) else {
            throw AnySizeError(.invalidArgument, "--compose '\(compose)' is unknown; use one of \(CompositionMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var options = BenchmarkOptions(component: part, width: width, height: height, batch: batchSize,
                                       repeats: repeats, warmup: warmup, seed: seed, profile: profile)
        options.composition = CompositionOptions(mode: mode, hiresStrength: hiresStrength, redilateUntil: redilateUntil,
                                                 deepShrinkEnd: deepShrinkEnd)
        options.steps = steps
        options.precision = try Precision.parse(precision)
        try options.validate()
        try options.checkMemory(model: try ModelFootprint.read(path: model))
        let checkpoint = try StableDiffusionCheckpoint.load(path: model)
        if accuracy {  // (sample is refused by Benchmark.precisionComparison, before any model is built)
            print(try Benchmark.precisionComparison(checkpoint: checkpoint, options: options).jsonLine(options: options))
            return
        }
        let result = try Benchmark.run(checkpoint: checkpoint, options: options)
        print(result.jsonLine)
        if profile {
            let header = "BLAS core \(MatMul.blasCoreName), \(Parallel.threadCount) threads, products \(result.matmulPath)\n"
            FileHandle.standardError.write((header + result.profileTable).data(using: .utf8) ?? Data())
        }
    }
}
