/// The error of a bfloat16 call of one component against float32 on the benchmark's inputs
/// (`anysize bench --accuracy`).
public struct PrecisionComparison: Sendable {
    /// max |bf16 - fp32| over the output, and max |fp32|.
    public var maxAbsError: Float, referenceMaxAbs: Float
    /// maxAbsError / referenceMaxAbs (the "relative max-abs error").
    public var relative: Float { maxAbsError / max(referenceMaxAbs, .leastNormalMagnitude) }

    /// One JSON line: component, size, batch, max_abs_error, reference_max_abs, relative_error, bf16 path.
    public func jsonLine(options: BenchmarkOptions) -> String {
        "{\"component\":\"\(options.component.rawValue)\",\"width\":\(options.width),\"height\":\(options.height),\"batch\":\(options.batch),"
            + "\"comparison\":\"bf16 vs fp32\",\"matmul_path\":\"\(BFloat16.path.rawValue)\","
            + "\"max_abs_error\":\(maxAbsError),\"reference_max_abs\":\(referenceMaxAbs),\"relative_error\":\(relative)}"
    }
}

extension Benchmark {
    /// One call of the component on the seeded inputs of `run` in float32 and in bfloat16, one model at a time (the
    /// float32 one is dropped before the bfloat16 one is built): the UNet on latents and context at timestep 500,
    /// the VAE decoder on latents (output in [-1, 1]), the text encoder on token windows.
    public static func precisionComparison(checkpoint: StableDiffusionCheckpoint, options: BenchmarkOptions) throws
        -> PrecisionComparison {
        try options.validate()
        let reference = try singleCall(checkpoint: checkpoint, options: options, precision: .fp32)()
        let bf16 = try singleCall(checkpoint: checkpoint, options: options, precision: .bf16)()
        var worst: Float = 0
        for (a, b) in zip(bf16.buffer, reference.buffer) { worst = max(worst, abs(a - b)) }
        return PrecisionComparison(maxAbsError: worst, referenceMaxAbs: reference.maxAbs)
    }

    /// The component's model built in `precision` and one call of it on inputs drawn from `options.seed` (the same
    /// inputs whatever the precision): the UNet on latents and context at timestep 500, the VAE decoder on
    /// latents, the text encoder on token windows. `sample` is several calls and has no single call.
    static func singleCall(checkpoint: StableDiffusionCheckpoint, options: BenchmarkOptions, precision: Precision)
        throws -> () throws -> Tensor {
        let random = TorchRandom(seed: options.seed)
        let latentHeight = options.height / 8, latentWidth = options.width / 8
        switch options.component {
        case .sample:
            throw AnySizeError(.invalidArgument, "--accuracy compares single calls; use it with --component unet, vae-decode or text-encoder")
        case .unet:
            let config = checkpoint.unetConfig
            let unet = try UNet2DConditionModel(config: config, parameters: checkpoint.unet, precision: precision)
            let sample = random.randn([options.batch, config.inChannels, latentHeight, latentWidth])  // [B, 4, h, w]
            let context = random.randn([options.batch, 77, config.crossAttentionDim])                // [B, 77, Cc]
            let timesteps = [Float](repeating: 500, count: options.batch)
            let attention = AttentionContext(trainedLatentHeight: config.sampleSize, trainedLatentWidth: config.sampleSize)
            return { unet(sample, timesteps: timesteps, context: context, attention: attention) }
        case .vaeDecode:
            let vae = try AutoencoderKL(config: checkpoint.vaeConfig, parameters: checkpoint.vae, precision: precision)
            let latents = random.randn([options.batch, checkpoint.vaeConfig.latentChannels, latentHeight, latentWidth])
            return { vae.decode(latents) }
        case .textEncoder:
            let encoder = try CLIPTextModel(config: checkpoint.textConfig, parameters: checkpoint.textEncoder,
                                            precision: precision)
            let ids = tokenWindows(count: options.batch, vocabulary: checkpoint.textConfig.vocabSize, seed: options.seed)
            return { try encoder(ids) }
        }
    }
}
