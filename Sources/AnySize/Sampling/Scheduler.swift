/// A diffusion sampler, step for step like a diffusers scheduler after `set_timesteps(steps)`.
///
/// The sampling loop (as diffusers' Stable Diffusion pipelines):
/// ```
/// var latents = random.randn([1, 4, h, w]) * scheduler.initNoiseSigma
/// for i in scheduler.timesteps.indices {
///     let input = scheduler.scaleModelInput(latents, stepIndex: i)
///     let output = unet(input, timestep: scheduler.timesteps[i])
///     latents = scheduler.step(output: output, stepIndex: i, sample: latents, random: random)
/// }
/// ```
/// `stepIndex` counts model calls, like diffusers' `step_index`: Heun makes two calls per step
/// (except the last) and its `timesteps` lists the repeated timestep. Multistep and second-order
/// schedulers keep state between calls, so call `step` in order, once per index, and use one
/// scheduler per sampling run (or `reset()` it). Tensors are `[B, C, H, W]` float32.
public protocol Scheduler: AnyObject {
    /// The timestep passed to the model at each call (diffusers `scheduler.timesteps`; float32 values
    /// for Euler / Heun, integers for DPM-Solver / DDIM).
    var timesteps: [Double] { get }
    /// The number of inference steps the schedule was built for (`num_inference_steps`).
    var inferenceSteps: Int { get }
    /// diffusers' `order`: model calls per step as counted by img2img truncation (2 for Heun).
    var order: Int { get }
    /// Standard deviation of the initial noise (`init_noise_sigma`).
    var initNoiseSigma: Float { get }
    /// What the model predicts.
    var predictionType: PredictionType { get }

    /// The noise level sigma of model call `stepIndex`: the scheduler's own sigma for the
    /// Euler / Heun / DPM-Solver family, sqrt((1 - abar_t) / abar_t) at the call's timestep for DDIM.
    func sigma(atStep stepIndex: Int) -> Float
    /// The model input for call `stepIndex` (`scale_model_input`).
    func scaleModelInput(_ sample: Tensor, stepIndex: Int) -> Tensor
    /// One update from the model output of call `stepIndex` (`step(...).prev_sample`). Ancestral
    /// samplers draw their noise from `random`.
    func step(output: Tensor, stepIndex: Int, sample: Tensor, random: RandomSource) -> Tensor
    /// `original` noised to the level of call `stepIndex` (`add_noise` after `set_begin_index`).
    func addNoise(original: Tensor, noise: Tensor, stepIndex: Int) -> Tensor
    /// Forgets multistep / second-order state, to sample again with the same schedule.
    func reset()
}

extension Scheduler {
    public var order: Int { 1 }

    /// The number of model calls in a full run.
    public var modelCalls: Int { timesteps.count }

    /// Sampler steps finished after model call `stepIndex` (0-based): one per call for first-order samplers;
    /// Heun (order 2) finishes a step with its second call, except the last step, which takes one call.
    public func stepsCompleted(afterCall stepIndex: Int) -> Int {
        guard order > 1 else { return stepIndex + 1 }
        return stepIndex + 1 >= modelCalls ? inferenceSteps : (stepIndex + 1) / order
    }

    /// The first call index of an img2img run at `strength` (0 ... 1), as
    /// `StableDiffusionImg2ImgPipeline.get_timesteps`: init = min(Int(steps * strength), steps),
    /// start = max(steps - init, 0), first call = start * order. The run then makes calls
    /// `img2imgStartIndex(strength:) ..< modelCalls`, starting from
    /// `addNoise(original:noise:stepIndex: start)`; when the index equals `modelCalls` no step runs.
    public func img2imgStartIndex(strength: Double) -> Int {
        let steps = inferenceSteps
        let initSteps = min(Int(Double(steps) * strength), steps)
        let start = max(steps - initSteps, 0)
        return min(start * order, modelCalls)
    }
}

