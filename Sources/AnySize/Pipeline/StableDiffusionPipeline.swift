import Foundation

/// Text-to-image and image-to-image generation, step for step as diffusers' `StableDiffusionPipeline`
/// and `StableDiffusionImg2ImgPipeline` (same model, prompt, seed and scheduler -> the same latents).
///
/// Differences by design: prompts longer than 75 tokens are encoded in 75-token windows (A1111 / ComfyUI)
/// instead of being truncated, and UNet self-attention follows the configured `AttentionFormulation`.
public final class StableDiffusionPipeline: @unchecked Sendable {
    public let family: ModelFamily
    public let predictionType: PredictionType
    /// The canvas the model was trained at (pixels).
    public let trainedSize: (width: Int, height: Int)
    public let tokenizer: CLIPTokenizer
    /// The text encoder's parameters, read from the checkpoint file whenever the encoder is (re)built.
    private let textEncoderParameters: ParameterStore
    private let textConfig: CLIPTextConfig
    private var residentTextEncoder: CLIPTextModel?
    /// When true (the default), `generate` drops the text encoder's weights once the prompts are encoded, so
    /// sampling and decoding run without them (SD1.5: 0.49 GB less); the next `encodePrompts` rebuilds it
    /// from the memory-mapped checkpoint (about as long as one text-encoder call on SD1.5 sizes).
    public var releasesTextEncoderAfterEncoding = true
    public let unet: UNet2DConditionModel
    public let vae: AutoencoderKL
    public let schedulerConfig: SchedulerConfig
    /// Tensors of the checkpoint that no model used (reported, not fatal).
    public let unusedTensors: [String]

    /// Number format of the UNet (`GenerationOptions.precision` must match it). The text encoder and the VAE
    /// always run in float32 (docs/PERFORMANCE.md, "bf16").
    public let precision: Precision

    /// Builds all models from a loaded checkpoint (each reads its weights from the checkpoint's file now), the
    /// UNet in `precision`.
    public init(checkpoint: StableDiffusionCheckpoint, precision: Precision = .fp32) throws {
        self.precision = precision
        family = checkpoint.family
        predictionType = checkpoint.predictionType
        trainedSize = checkpoint.trainedSize
        switch checkpoint.tokenizer {
        case .folder(let url): tokenizer = try CLIPTokenizer(folder: url)
        case .bundled(let pad): tokenizer = try CLIPTokenizer.bundled(padWithEndOfText: pad != "!")
        }
        textConfig = checkpoint.textConfig
        textEncoderParameters = checkpoint.textEncoder
        residentTextEncoder = try CLIPTextModel(config: checkpoint.textConfig, parameters: checkpoint.textEncoder)
        unet = try UNet2DConditionModel(config: checkpoint.unetConfig, parameters: checkpoint.unet, precision: precision)
        vae = try AutoencoderKL(config: checkpoint.vaeConfig, parameters: checkpoint.vae)
        if let data = checkpoint.schedulerConfigData {
            schedulerConfig = try SchedulerConfig.decode(json: data, source: checkpoint.path + "/scheduler/scheduler_config.json")
                .with(prediction: checkpoint.predictionType)
        } else {
            schedulerConfig = SchedulerConfig.sd15Default.with(prediction: checkpoint.predictionType)
        }
        unusedTensors = [checkpoint.unet, checkpoint.vae, checkpoint.textEncoder].flatMap { s in s.unused.map { "\(s.component): \($0)" } }
        for s in [checkpoint.unet, checkpoint.vae, checkpoint.textEncoder] { s.release() }
    }

    /// The CLIP text encoder: the resident one, or one rebuilt from the checkpoint after `generate` dropped it.
    public func textEncoder() throws -> CLIPTextModel {
        if let residentTextEncoder { return residentTextEncoder }
        let encoder = try CLIPTextModel(config: textConfig, parameters: textEncoderParameters)
        residentTextEncoder = encoder
        return encoder
    }

