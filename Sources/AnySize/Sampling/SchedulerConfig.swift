import Foundation

/// How inference timesteps are spread over the training range (diffusers `timestep_spacing`).
public enum TimestepSpacing: String, Sendable, CaseIterable {
    case leading, linspace, trailing
}

/// The contents of a diffusers `scheduler_config.json`, key for key.
///
/// Every key is optional: a key missing from the file takes the default of the scheduler class that
/// is built from it, exactly as `XScheduler.from_config(config)` does in diffusers (so SD 1.5's
/// PNDM config gives Euler `linspace` spacing but DDIM `leading`). Values are kept as written; each
/// scheduler validates the keys it uses and throws `AnySizeError.unsupportedConfig` for values it
/// does not implement.
public struct SchedulerConfig: Decodable, Sendable, Equatable {
    public var className: String?
    public var numTrainTimesteps: Int?
    public var betaStart: Double?
    public var betaEnd: Double?
    /// "linear" or "scaled_linear" are supported.
    public var betaSchedule: String?
    /// Only `nil` is supported.
    public var trainedBetas: [Double]?
    /// "epsilon" or "v_prediction".
    public var predictionType: String?
    public var stepsOffset: Int?
    /// "leading", "linspace" or "trailing".
    public var timestepSpacing: String?
    public var setAlphaToOne: Bool?
    public var clipSample: Bool?
    public var clipSampleRange: Double?
    public var useKarrasSigmas: Bool?
    public var useExponentialSigmas: Bool?
    public var useBetaSigmas: Bool?
    public var useLuLambdas: Bool?
    /// "zero" or "sigma_min".
    public var finalSigmasType: String?
    /// "linear" only.
    public var interpolationType: String?
    /// "discrete" only.
    public var timestepType: String?
    public var sigmaMin: Double?
    public var sigmaMax: Double?
    public var rescaleBetasZeroSnr: Bool?
    public var thresholding: Bool?
    /// DPM-Solver: 2 only.
    public var solverOrder: Int?
    /// DPM-Solver: "dpmsolver++" only.
    public var algorithmType: String?
    /// DPM-Solver: "midpoint" only.
    public var solverType: String?
    public var lowerOrderFinal: Bool?
    public var eulerAtFinal: Bool?
    /// DPM-Solver: only -infinity (no clipping) is supported.
    public var lambdaMinClipped: Double?

    enum CodingKeys: String, CodingKey {
        case className = "_class_name"
        case numTrainTimesteps = "num_train_timesteps"
        case betaStart = "beta_start"
        case betaEnd = "beta_end"
        case betaSchedule = "beta_schedule"
        case trainedBetas = "trained_betas"
        case predictionType = "prediction_type"
        case stepsOffset = "steps_offset"
        case timestepSpacing = "timestep_spacing"
        case setAlphaToOne = "set_alpha_to_one"
        case clipSample = "clip_sample"
        case clipSampleRange = "clip_sample_range"
        case useKarrasSigmas = "use_karras_sigmas"
        case useExponentialSigmas = "use_exponential_sigmas"
        case useBetaSigmas = "use_beta_sigmas"
        case useLuLambdas = "use_lu_lambdas"
        case finalSigmasType = "final_sigmas_type"
        case interpolationType = "interpolation_type"
        case timestepType = "timestep_type"
        case sigmaMin = "sigma_min"
        case sigmaMax = "sigma_max"
        case rescaleBetasZeroSnr = "rescale_betas_zero_snr"
        case thresholding
        case solverOrder = "solver_order"
        case algorithmType = "algorithm_type"
        case solverType = "solver_type"
        case lowerOrderFinal = "lower_order_final"
        case eulerAtFinal = "euler_at_final"
        case lambdaMinClipped = "lambda_min_clipped"
    }

    /// An empty config: every key takes the scheduler class's default.
    public init() {}

    /// The scheduler config of Stable Diffusion 1.x checkpoints (SD 1.5's `scheduler_config.json`):
    /// scaled_linear betas 0.00085 ... 0.012 over 1000 steps, steps_offset 1, epsilon prediction,
    /// set_alpha_to_one false, clip_sample false. Used for single-file checkpoints.
    public static let sd15Default: SchedulerConfig = {
        var config = SchedulerConfig()
        config.className = "PNDMScheduler"
        config.numTrainTimesteps = 1000
        config.betaStart = 0.00085
        config.betaEnd = 0.012
        config.betaSchedule = "scaled_linear"
        config.stepsOffset = 1
        config.setAlphaToOne = false
        config.clipSample = false
        return config
    }()

