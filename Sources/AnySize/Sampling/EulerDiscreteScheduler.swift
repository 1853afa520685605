/// Euler's method on the probability-flow ODE in sigma (Karras et al. 2022, Algorithm 2 without churn).
///
/// Matches diffusers `EulerDiscreteScheduler` (0.42): `timestep_spacing` linspace / leading / trailing,
/// `use_karras_sigmas`, `final_sigmas_type` zero / sigma_min, config `sigma_min` / `sigma_max`,
/// epsilon and v prediction. Limitations: no stochastic churn (`s_churn` 0, the pipelines' default),
/// `interpolation_type` linear only, `timestep_type` discrete only, no exponential / beta sigmas.
public final class EulerDiscreteScheduler: EulerFamilyScheduler {
    public let timesteps: [Double]
    /// sigma of each model call, then the final sigma (diffusers `sigmas`).
    public let sigmas: [Float]
    public let inferenceSteps: Int
    public let initNoiseSigma: Float
    public let predictionType: PredictionType
    /// The training noise schedule.
    public let noiseSchedule: NoiseSchedule

    static let name = "EulerDiscreteScheduler"

    /// `EulerDiscreteScheduler.from_config(config)` then `set_timesteps(steps)`.
    public init(config: SchedulerConfig, steps: Int) throws {
        let defaults = SchedulerDefaults()
        if let value = config.interpolationType, value != "linear" {
            throw config.unsupported("interpolation_type", value, Self.name, "linear")
        }
        if let value = config.timestepType, value != "discrete" {
            throw config.unsupported("timestep_type", value, Self.name, "discrete")
        }
        noiseSchedule = try NoiseSchedule(config: config, defaults: defaults, scheduler: Self.name)
        predictionType = try config.resolvedPrediction(Self.name)
        let schedule = try SigmaSchedule(
            config: config, schedule: noiseSchedule, steps: steps, defaults: defaults, scheduler: Self.name,
            karras: config.useKarrasSigmas ?? false, karrasBounds: (config.sigmaMin, config.sigmaMax),
            finalSigmaMin: try config.resolvedFinalSigmaMin(Self.name))
        timesteps = schedule.timesteps
        sigmas = schedule.sigmas
        initNoiseSigma = schedule.initNoiseSigma
        inferenceSteps = steps
    }

    /// x_next = x + (x - x0) / sigma * (sigma_next - sigma).
    public func step(output: Tensor, stepIndex: Int, sample: Tensor, random: RandomSource) -> Tensor {
        let sigma = sigmas[stepIndex]
        let dt = sigmas[stepIndex + 1] - sigma
        let denoised = SigmaMath.denoised(output: output, sample: sample, sigma: sigma, prediction: predictionType)
        return zipElements(sample, denoised) { x, x0 in x + (x - x0) / sigma * dt }
    }

    public func reset() {}
}