    /// Whether the text encoder's weights are in memory now.
    public var isTextEncoderResident: Bool { residentTextEncoder != nil }

    /// VAE scaling factor (latents in sampler space = scaling * VAE latents).
    public var scalingFactor: Float { Float(vae.config.scalingFactor) }

    /// Encodes (prompt, negative prompt) pairs to text embeddings [N, 77k, D] each (positives, negatives),
    /// every prompt with the same number k of 77-token windows (A1111: the negative is padded to the prompt's
    /// with windows of the empty prompt).
    ///
    /// With `.a1111` syntax the prompts' emphasis is applied as the web UI's "Original" emphasis does: each window's
    /// hidden states z [77, D] are multiplied token-wise by the weights w, then rescaled so that the window's mean is
    /// unchanged, z' = (z * w) * (mean(z) / mean(z * w)). (The web UI takes the mean over the batch of prompts at one
    /// window index; here it is taken per prompt, which is the same for one prompt or a batch of equal prompts.)
    public func encodePrompts(_ pairs: [(prompt: String, negative: String)], clipSkip: Int,
                              syntax: PromptSyntax = .a1111) throws -> (positive: Tensor, negative: Tensor) {
        let texts = pairs.flatMap { [$0.prompt, $0.negative] }
        let chunkCount = texts.map { tokenizer.weightedChunks(syntax.runs(of: $0)).count }.max() ?? 1
        let encoder = try textEncoder()
        var cache: [String: Tensor] = [:]
        func encode(_ text: String) throws -> Tensor {
            if let t = cache[text] { return t }
            let chunks = tokenizer.weightedChunks(syntax.runs(of: text), minimumChunks: chunkCount)
            let embeddings = try encoder(chunks.map(\.ids), clipSkip: clipSkip)    // [k, 77, D]
            for (index, chunk) in chunks.enumerated() where chunk.isWeighted {
                Self.applyEmphasis(embeddings, window: index, weights: chunk.weights)
            }
            let t = embeddings.reshaped([1, chunks.count * embeddings.dim(1), embeddings.dim(2)])
            cache[text] = t
            return t
        }
        return (Elementwise.concatBatch(try pairs.map { try encode($0.prompt) }),
                Elementwise.concatBatch(try pairs.map { try encode($0.negative) }))
    }

    /// z' = (z * w) * (mean(z) / mean(z * w)) over window `window` of `embeddings` [k, L, D], weights [L].
    /// A weighted mean of exactly zero leaves the weighted states unscaled (the web UI would divide by zero).
    static func applyEmphasis(_ embeddings: Tensor, window: Int, weights: [Float]) {
        let length = embeddings.dim(1), d = embeddings.dim(2)
        precondition(weights.count == length, "emphasis: \(weights.count) weights for \(length) tokens")
        let z = embeddings.pointer + window * length * d
        var original = 0.0, weighted = 0.0
        for p in 0 ..< length {
            for c in 0 ..< d {
                let v = z[p * d + c]
                original += Double(v)
                z[p * d + c] = v * weights[p]
                weighted += Double(z[p * d + c])
            }
        }
        guard weighted != 0 else { return }
        let factor = Float(original / weighted)
        for i in 0 ..< length * d { z[i] *= factor }
    }

    /// The composition plan of `options` on this model: the method `options.composition` names (or `auto`'s
    /// choice) for the canvas, trained size (`options.trainedSize` or the model's) and schedule.
    public func compositionPlan(for options: GenerationOptions) throws -> CompositionPlan {
        let trained = options.trainedSize ?? trainedSize
        let scheduler = try options.sampler.makeScheduler(config: schedulerConfig, steps: options.steps, karras: options.karras)
        let request = CompositionRequest(width: options.width, height: options.height, trainedWidth: trained.width,
                                         trainedHeight: trained.height, latentFactor: vae.downsamplingFactor,
                                         steps: options.steps, img2img: options.initImage != nil,
                                         options: options.composition, unet: unet.config, timesteps: scheduler.timesteps)
        return try CompositionPlan.resolve(request)
    }

