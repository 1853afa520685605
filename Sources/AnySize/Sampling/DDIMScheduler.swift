/// Deterministic DDIM (Song et al. 2020, arXiv 2010.02502) with eta 0:
/// x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps.
///
/// Matches diffusers `DDIMScheduler` (0.42) called with eta 0 (the pipelines' default): integer
/// timesteps by `timestep_spacing` (default "leading" with `steps_offset`), `set_alpha_to_one`,
/// `clip_sample` / `clip_sample_range` (diffusers' class default clips; SD configs set it false),
/// epsilon and v prediction. Its per-call sigma is sqrt((1 - abar_t) / abar_t) at the call's timestep.
/// Limitations: eta > 0 (stochastic DDIM), thresholding and Karras sigmas are not available.
public final class DDIMScheduler: Scheduler {
    public let timesteps: [Double]
    public let inferenceSteps: Int
    public var initNoiseSigma: Float { 1 }
    public let predictionType: PredictionType
    public let noiseSchedule: NoiseSchedule
    private let integerTimesteps: [Int]
    private let finalAlphaCumprod: Float
    private let clipRange: Float?

    static let name = "DDIMScheduler"

    /// `DDIMScheduler.from_config(config)` then `set_timesteps(steps)`.
    public init(config: SchedulerConfig, steps: Int) throws {
        precondition(steps >= 1, "at least one inference step")
        var defaults = SchedulerDefaults()
        defaults.timestepSpacing = .leading
        defaults.clipSample = true
        noiseSchedule = try NoiseSchedule(config: config, defaults: defaults, scheduler: Self.name)
        predictionType = try config.resolvedPrediction(Self.name)
        let train = noiseSchedule.trainSteps
        guard steps <= train else {
            throw AnySizeError(.invalidArgument, "DDIM: \(steps) steps exceed num_train_timesteps \(train); use fewer steps")
        }
        switch try config.resolvedSpacing(Self.name, defaults: defaults) {
        case .linspace:
            integerTimesteps = ScheduleMath.numpyLinspace(0, Double(train - 1), steps).reversed()
                .map { Int(ScheduleMath.roundHalfEven($0)) }
        case .leading:
            let ratio = train / steps
            integerTimesteps = (0 ..< steps).reversed().map { $0 * ratio + (config.stepsOffset ?? 0) }
        case .trailing:
            let ratio = Double(train) / Double(steps)
            integerTimesteps = ScheduleMath.numpyArange(Double(train), 0, -ratio)
                .map { Int(ScheduleMath.roundHalfEven($0)) - 1 }
        }
        if let bad = integerTimesteps.first(where: { $0 < 0 || $0 >= train }) {
            throw AnySizeError(.unsupportedConfig, "DDIM: timestep \(bad) lies outside 0..<\(train) "
                + "(steps_offset \(config.stepsOffset ?? 0)); lower steps_offset or change timestep_spacing")
        }
        timesteps = integerTimesteps.map { Double($0) }
        inferenceSteps = steps
        finalAlphaCumprod = (config.setAlphaToOne ?? defaults.setAlphaToOne) ? 1 : noiseSchedule.alphasCumprod[0]
        clipRange = (config.clipSample ?? defaults.clipSample) ? Float(config.clipSampleRange ?? 1) : nil
    }

    public func sigma(atStep stepIndex: Int) -> Float {
        let alphaBar = noiseSchedule.alphasCumprod[integerTimesteps[stepIndex]]
        return ((1 - alphaBar) / alphaBar).squareRoot()
    }

    public func scaleModelInput(_ sample: Tensor, stepIndex: Int) -> Tensor { sample }

    /// epsilon: x0 = (x - sqrt(1 - abar_t) eps) / sqrt(abar_t);
    /// v: x0 = sqrt(abar_t) x - sqrt(1 - abar_t) v, eps = sqrt(abar_t) v + sqrt(1 - abar_t) x;
    /// x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps, prev = t - T / steps.
    public func step(output: Tensor, stepIndex: Int, sample: Tensor, random: RandomSource) -> Tensor {
        let t = integerTimesteps[stepIndex]
        let previous = t - noiseSchedule.trainSteps / inferenceSteps
        let alphaBar = noiseSchedule.alphasCumprod[t]
        let alphaBarPrevious = previous >= 0 ? noiseSchedule.alphasCumprod[previous] : finalAlphaCumprod
        let rootAlpha = alphaBar.squareRoot()
        let rootBeta = (1 - alphaBar).squareRoot()
        let rootAlphaPrevious = alphaBarPrevious.squareRoot()
        let directionScale = (1 - alphaBarPrevious).squareRoot()
        let clip = clipRange
        let prediction = predictionType
        return zipElements(sample, output) { x, out in
            var x0: Float
            let eps: Float
            switch prediction {
            case .epsilon:
                x0 = (x - rootBeta * out) / rootAlpha
                eps = out
            case .vPrediction:
                x0 = rootAlpha * x - rootBeta * out
                eps = rootAlpha * out + rootBeta * x
            }
            if let range = clip { x0 = min(max(x0, -range), range) }
            return rootAlphaPrevious * x0 + directionScale * eps
        }
    }

    /// sqrt(abar_t) x + sqrt(1 - abar_t) noise at the call's timestep.
    public func addNoise(original: Tensor, noise: Tensor, stepIndex: Int) -> Tensor {
        let alphaBar = noiseSchedule.alphasCumprod[integerTimesteps[stepIndex]]
        let a = alphaBar.squareRoot()
        let b = (1 - alphaBar).squareRoot()
        return zipElements(original, noise) { x, n in a * x + b * n }
    }

    public func reset() {}
}
