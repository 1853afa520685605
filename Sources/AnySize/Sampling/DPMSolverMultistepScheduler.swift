import Foundation

/// DPM-Solver++(2M) (Lu et al. 2022, arXiv 2211.01095): a second-order multistep solver in
/// log-SNR time lambda = ln(alpha / sigma) on the data prediction x0.
///
/// Matches diffusers `DPMSolverMultistepScheduler` (0.42) with `algorithm_type` "dpmsolver++",
/// `solver_order` 2, `solver_type` "midpoint": the first step and the last one (with
/// `final_sigmas_type` "zero", or fewer than 15 steps with `lower_order_final`, or `euler_at_final`)
/// are first order. Supports `timestep_spacing`, `use_karras_sigmas` (timesteps rounded to integers
/// as diffusers does), `final_sigmas_type`, epsilon and v prediction. Limitations: no SDE variants,
/// no third order, no thresholding, no `lambda_min_clipped`.
public final class DPMSolverMultistepScheduler: Scheduler {
    public let timesteps: [Double]
    /// sigma of each model call, then the final sigma.
    public let sigmas: [Float]
    public let inferenceSteps: Int
    public var initNoiseSigma: Float { 1 }
    public let predictionType: PredictionType
    public let noiseSchedule: NoiseSchedule
    private let lowerOrderFinal: Bool
    private let eulerAtFinal: Bool
    private let finalSigmaMin: Bool

    // Multistep state: the previous x0 prediction and how many lower-order steps were taken.
    private var previousDenoised: Tensor?
    private var lowerOrderCount = 0

    static let name = "DPMSolverMultistepScheduler"

    /// `DPMSolverMultistepScheduler.from_config(config)` then `set_timesteps(steps)`.
    public init(config: SchedulerConfig, steps: Int) throws {
        precondition(steps >= 1, "at least one inference step")
        let defaults = SchedulerDefaults()
        if let value = config.algorithmType, value != "dpmsolver++" {
            throw config.unsupported("algorithm_type", value, Self.name, "dpmsolver++")
        }
        if let value = config.solverOrder, value != 2 {
            throw config.unsupported("solver_order", value, Self.name, "2")
        }
        if let value = config.solverType, value != "midpoint" {
            throw config.unsupported("solver_type", value, Self.name, "midpoint")
        }
        if let value = config.lambdaMinClipped, value != -.infinity {
            throw config.unsupported("lambda_min_clipped", value, Self.name, "-Infinity")
        }
        let noiseSchedule = try NoiseSchedule(config: config, defaults: defaults, scheduler: Self.name)
        self.noiseSchedule = noiseSchedule
        predictionType = try config.resolvedPrediction(Self.name)
        let spacing = try config.resolvedSpacing(Self.name, defaults: defaults)
        finalSigmaMin = try config.resolvedFinalSigmaMin(Self.name)
        lowerOrderFinal = config.lowerOrderFinal ?? true
        eulerAtFinal = config.eulerAtFinal ?? false

        let train = noiseSchedule.trainSteps
        var steps64: [Int]
        switch spacing {
        case .linspace:
            let values = ScheduleMath.numpyLinspace(0, Double(train - 1), steps + 1)
            steps64 = values.reversed().dropLast().map { Int(ScheduleMath.roundHalfEven($0)) }
        case .leading:
            let ratio = train / (steps + 1)
            steps64 = (0 ... steps).reversed().dropLast().map { $0 * ratio + (config.stepsOffset ?? 0) }
        case .trailing:
            let ratio = Double(train) / Double(steps)
            steps64 = ScheduleMath.numpyArange(Double(train), 0, -ratio).map { Int(ScheduleMath.roundHalfEven($0)) - 1 }
        }
        var callSigmas: [Float]
        if config.useKarrasSigmas ?? false {
            // The whole training range, from sigma_T down to sigma_0.
            let karras = NoiseSchedule.karrasSigmas(sigmaMin: Double(noiseSchedule.sigmas[0]),
                                                    sigmaMax: Double(noiseSchedule.sigmas[train - 1]), steps: steps)
            steps64 = karras.map { Int(ScheduleMath.roundHalfEven(noiseSchedule.timestep(forSigma: $0))) }
            callSigmas = karras.map { Float($0) }
        } else {
            callSigmas = steps64.map { noiseSchedule.sigmas[$0] }
        }
        callSigmas.append(finalSigmaMin ? noiseSchedule.sigmas[0] : 0)
        timesteps = steps64.map { Double($0) }
        sigmas = callSigmas
        inferenceSteps = steps
    }

    public func sigma(atStep stepIndex: Int) -> Float { sigmas[stepIndex] }

    public func scaleModelInput(_ sample: Tensor, stepIndex: Int) -> Tensor { sample }

    /// alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma * alpha_t, lambda = ln alpha_t - ln sigma_t.
    private func alphaSigma(_ sigma: Float) -> (alpha: Float, sigma: Float, lambda: Float) {
        let alpha = 1 / (sigma * sigma + 1).squareRoot()
        let scaled = sigma * alpha
        return (alpha, scaled, Foundation.log(alpha) - Foundation.log(scaled))
    }

    /// First order: x_t = (sigma_t / sigma_s) x - alpha_t (e^{-h} - 1) D0.
    /// Second order (midpoint): also - 0.5 alpha_t (e^{-h} - 1) D1, D1 = (D0 - D0_prev) / r0,
    /// r0 = h_prev / h, h = lambda_t - lambda_s.
    public func step(output: Tensor, stepIndex: Int, sample: Tensor, random: RandomSource) -> Tensor {
        let current = alphaSigma(sigmas[stepIndex])
        let denoised: Tensor
        switch predictionType {
        case .epsilon:
            denoised = zipElements(sample, output) { x, out in (x - current.sigma * out) / current.alpha }
        case .vPrediction:
            denoised = zipElements(sample, output) { x, out in current.alpha * x - current.sigma * out }
        }
        let isLast = stepIndex == timesteps.count - 1
        let lowerOrder = isLast && (eulerAtFinal || (lowerOrderFinal && timesteps.count < 15) || !finalSigmaMin)
        let target = alphaSigma(sigmas[stepIndex + 1])
        let h = target.lambda - current.lambda
        let sampleScale = target.sigma / current.sigma
        let d0Scale = target.alpha * (Foundation.exp(-h) - 1)
        let result: Tensor
        if let previous = previousDenoised, lowerOrderCount >= 1, !lowerOrder {
            let before = alphaSigma(sigmas[stepIndex - 1])
            let r0 = (current.lambda - before.lambda) / h
            let d1Scale = 1 / r0
            let halfD0Scale = 0.5 * d0Scale
            result = zipElements(sample, denoised, previous) { x, d0, dPrev in
                sampleScale * x - d0Scale * d0 - halfD0Scale * (d1Scale * (d0 - dPrev))
            }
        } else {
            result = zipElements(sample, denoised) { x, d0 in sampleScale * x - d0Scale * d0 }
        }
        previousDenoised = denoised
        lowerOrderCount = min(lowerOrderCount + 1, 2)
        return result
    }

    /// alpha_t x + sigma_t noise at the call's sigma.
    public func addNoise(original: Tensor, noise: Tensor, stepIndex: Int) -> Tensor {
        let level = alphaSigma(sigmas[stepIndex])
        return zipElements(original, noise) { x, n in level.alpha * x + level.sigma * n }
    }

    public func reset() {
        previousDenoised = nil
        lowerOrderCount = 0
    }
}
