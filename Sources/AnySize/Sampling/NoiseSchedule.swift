import Foundation

/// The DDPM training noise schedule every scheduler starts from, computed with diffusers' float32
/// rounding: `betas` from `torch.linspace(..., dtype=float32)`, `alphas_cumprod = cumprod(1 - betas)`,
/// and the k-diffusion noise level sigma_t = sqrt((1 - abar_t) / abar_t) for t = 0 ..< T.
public struct NoiseSchedule: Sendable {
    /// abar_t, float32 as diffusers' `alphas_cumprod`.
    public let alphasCumprod: [Float]
    /// sigma_t for each training timestep, float32 as `((1 - alphas_cumprod) / alphas_cumprod) ** 0.5`.
    public let sigmas: [Float]
    /// ln sigma_t, float32 as `np.log(sigmas)`.
    let logSigmas: [Float]

    var trainSteps: Int { alphasCumprod.count }

    /// Builds the schedule from `num_train_timesteps`, `beta_start`, `beta_end` and `beta_schedule`.
    init(config: SchedulerConfig, defaults: SchedulerDefaults, scheduler: String) throws {
        try config.checkCommon(scheduler)
        let count = config.numTrainTimesteps ?? 1000
        let start = config.betaStart ?? defaults.betaStart
        let end = config.betaEnd ?? defaults.betaEnd
        let betas: [Float]
        switch config.betaSchedule ?? "linear" {
        case "linear":
            betas = ScheduleMath.torchLinspace(start, end, count)
        case "scaled_linear":
            betas = ScheduleMath.torchLinspace(start.squareRoot(), end.squareRoot(), count).map { $0 * $0 }
        case let other:
            throw config.unsupported("beta_schedule", other, scheduler, "linear, scaled_linear")
        }
        // torch.cumprod on float32 accumulates in double and rounds each output.
        var product = 1.0
        alphasCumprod = betas.map { beta in
            product *= Double(1 - beta)
            return Float(product)
        }
        sigmas = alphasCumprod.map { ((1 - $0) / $0).squareRoot() }
        logSigmas = sigmas.map { Float(Foundation.log(Double($0))) }
    }

    /// sigma_t interpolated linearly at a fractional timestep (`np.interp(t, arange(T), sigmas)`).
    func interpolatedSigma(at t: Double) -> Double {
        let last = sigmas.count - 1
        if t >= Double(last) { return Double(sigmas[last]) }
        if t <= 0 { return Double(sigmas[0]) }
        let j = Int(t.rounded(.down))
        let slope = Double(sigmas[j + 1]) - Double(sigmas[j])
        return slope * (t - Double(j)) + Double(sigmas[j])
    }

    /// The fractional timestep of a sigma by linear interpolation in log-sigma (diffusers `_sigma_to_t`).
    func timestep(forSigma sigma: Double) -> Double {
        let logSigma = Foundation.log(max(sigma, 1e-10))
        // Last index whose log-sigma is <= log(sigma) (0 if none), kept below the last index.
        var low = 0
        for (i, value) in logSigmas.enumerated() where logSigma - Double(value) >= 0 { low = i }
        low = min(low, logSigmas.count - 2)
        let lowValue = logSigmas[low]
        let highValue = logSigmas[low + 1]
        var w = (Double(lowValue) - logSigma) / Double(lowValue - highValue)
        w = min(max(w, 0), 1)
        return (1 - w) * Double(low) + w * Double(low + 1)
    }

    /// The Karras et al. (2022) schedule from sigmaMax down to sigmaMin, rho = 7:
    /// sigma_i = (max^(1/rho) + i/(n-1) * (min^(1/rho) - max^(1/rho)))^rho.
    static func karrasSigmas(sigmaMin: Double, sigmaMax: Double, steps: Int) -> [Double] {
        let rho = 7.0
        let minInvRho = pow(sigmaMin, 1 / rho)
        let maxInvRho = pow(sigmaMax, 1 / rho)
        return ScheduleMath.numpyLinspace(0, 1, steps).map { pow(maxInvRho + $0 * (minInvRho - maxInvRho), rho) }
    }
}

