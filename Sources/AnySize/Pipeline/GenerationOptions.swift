/// Everything one generation needs besides the model. Defaults follow common SD tools.
public struct GenerationOptions: Sendable {
    public var prompt: String
    public var negativePrompt: String = ""
    /// Canvas in pixels (multiples of 8).
    public var width: Int
    public var height: Int
    public var steps: Int = 20
    /// Classifier-free guidance scale; 1 (or less) runs no unconditional pass.
    public var cfgScale: Double = 7.5
    public var sampler: SamplerKind = .dpmpp2m
    public var karras: Bool = true
    public var seed: UInt64
    public var batchSize: Int = 1
    /// A1111's batch seeds: image i of the batch draws all its noise from its own generator seeded with
    /// `seed + i` (`PerImageRandom`), so it can be made again alone at batch size 1 with that seed. False: one
    /// generator seeded with `seed` for the whole batch, as diffusers.
    public var seedPerImage: Bool = false
    /// Library use: a different (prompt, negative prompt) per image, as diffusers accepts prompt lists.
    /// When set, it overrides `prompt`, `negativePrompt` and `batchSize`.
    public var batchPrompts: [(prompt: String, negative: String)]? = nil
    /// img2img: the init image [1, 3, height, width] (or one per image of the batch) in [-1, 1], and how much of the schedule to run (0, 1].
    public var initImage: Tensor? = nil
    public var strength: Double = 0.75
    /// A1111 clip skip: 1 = last text-encoder layer, 2 = penultimate.
    public var clipSkip: Int = 1
    /// How prompts are read: A1111 emphasis syntax (`(word:1.3)`, `[word]`, `BREAK`) or plain text.
    public var promptSyntax: PromptSyntax = .a1111
    public var attention: AttentionMode = .auto
    /// Number format of the UNet's products (`.fp32` default; `.bf16` needs a pipeline built with it).
    public var precision: Precision = .fp32
    /// How a canvas other than the trained one is composed (METHODS.md "Composition methods"): the method
    /// (`none` by default here, as diffusers; the CLI defaults to `auto`) and its settings.
    public var composition = CompositionOptions()
    /// Canvas-edge sinks for `local` attention (tokens).
    public var localEdge: Int = 0
    /// Trained canvas in pixels; nil = the model's own.
    public var trainedSize: (width: Int, height: Int)? = nil
    /// Scratch-memory bound of the attention kernel, in bytes.
    public var attentionMemory: Int = 1 << 30
    /// VAE tiling of the img2img encode (the final decode takes its own, see `StableDiffusionPipeline.decode`).
    public var vaeTiling: VAETiling = .automatic
    /// Record the mean attention entropy of every self-attention layer at every model call.
    public var recordEntropy: Bool = false
    /// Asked before every model call (from the generating thread); returning true stops sampling there, and
    /// `generate` returns the latents reached so far with `GenerationResult.stoppedEarly` set (a server's
    /// interrupt). Nil: always run every call.
    public var shouldStop: (@Sendable () -> Bool)? = nil

    /// The (prompt, negative prompt) of every image in the batch.
    public var promptPairs: [(prompt: String, negative: String)] {
        batchPrompts ?? Array(repeating: (prompt, negativePrompt), count: batchSize)
    }

    /// Images in the batch (`promptPairs.count` without building the list).
    public var batchCount: Int { batchPrompts?.count ?? batchSize }

    /// The seed image `index` of the batch reproduces with: `seed + index` with `seedPerImage`, else `seed`.
    public func seed(ofImage index: Int) -> UInt64 {
        seedPerImage ? seed &+ UInt64(index) : seed
    }

    public init(prompt: String, width: Int, height: Int, seed: UInt64) {
        self.prompt = prompt
        self.width = width
        self.height = height
        self.seed = seed
    }