    /// This config with `prediction_type` set (e.g. for an SD 2.x-768 single-file checkpoint).
    public func with(prediction: PredictionType) -> SchedulerConfig {
        var config = self
        config.predictionType = prediction.rawValue
        return config
    }

    /// Decodes a `scheduler_config.json`. Python's bare `Infinity` / `-Infinity` / `NaN` (written by
    /// diffusers for e.g. `lambda_min_clipped`) are accepted.
    public static func decode(json data: Data, source: String = "scheduler_config.json") throws -> SchedulerConfig {
        guard var text = String(data: data, encoding: .utf8) else {
            throw AnySizeError(.corruptFile, "\(source) is not UTF-8 text; expected a diffusers scheduler_config.json")
        }
        // Quote Python's non-standard float tokens where they stand as values.
        for token in ["-Infinity", "Infinity", "NaN"] {
            text = text.replacingOccurrences(of: ": \(token)", with: ": \"\(token)\"")
            text = text.replacingOccurrences(of: ":\(token)", with: ":\"\(token)\"")
        }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        do {
            return try decoder.decode(SchedulerConfig.self, from: Data(text.utf8))
        } catch {
            throw AnySizeError(.corruptFile, "\(source) is not a valid diffusers scheduler config (\(error)); "
                + "expected a JSON object such as a model's scheduler/scheduler_config.json")
        }
    }

    /// Reads and decodes a `scheduler_config.json` file.
    public static func load(contentsOf url: URL) throws -> SchedulerConfig {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw AnySizeError(.fileNotFound, "cannot read \(url.path); expected a diffusers scheduler_config.json")
        }
        return try decode(json: data, source: url.path)
    }
}

/// Per-class defaults of the keys where diffusers' scheduler classes disagree.
struct SchedulerDefaults {
    var betaStart = 0.0001
    var betaEnd = 0.02
    var timestepSpacing = TimestepSpacing.linspace
    var clipSample = false
    var setAlphaToOne = true
}

extension SchedulerConfig {
    func unsupported(_ key: String, _ value: Any, _ scheduler: String, _ supported: String) -> AnySizeError {
        AnySizeError(.unsupportedConfig, "scheduler config: \(key) = \(value) is not supported by \(scheduler) "
            + "(supported: \(supported)); edit the scheduler config or choose another sampler")
    }

    func resolvedPrediction(_ scheduler: String) throws -> PredictionType {
        let raw = predictionType ?? PredictionType.epsilon.rawValue
        guard let value = PredictionType(rawValue: raw) else {
            throw unsupported("prediction_type", raw, scheduler, "epsilon, v_prediction")
        }
        return value
    }

    func resolvedSpacing(_ scheduler: String, defaults: SchedulerDefaults) throws -> TimestepSpacing {
        guard let raw = timestepSpacing else { return defaults.timestepSpacing }
        guard let value = TimestepSpacing(rawValue: raw) else {
            throw unsupported("timestep_spacing", raw, scheduler, "leading, linspace, trailing")
        }
        return value
    }

    /// Rejects keys whose non-default values no scheduler here implements.
    func checkCommon(_ scheduler: String) throws {
        if let betas = trainedBetas {
            throw unsupported("trained_betas", "[\(betas.count) values]", scheduler, "null")
        }
        if rescaleBetasZeroSnr == true { throw unsupported("rescale_betas_zero_snr", true, scheduler, "false") }
        if thresholding == true { throw unsupported("thresholding", true, scheduler, "false") }
        if useExponentialSigmas == true { throw unsupported("use_exponential_sigmas", true, scheduler, "false") }
        if useBetaSigmas == true { throw unsupported("use_beta_sigmas", true, scheduler, "false") }
        if useLuLambdas == true { throw unsupported("use_lu_lambdas", true, scheduler, "false") }
        if let steps = numTrainTimesteps, steps < 2 {
            throw unsupported("num_train_timesteps", steps, scheduler, "2 or more")
        }
    }

    /// `final_sigmas_type`: true for "sigma_min", false for "zero" (the default).
    func resolvedFinalSigmaMin(_ scheduler: String) throws -> Bool {
        switch finalSigmasType ?? "zero" {
        case "zero": return false
        case "sigma_min": return true
        case let other: throw unsupported("final_sigmas_type", other, scheduler, "zero, sigma_min")
        }
    }
}
