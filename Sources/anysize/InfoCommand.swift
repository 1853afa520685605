import AnySize
import ArgumentParser

/// `anysize info`: loads a checkpoint with full validation and prints what it is.
struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Build a checkpoint's models (full validation) and show its layout, family, prediction type, trained size, dtypes and parameter counts.")

    @Option(name: .long, help: "A diffusers model folder or a single-file .safetensors checkpoint.")
    var model: String

    @Option(name: .long, help: "Override the prediction type: epsilon or v.")
    var prediction: String?

    /// The parsed `--prediction` (checked by `validate()`).
    private var override: PredictionType? { prediction.flatMap { PredictionType(name: $0) } }

    func validate() throws {
        if let prediction, override == nil {
            throw ValidationError("--prediction must be epsilon or v, got '\(prediction)'")
        }
    }

    func run() throws {
        let checkpoint = try StableDiffusionCheckpoint.load(path: model, prediction: override)
        // The models are built as `generate` builds them, so the report lists the same unused tensors; a checkpoint
        // whose models cannot be built is still described, with the reason.
        do {
            let pipeline = try StableDiffusionPipeline(checkpoint: checkpoint)
            print(ModelInfo(checkpoint, unusedTensors: pipeline.unusedTensors).report, terminator: "")
        } catch let error as AnySizeError {
            print(ModelInfo(checkpoint).report + "models: cannot be built (generate would stop here): \(error.message)")
        }
        // Last, and only for a model that loaded: a refused file leaves stdout empty.
        print("products: fp32 = OpenBLAS sgemm (\(MatMul.blasCoreName)) and our tiles; bf16 (--precision bf16) = \(BFloat16.pathDescription)")
    }
}