    /// Runs one generation: the passes of the composition plan (one for `none`), each a txt2img run or an img2img
    /// run from the previous pass's latents resized bicubically, all drawing from one generator seeded with
    /// `options.seed` (with `options.seedPerImage`, one generator per image, seeded `seed + i`). `progress` receives
    /// phase timings, per-call progress and latents for previews.
    public func generate(_ options: GenerationOptions, progress: (PipelineEvent) -> Void = { _ in }) throws -> GenerationResult {
        try options.validate()
        guard options.precision == precision else {
            throw AnySizeError(.invalidArgument,
                "precision \(options.precision.rawValue) was asked of a pipeline built in \(precision.rawValue); build the pipeline with precision: .\(options.precision.rawValue)")
        }
        var timings: [(phase: String, seconds: Double)] = []
        func timed<T>(_ phase: String, _ body: () throws -> T) rethrows -> T {
            let start = Date()
            let value = try body()
            let seconds = Date().timeIntervalSince(start)
            timings.append((phase, seconds))
            progress(.phase(name: phase, seconds: seconds))
            return value
        }
        let plan = try compositionPlan(for: options)
        progress(.notice("compose " + plan.summary))
        let factor = vae.downsamplingFactor
        let trained = options.trainedSize ?? trainedSize
        vae.attentionMemoryBudget = options.attentionMemory
        let pairs = options.promptPairs
        let batch = pairs.count
        let guided = options.cfgScale > 1

        for text in Set(pairs.flatMap { [$0.prompt, $0.negative] }) {
            let tokens = tokenizer.encode(text).count
            guard tokens > CLIPTokenizer.contextLength - 2 else { continue }
            let windows = tokenizer.weightedChunks(options.promptSyntax.runs(of: text)).count
            progress(.notice("note: a prompt of \(tokens) tokens is longer than CLIP's 75; it is encoded as \(windows) windows "
                + "of 75 tokens (AUTOMATIC1111's rule), where diffusers would drop every token after the 75th: \"\(text.prefix(40))...\""))
        }
        // [N * (guided ? 2 : 1), 77k, D]: unconditional embeddings first, as diffusers concatenates them.
        let context: Tensor = try timed("encode") {
            let (positive, negative) = try encodePrompts(pairs, clipSkip: options.clipSkip, syntax: options.promptSyntax)
            if releasesTextEncoderAfterEncoding { residentTextEncoder = nil }
            return guided ? Elementwise.concatBatch([negative, positive]) : positive
        }

        let random: any RandomSource = options.seedPerImage && batch > 1
            ? PerImageRandom(seeds: (0 ..< batch).map(options.seed(ofImage:))) : TorchRandom(seed: options.seed)
        let attention = AttentionContext(trainedLatentHeight: trained.height / factor, trainedLatentWidth: trained.width / factor,
                                         memoryBudget: options.attentionMemory)
        var schedulers: [any Scheduler] = []
        for _ in plan.passes {
            schedulers.append(try options.sampler.makeScheduler(config: schedulerConfig, steps: options.steps, karras: options.karras))
        }
        let firstCalls = zip(plan.passes, schedulers).enumerated().map { index, item in
            index == 0 && options.initImage == nil ? 0 : item.1.img2imgStartIndex(strength: item.0.strength ?? options.strength)
        }
        // Progress counts sampler steps, not model calls (Heun makes two calls per step), over all passes.
        let stepsBefore = zip(schedulers, firstCalls).map { $1 > 0 ? $0.stepsCompleted(afterCall: $1 - 1) : 0 }
        let total = zip(schedulers, stepsBefore).reduce(0) { $0 + $1.0.inferenceSteps - $1.1 }
        let totalCalls = zip(schedulers, firstCalls).reduce(0) { $0 + $1.0.modelCalls - $1.1 }
        var done = 0, calls = 0
        var entropy: [(call: Int, sigma: Double, samples: [AttentionEntropySample])] = []
        var summaries: [String] = []
        var names: [String] = []
        var latents = Tensor(zeros: [0])
        let sampleStart = Date()
        var stoppedEarly = false
        passes: for (index, pass) in plan.passes.enumerated() {
            let scheduler = schedulers[index], firstCall = firstCalls[index]
            let latentHeight = pass.height / factor, latentWidth = pass.width / factor
            let choice = AttentionSelection.resolve(plan.attentionMode(for: options.attention), latentHeight: latentHeight,
                                                    latentWidth: latentWidth, trainedHeight: trained.height / factor,
                                                    trainedWidth: trained.width / factor,
                                                    levels: unet.config.blockOutChannels.count, localEdge: options.localEdge)
            let label = plan.passes.count > 1 ? "pass \(index + 1) (\(pass.width)x\(pass.height)) " : ""
            progress(.notice("\(label)attention: \(choice.summary)"))
            summaries.append(plan.passes.count > 1 ? "\(label)\(choice.summary)" : choice.summary)
            if !names.contains(choice.formulation.name) { names.append(choice.formulation.name) }
            attention.formulation = choice.formulation
            let shape = [batch, unet.config.inChannels, latentHeight, latentWidth]
            if index > 0 {
                // Hires: the previous pass's latents resized to this canvas, noised to the img2img start (the noise
                // drawn after everything pass 1 drew), as StableDiffusionImg2ImgPipeline does with latents as image.
                let start = Elementwise.resizeBicubic(latents, height: latentHeight, width: latentWidth)
                let noise = random.randn(shape)
                latents = firstCall < scheduler.modelCalls
                    ? scheduler.addNoise(original: start, noise: noise, stepIndex: firstCall) : start
            } else if let image = options.initImage {
                latents = try timed("encode image") { try encodeInitImage(image, options: options, batch: batch, random: random) }
                let noise = random.randn(shape)
                if firstCall < scheduler.modelCalls {
                    latents = scheduler.addNoise(original: latents, noise: noise, stepIndex: firstCall)
                }
            } else {
                latents = random.randn(shape)
                Elementwise.scaleInPlace(latents, scheduler.initNoiseSigma)
            }
            let stepsOfEarlierPasses = done
            for call in firstCall ..< scheduler.modelCalls {
                if let shouldStop = options.shouldStop, shouldStop() {
                    stoppedEarly = true
                    break passes
                }
                let sigma = Double(scheduler.sigma(atStep: call))
                attention.sigma = sigma
                if options.recordEntropy { attention.entropySamples = [] }
                let scaled = scheduler.scaleModelInput(latents, stepIndex: call)
                let input = guided ? Elementwise.concatBatch([scaled, scaled]) : scaled
                let t = scheduler.timesteps[call]
                var output = unet(input, timesteps: Array(repeating: Float(t), count: input.dim(0)), context: context,
                                  attention: attention, composition: pass.unetCall(t))
                if guided { output = Self.guidance(output, scale: Float(options.cfgScale)) }
                latents = scheduler.step(output: output, stepIndex: call, sample: latents, random: random)
                calls += 1
                if FloatConversion.firstNonFinite(latents.pointer, count: latents.count) != nil {
                    throw AnySizeError(.invalidArgument,
                        "model call \(calls) of \(totalCalls) produced NaN or infinite latents (the image would be one colour); "
                        + "lower --cfg-scale (now \(GenerationMetadata.formatNumber(options.cfgScale))) or check the model's weights")
                }
                if let samples = attention.entropySamples { entropy.append((calls - 1, sigma, samples)) }
                let passDone = scheduler.stepsCompleted(afterCall: call) - stepsBefore[index]
                guard stepsOfEarlierPasses + passDone > done else { continue }
                done = stepsOfEarlierPasses + passDone
                progress(.step(index: done, total: total, secondsPerStep: Date().timeIntervalSince(sampleStart) / Double(done)))
                progress(.latents(index: done, total: total, latents: latents))
            }
        }
        timings.append(("sample", Date().timeIntervalSince(sampleStart)))
        progress(.phase(name: "sample", seconds: timings.last?.seconds ?? 0))
        let output = plan.output == .areaAveragedImage
            ? AreaResize.shrink(latents, height: options.height / factor, width: options.width / factor) : latents
        return GenerationResult(latents: output, renderedLatents: latents, composition: plan,
                                attentionSummary: summaries.joined(separator: "; "),
                                attentionName: names.joined(separator: ", "), entropy: entropy, timings: timings, stoppedEarly: stoppedEarly)
    }

