/// Heun's second-order method on the probability-flow ODE (Karras et al. 2022, Algorithm 1 without churn).
///
/// Matches diffusers `HeunDiscreteScheduler` (0.42): two model calls per step, the first at sigma_i
/// (an Euler predictor), the second at sigma_{i+1} (the trapezoidal corrector); the last step is a
/// plain Euler step to sigma 0, so `steps` steps make 2 * steps - 1 calls and `timesteps` /
/// `sigmas` interleave the repeated values exactly as diffusers does. Supports `timestep_spacing`,
/// `use_karras_sigmas`, `clip_sample`, epsilon and v prediction. Limitations: no exponential / beta sigmas.
public final class HeunDiscreteScheduler: EulerFamilyScheduler {
    public let timesteps: [Double]
    /// sigma of each model call, then 0 (diffusers' interleaved `sigmas`).
    public let sigmas: [Float]
    public let inferenceSteps: Int
    public let initNoiseSigma: Float
    public let predictionType: PredictionType
    public let noiseSchedule: NoiseSchedule
    public var order: Int { 2 }
    private let clipRange: Float?

    // Predictor state between the two calls of a step.
    private var savedDerivative: Tensor?
    private var savedDt: Float = 0
    private var savedSample: Tensor?

    static let name = "HeunDiscreteScheduler"

    /// `HeunDiscreteScheduler.from_config(config)` then `set_timesteps(steps)`.
    public init(config: SchedulerConfig, steps: Int) throws {
        var defaults = SchedulerDefaults()
        defaults.betaStart = 0.00085
        defaults.betaEnd = 0.012
        noiseSchedule = try NoiseSchedule(config: config, defaults: defaults, scheduler: Self.name)
        predictionType = try config.resolvedPrediction(Self.name)
        let schedule = try SigmaSchedule(
            config: config, schedule: noiseSchedule, steps: steps, defaults: defaults, scheduler: Self.name,
            karras: config.useKarrasSigmas ?? false, karrasBounds: (nil, nil), finalSigmaMin: false)
        // [t0, t1, t1, t2, t2, ...] and [s0, s1, s1, ..., s_{n-1}, s_{n-1}, 0].
        var callTimesteps = [schedule.timesteps[0]]
        for t in schedule.timesteps.dropFirst() { callTimesteps += [t, t] }
        var callSigmas = [schedule.sigmas[0]]
        for s in schedule.sigmas.dropFirst().dropLast() { callSigmas += [s, s] }
        callSigmas.append(schedule.sigmas[schedule.sigmas.count - 1])
        timesteps = callTimesteps
        sigmas = callSigmas
        initNoiseSigma = schedule.initNoiseSigma
        inferenceSteps = steps
        clipRange = (config.clipSample ?? defaults.clipSample) ? Float(config.clipSampleRange ?? 1) : nil
    }

    /// Even calls (predictor): d = (x - x0) / s_i, x' = x + d (s_{i+1} - s_i).
    /// Odd calls (corrector): d' = (x' - x0') / s_{i+1}, x_next = x + (d + d') / 2 * (s_{i+1} - s_i).
    public func step(output: Tensor, stepIndex: Int, sample: Tensor, random: RandomSource) -> Tensor {
        let firstOrder = stepIndex % 2 == 0
        let sigma = firstOrder ? sigmas[stepIndex] : sigmas[stepIndex - 1]
        let sigmaNext = firstOrder ? sigmas[stepIndex + 1] : sigmas[stepIndex]
        let sigmaInput = firstOrder ? sigma : sigmaNext
        var denoised = SigmaMath.denoised(output: output, sample: sample, sigma: sigmaInput, prediction: predictionType)
        if let range = clipRange {
            denoised = mapElements(denoised) { min(max($0, -range), range) }
        }
        if firstOrder {
            let derivative = zipElements(sample, denoised) { x, x0 in (x - x0) / sigma }
            let dt = sigmaNext - sigma
            savedDerivative = derivative
            savedDt = dt
            savedSample = sample
            return zipElements(sample, derivative) { x, d in x + d * dt }
        }
        guard let previousDerivative = savedDerivative, let start = savedSample else {
            preconditionFailure("Heun corrector call \(stepIndex) without its predictor call \(stepIndex - 1)")
        }
        let dt = savedDt
        savedDerivative = nil
        savedSample = nil
        let derivative = zipElements(sample, denoised, previousDerivative) { x, x0, d0 in
            (d0 + (x - x0) / sigmaNext) / 2
        }
        return zipElements(start, derivative) { x, d in x + d * dt }
    }

    public func reset() {
        savedDerivative = nil
        savedSample = nil
    }
}