/// numpy / torch range helpers reproduced with their exact rounding.
enum ScheduleMath {
    /// `torch.linspace(start, end, count, dtype=float32)` on the CPU: a float32 step, values from the
    /// start for the first half and from the end for the second half (fused multiply-add as built).
    static func torchLinspace(_ start: Double, _ end: Double, _ count: Int) -> [Float] {
        let first = Float(start)
        let last = Float(end)
        guard count > 1 else { return count == 1 ? [first] : [] }
        let step = (last - first) / Float(count - 1)
        let halfway = count / 2
        return (0 ..< count).map { i in
            i < halfway ? first.addingProduct(step, Float(i)) : last.addingProduct(-step, Float(count - 1 - i))
        }
    }

    /// `np.linspace(start, stop, count)` in float64: i * step + start, the last value exactly `stop`.
    static func numpyLinspace(_ start: Double, _ stop: Double, _ count: Int) -> [Double] {
        guard count > 1 else { return count == 1 ? [start] : [] }
        let step = (stop - start) / Double(count - 1)
        var values = (0 ..< count).map { Double($0) * step + start }
        values[count - 1] = stop
        return values
    }

    /// `np.arange(start, stop, step)` for a float step: ceil((stop - start) / step) values
    /// start, start + step, then start + i * delta with delta = (start + step) - start.
    static func numpyArange(_ start: Double, _ stop: Double, _ step: Double) -> [Double] {
        let count = max(Int(((stop - start) / step).rounded(.up)), 0)
        guard count > 0 else { return [] }
        let delta = (start + step) - start
        return (0 ..< count).map { i in
            switch i {
            case 0: return start
            case 1: return start + step
            default: return start + Double(i) * delta
            }
        }
    }

    /// `np.round` (half to even).
    static func roundHalfEven(_ x: Double) -> Double { x.rounded(.toNearestOrEven) }
}

/// Timestep lists shared by the schedulers (the `set_timesteps` branches of diffusers).
extension TimestepSpacing {
    /// Euler / Euler ancestral / Heun timesteps (float32 values).
    func discreteTimesteps(steps: Int, trainSteps: Int, offset: Int) -> [Double] {
        let values: [Double]
        switch self {
        case .linspace:
            values = ScheduleMath.numpyLinspace(0, Double(trainSteps - 1), steps).reversed()
        case .leading:
            let ratio = trainSteps / steps
            values = (0 ..< steps).reversed().map { Double($0 * ratio + offset) }
        case .trailing:
            let ratio = Double(trainSteps) / Double(steps)
            values = ScheduleMath.numpyArange(Double(trainSteps), 0, -ratio).map { ScheduleMath.roundHalfEven($0) - 1 }
        }
        return values.map { Double(Float($0)) }
    }
}

/// Elementwise helpers for the scheduler updates: each closure spells out the float32 operations of
/// the matching diffusers expression, in its order, so rounding matches torch's eager evaluation.
func mapElements(_ a: Tensor, _ body: (Float) -> Float) -> Tensor {
    let out = Tensor(zeros: a.shape)
    for i in 0 ..< a.count { out.pointer[i] = body(a.pointer[i]) }
    return out
}

func zipElements(_ a: Tensor, _ b: Tensor, _ body: (Float, Float) -> Float) -> Tensor {
    precondition(a.shape == b.shape, "shape mismatch \(a.shape) vs \(b.shape)")
    let out = Tensor(zeros: a.shape)
    for i in 0 ..< a.count { out.pointer[i] = body(a.pointer[i], b.pointer[i]) }
    return out
}

func zipElements(_ a: Tensor, _ b: Tensor, _ c: Tensor, _ body: (Float, Float, Float) -> Float) -> Tensor {
    precondition(a.shape == b.shape && a.shape == c.shape, "shape mismatch \(a.shape), \(b.shape), \(c.shape)")
    let out = Tensor(zeros: a.shape)
    for i in 0 ..< a.count { out.pointer[i] = body(a.pointer[i], b.pointer[i], c.pointer[i]) }
    return out
}