    /// StableDiffusionImg2ImgPipeline's start: encode, sample the latent distribution (one draw for the image
    /// batch), scale, repeat a single image to the batch. With per-image seeds, each image of the batch samples
    /// the distribution with its own generator.
    private func encodeInitImage(_ image: Tensor, options: GenerationOptions, batch: Int, random: any RandomSource) throws -> Tensor {
        guard image.rank == 4, image.dim(0) == 1 || image.dim(0) == batch,
              Array(image.shape.dropFirst()) == [3, options.height, options.width] else {
            throw AnySizeError(.invalidArgument,
                "init image tensor \(image.shape) does not match the canvas [1 or \(batch), 3, \(options.height), \(options.width)]; resize it first")
        }
        var (mean, logvar) = vae.encode(image, tiling: options.vaeTiling)
        if random is PerImageRandom && mean.dim(0) != batch {
            mean = Elementwise.concatBatch(Array(repeating: mean, count: batch))
            logvar = Elementwise.concatBatch(Array(repeating: logvar, count: batch))
        }
        let eps = random.randn(mean.shape)
        let sample = Tensor(zeros: mean.shape)
        for i in 0 ..< sample.count {
            sample.pointer[i] = scalingFactor * (mean.pointer[i] + Foundation.exp(0.5 * logvar.pointer[i]) * eps.pointer[i])
        }
        return sample.dim(0) == batch ? sample : Elementwise.concatBatch(Array(repeating: sample, count: batch))
    }

