/// Ancestral Euler sampling (k-diffusion `sample_euler_ancestral`, eta 1): an Euler step down to
/// sigma_down, then fresh noise of scale sigma_up, with sigma_up^2 + sigma_down^2 = sigma_next^2.
///
/// Matches diffusers `EulerAncestralDiscreteScheduler` (0.42), including its noise: every step draws
/// `randn(output.shape)` from the random source (diffusers `randn_tensor(..., generator=generator)`),
/// the last step too. Limitations: no Karras sigmas (diffusers has none for this class), epsilon and
/// v prediction only.
public final class EulerAncestralDiscreteScheduler: EulerFamilyScheduler {
    public let timesteps: [Double]
    /// sigma of each model call, then 0.
    public let sigmas: [Float]
    public let inferenceSteps: Int
    public let initNoiseSigma: Float
    public let predictionType: PredictionType
    public let noiseSchedule: NoiseSchedule

    static let name = "EulerAncestralDiscreteScheduler"

    /// `EulerAncestralDiscreteScheduler.from_config(config)` then `set_timesteps(steps)`.
    public init(config: SchedulerConfig, steps: Int) throws {
        let defaults = SchedulerDefaults()
        if config.useKarrasSigmas == true {
            throw config.unsupported("use_karras_sigmas", true, Self.name, "false")
        }
        noiseSchedule = try NoiseSchedule(config: config, defaults: defaults, scheduler: Self.name)
        predictionType = try config.resolvedPrediction(Self.name)
        let schedule = try SigmaSchedule(
            config: config, schedule: noiseSchedule, steps: steps, defaults: defaults, scheduler: Self.name,
            karras: false, karrasBounds: (nil, nil), finalSigmaMin: false)
        timesteps = schedule.timesteps
        sigmas = schedule.sigmas
        initNoiseSigma = schedule.initNoiseSigma
        inferenceSteps = steps
    }

    /// sigma_up = sqrt(s1^2 (s0^2 - s1^2) / s0^2), sigma_down = sqrt(s1^2 - sigma_up^2);
    /// x_next = x + (x - x0) / s0 * (sigma_down - s0) + noise * sigma_up.
    public func step(output: Tensor, stepIndex: Int, sample: Tensor, random: RandomSource) -> Tensor {
        let from = sigmas[stepIndex]
        let to = sigmas[stepIndex + 1]
        let up = (to * to * (from * from - to * to) / (from * from)).squareRoot()
        let down = (to * to - up * up).squareRoot()
        let dt = down - from
        let denoised = SigmaMath.denoised(output: output, sample: sample, sigma: from, prediction: predictionType)
        let noise = random.randn(output.shape)
        precondition(noise.shape == output.shape, "random source returned \(noise.shape) for \(output.shape)")
        return zipElements(sample, denoised, noise) { x, x0, n in (x + (x - x0) / from * dt) + n * up }
    }

    public func reset() {}
}
