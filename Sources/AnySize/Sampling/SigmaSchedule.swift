/// The sigma schedule of the k-diffusion style schedulers (Euler, Euler ancestral, Heun), as their
/// diffusers `set_timesteps`: timesteps by `timestep_spacing`, sigmas interpolated at them, optionally
/// replaced by a Karras schedule whose timesteps come from `_sigma_to_t`, then a final sigma.
struct SigmaSchedule {
    /// One timestep per inference step (float32 values).
    var timesteps: [Double]
    /// One sigma per inference step plus the final sigma, rounded to float32.
    var sigmas: [Float]
    var spacing: TimestepSpacing

    /// - Parameters:
    ///   - karrasBounds: the config's `sigma_min` / `sigma_max`, for classes whose config has them.
    ///   - finalSigmaMin: end at sigma_0 of training instead of 0 (`final_sigmas_type` "sigma_min").
    init(config: SchedulerConfig, schedule: NoiseSchedule, steps: Int, defaults: SchedulerDefaults,
         scheduler: String, karras: Bool, karrasBounds: (min: Double?, max: Double?), finalSigmaMin: Bool) throws {
        precondition(steps >= 1, "at least one inference step")
        spacing = try config.resolvedSpacing(scheduler, defaults: defaults)
        timesteps = spacing.discreteTimesteps(steps: steps, trainSteps: schedule.trainSteps,
                                              offset: config.stepsOffset ?? 0)
        var values = timesteps.map { schedule.interpolatedSigma(at: $0) }
        if karras {
            values = NoiseSchedule.karrasSigmas(sigmaMin: karrasBounds.min ?? values[values.count - 1],
                                                sigmaMax: karrasBounds.max ?? values[0], steps: steps)
            timesteps = values.map { Double(Float(schedule.timestep(forSigma: $0))) }
        }
        sigmas = values.map { Float($0) } + [finalSigmaMin ? schedule.sigmas[0] : 0]
    }

    /// `init_noise_sigma`: the largest sigma, or sqrt(max^2 + 1) for "leading" spacing.
    var initNoiseSigma: Float {
        let largest = sigmas.max() ?? 0
        return spacing == .leading ? (largest * largest + 1).squareRoot() : largest
    }
}