    /// Checks the values that need no model: one-line errors naming the value and what to do.
    public func validate() throws {
        for (name, value) in [("width", width), ("height", height)] {
            guard value % 8 == 0, value >= 64, value <= 4096 else {
                throw AnySizeError(.invalidArgument,
                    "--\(name) \(value) is not supported; use a multiple of 8 from 64 to 4096")
            }
        }
        guard steps >= 1 else { throw AnySizeError(.invalidArgument, "--steps \(steps): use at least 1 step") }
        if let b = batchPrompts, b.isEmpty {
            throw AnySizeError(.invalidArgument, "batchPrompts is empty; give at least one (prompt, negative) pair")
        }
        guard batchSize >= 1 else { throw AnySizeError(.invalidArgument, "--batch-size \(batchSize): use at least 1") }
        // The models compute in Float: a Double that is finite may still be infinite there (1e39).
        guard Float(cfgScale).isFinite else {
            throw AnySizeError(.invalidArgument, "--cfg-scale \(cfgScale) is not a finite 32-bit number; use e.g. 7.5 (1 to 30 is the useful range)")
        }
        guard strength > 0, strength <= 1 else {
            throw AnySizeError(.invalidArgument, "--strength \(strength) is outside (0, 1]; e.g. 0.75 keeps a quarter of the init image's structure")
        }
        guard clipSkip >= 1 else { throw AnySizeError(.invalidArgument, "--clip-skip \(clipSkip): use 1 (last layer) or more") }
        try composition.validate()
        guard localEdge >= 0 else { throw AnySizeError(.invalidArgument, "--local-edge \(localEdge): use 0 or more tokens") }
        if karras && !sampler.supportsKarras {
            throw AnySizeError(.invalidArgument,
                "sampler \(sampler.rawValue) does not support Karras sigmas; drop --karras or use euler, heun or dpmpp_2m")
        }
        if let t = trainedSize, t.width % 8 != 0 || t.height % 8 != 0 || t.width < 64 || t.height < 64 {
            throw AnySizeError(.invalidArgument, "--trained-size \(t.width)x\(t.height): use multiples of 8 of at least 64")
        }
    }
}

/// What the pipeline reports while it runs.
public enum PipelineEvent: Sendable {
    /// A phase (load, encode, sample, decode) finished after `seconds`.
    case phase(name: String, seconds: Double)
    /// Sampler step `index` (1-based) of `total` finished (Heun's two model calls make one step);
    /// `secondsPerStep` averages the steps so far.
    case step(index: Int, total: Int, secondsPerStep: Double)
    /// The latents after sampler step `index` (1-based), in sampler space, for previews.
    case latents(index: Int, total: Int, latents: Tensor)
    /// Something the user should know (a resized init image, the attention choice).
    case notice(String)
}

/// The outcome of one generation.
public struct GenerationResult: Sendable {
    /// Final latents [N, 4, h, w] on the target's latent grid in sampler space (before dividing by the VAE
    /// scaling factor), as diffusers returns them with `output_type="latent"`; for `resize`, the rendered latents
    /// area-averaged to the target's grid.
    public var latents: Tensor
    /// The latents the image is decoded from: `latents`, or for `resize` those of the larger render.
    public var renderedLatents: Tensor
    /// The composition that ran: passes, sizes, cost, summary (`none`: one direct pass).
    public var composition: CompositionPlan
    /// What ran, e.g. "auto -> scaled (logit factors per level: ...)".
    public var attentionSummary: String
    /// The concrete formulation's name (`standard`, `scaled`, `local`, `log-bias`).
    public var attentionName: String
    /// Per model call: its index, sigma, and the entropy samples of every self-attention layer
    /// (empty unless `recordEntropy`).
    public var entropy: [(call: Int, sigma: Double, samples: [AttentionEntropySample])]
    /// Seconds per phase.
    public var timings: [(phase: String, seconds: Double)]
    /// Whether `GenerationOptions.shouldStop` ended sampling before the last model call.
    public var stoppedEarly: Bool = false
}