    /// uncond + scale * (cond - uncond) for an output [2N, ...] holding the unconditional half first.
    static func guidance(_ output: Tensor, scale: Float) -> Tensor {
        let half = output.dim(0) / 2
        var shape = output.shape
        shape[0] = half
        let out = Tensor(zeros: shape)
        let n = out.count
        let u = output.pointer, c = output.pointer + n, o = out.pointer
        for i in 0 ..< n { o[i] = u[i] + scale * (c[i] - u[i]) }
        return out
    }

    /// The images of a generation [N, 3, H, W] in about [-1, 1]: its rendered latents VAE-decoded (`decode`), and
    /// for `resize` area-averaged (box filter, per channel) down to the target canvas.
    public func decodeImages(_ result: GenerationResult, tiling: VAETiling = .automatic) -> Tensor {
        let decoded = decode(result.renderedLatents, tiling: tiling)
        guard result.composition.output == .areaAveragedImage else { return decoded }
        return AreaResize.shrink(decoded, height: result.composition.height, width: result.composition.width)
    }

    /// VAE-decodes sampler-space latents [N, 4, h, w] to images [N, 3, 8h, 8w] in about [-1, 1], one image at
    /// a time, in tiles as `tiling` says (automatic: untiled up to `VAETiling.automaticThresholdPixels`).
    public func decode(_ latents: Tensor, tiling: VAETiling = .automatic) -> Tensor {
        let z = Tensor(zeros: latents.shape)
        for i in 0 ..< z.count { z.pointer[i] = latents.pointer[i] / scalingFactor }  // latents / scaling_factor
        return vae.decode(z, tiling: tiling)
    }
}