/// The samplers AnySize offers, by their common short names.
public enum SamplerKind: String, Sendable, CaseIterable {
    /// `EulerDiscreteScheduler`.
    case euler
    /// `EulerAncestralDiscreteScheduler`.
    case eulerAncestral = "euler_a"
    /// `HeunDiscreteScheduler`.
    case heun
    /// `DPMSolverMultistepScheduler` (DPM-Solver++ 2M).
    case dpmpp2m = "dpmpp_2m"
    /// `DDIMScheduler` (eta 0).
    case ddim

    /// Whether the sampler can use the Karras et al. sigma schedule.
    public var supportsKarras: Bool {
        switch self {
        case .euler, .heun, .dpmpp2m: return true
        case .eulerAncestral, .ddim: return false
        }
    }

    /// A scheduler of this kind for `steps` inference steps, as `XScheduler.from_config(config)`
    /// followed by `set_timesteps(steps)`. `karras` switches on `use_karras_sigmas` (the config's own
    /// `use_karras_sigmas` is honoured too).
    public func makeScheduler(config: SchedulerConfig, steps: Int, karras: Bool = false) throws -> Scheduler {
        guard steps >= 1 else {
            throw AnySizeError(.invalidArgument, "sampler \(rawValue): steps = \(steps); use at least 1 step")
        }
        if karras && !supportsKarras {
            throw AnySizeError(.invalidArgument, "sampler \(rawValue) does not support Karras sigmas; "
                + "use it without --karras or choose euler, heun or dpmpp_2m")
        }
        var config = config
        if karras { config.useKarrasSigmas = true }
        switch self {
        case .euler: return try EulerDiscreteScheduler(config: config, steps: steps)
        case .eulerAncestral: return try EulerAncestralDiscreteScheduler(config: config, steps: steps)
        case .heun: return try HeunDiscreteScheduler(config: config, steps: steps)
        case .dpmpp2m: return try DPMSolverMultistepScheduler(config: config, steps: steps)
        case .ddim: return try DDIMScheduler(config: config, steps: steps)
        }
    }
}

/// Shared pieces of the schedulers that work on k-diffusion sigmas.
/// A scheduler of the Euler family (Euler, Euler ancestral, Heun), whose model input, noise level and img2img
/// noising all follow from one sigma per model call (diffusers' `sigmas` repeated per call).
public protocol EulerFamilyScheduler: Scheduler {
    /// sigma of each model call, then the final sigma.
    var sigmas: [Float] { get }
}

extension EulerFamilyScheduler {
    public func sigma(atStep stepIndex: Int) -> Float { sigmas[stepIndex] }

    public func scaleModelInput(_ sample: Tensor, stepIndex: Int) -> Tensor {
        SigmaMath.scaleInput(sample, sigma: sigmas[stepIndex])
    }

    public func addNoise(original: Tensor, noise: Tensor, stepIndex: Int) -> Tensor {
        SigmaMath.addNoise(original: original, noise: noise, sigma: sigmas[stepIndex])
    }
}

enum SigmaMath {
    /// x / sqrt(sigma^2 + 1): the model input scaling of the Euler family.
    static func scaleInput(_ sample: Tensor, sigma: Float) -> Tensor {
        let scale = (sigma * sigma + 1).squareRoot()
        return mapElements(sample) { $0 / scale }
    }

    /// The denoised estimate x0 from the model output at noise level sigma:
    /// epsilon: x - sigma * out; v: out * (-sigma / sqrt(sigma^2 + 1)) + x / (sigma^2 + 1).
    static func denoised(output: Tensor, sample: Tensor, sigma: Float, prediction: PredictionType) -> Tensor {
        switch prediction {
        case .epsilon:
            return zipElements(sample, output) { x, out in x - sigma * out }
        case .vPrediction:
            let variance = sigma * sigma + 1
            let outScale = -sigma / variance.squareRoot()
            return zipElements(sample, output) { x, out in out * outScale + x / variance }
        }
    }

    /// original + noise * sigma (`add_noise` of the Euler family).
    static func addNoise(original: Tensor, noise: Tensor, sigma: Float) -> Tensor {
        zipElements(original, noise) { x, n in x + n * sigma }
    }
}
