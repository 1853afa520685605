/// The error of a bfloat16 UNet call against float32 on the benchmark's inputs (`anysize bench --accuracy`).
public struct PrecisionComparison: Sendable {
    /// max |bf16 - fp32| over the output, and max |fp32|.
    public var maxAbsError: Float, referenceMaxAbs: Float
    /// maxAbsError / referenceMaxAbs (the "relative max-abs error").
    public var relative: Float { maxAbsError / max(referenceMaxAbs, .leastNormalMagnitude) }

    /// One JSON line: component, size, batch, max_abs_error, reference_max_abs, relative_error, bf16 path.
    public func jsonLine(options: BenchmarkOptions) -> String {
        "{\"component\":\"unet\",\"width\":\(options.width),\"height\":\(options.height),\"batch\":\(options.batch),"
            + "\"comparison\":\"bf16 vs fp32\",\"matmul_path\":\"\(BFloat16.path.rawValue)\","
            + "\"max_abs_error\":\(maxAbsError),\"reference_max_abs\":\(referenceMaxAbs),\"relative_error\":\(relative)}"
    }
}

extension Benchmark {
    /// One UNet call on the seeded inputs of `run` (latents, context, timestep 500) in float32 and in bfloat16,
    /// one model at a time (the float32 one is dropped before the bfloat16 one is built).
    public static func precisionComparison(checkpoint: StableDiffusionCheckpoint, options: BenchmarkOptions) throws
        -> PrecisionComparison {
        try options.validate()
        let random = TorchRandom(seed: options.seed)
        let config = checkpoint.unetConfig
        let sample = random.randn([options.batch, config.inChannels, options.height / 8, options.width / 8])  // [B, 4, h, w]
        let context = random.randn([options.batch, 77, config.crossAttentionDim])                            // [B, 77, Cc]
        let timesteps = [Float](repeating: 500, count: options.batch)
        let attention = AttentionContext(trainedLatentHeight: config.sampleSize, trainedLatentWidth: config.sampleSize)
        func call(_ precision: Precision) throws -> Tensor {
            let unet = try UNet2DConditionModel(config: config, parameters: checkpoint.unet, precision: precision)
            return unet(sample, timesteps: timesteps, context: context, attention: attention)
        }
        let reference = try call(.fp32), bf16 = try call(.bf16)
        var worst: Float = 0
        for (a, b) in zip(bf16.buffer, reference.buffer) { worst = max(worst, abs(a - b)) }
        return PrecisionComparison(maxAbsError: worst, referenceMaxAbs: reference.maxAbs)
    }
}
