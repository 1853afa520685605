import AnySize
import Foundation
import XCTest

final class SchedulerTests: XCTestCase {
    struct Schedule: Decodable {
        let sampler: String
        let karras: Bool
        let timestep_spacing: String?
        let steps: Int
        let timesteps: String
        let call_sigmas: String
        let init_noise_sigma: Double
        let sigmas: String?
    }
    struct ScheduleFile: Decodable { let alphas_cumprod_sd1: String; let schedules: [Schedule] }
    struct Run: Decodable {
        let sampler: String
        let karras: Bool
        let config: String
        let prediction: String
        let mode: String
        let steps: Int
        let seed: UInt64
        let strength: Double?
        let timesteps: String
        let call_sigmas: String
        let start: String
        let outputs_channel0: [String]
        let final: String
    }
    struct LoopFile: Decodable {
        let configs: [String: SchedulerConfig]
        let shape: [Int]
        let original: String
        let runs: [Run]
    }

    private func kind(_ name: String) throws -> SamplerKind {
        try XCTUnwrap(SamplerKind(rawValue: name), "unknown sampler \(name)")
    }

    /// Timesteps must agree exactly, except the fractional ones of Euler / Heun with Karras sigmas:
    /// diffusers interpolates them in float32 log-sigma computed by numpy's vectorised log, which is
    /// one ulp off the correctly rounded log for about a fifth of the values (and varies with the CPU);
    /// the timesteps then differ by up to about 1e-4.
    private func assertTimesteps(_ actual: [Double], _ expected: [Double], fractionalKarras: Bool, _ label: String) {
        XCTAssertEqual(actual.count, expected.count, label)
        if fractionalKarras {
            for (a, b) in zip(actual, expected) { XCTAssertEqual(a, b, accuracy: 1e-3, label) }
        } else {
            XCTAssertEqual(actual, expected, label)
        }
    }

    func testAlphasCumprodMatchesDiffusers() throws {
        let file = try SamplingFixtures.load("schedules", as: ScheduleFile.self)
        let scheduler = try EulerDiscreteScheduler(config: .sd15Default, steps: 10)
        let expected = try SamplingFixtures.floats(file.alphas_cumprod_sd1)
        let error = SamplingFixtures.normalizedError(scheduler.noiseSchedule.alphasCumprod, expected)
        print("alphas_cumprod (SD1 scaled_linear): max error \(error)")
        XCTAssertEqual(scheduler.noiseSchedule.alphasCumprod, expected)
    }

    func testSchedulesMatchDiffusers() throws {
        let file = try SamplingFixtures.load("schedules", as: ScheduleFile.self)
        var worstTimestep = 0.0
        var worstSigma: Float = 0
        for entry in file.schedules {
            var config = SchedulerConfig.sd15Default
            config.timestepSpacing = entry.timestep_spacing
            let label = "\(entry.sampler) karras \(entry.karras) spacing \(entry.timestep_spacing ?? "default") steps \(entry.steps)"
            let scheduler = try kind(entry.sampler).makeScheduler(config: config, steps: entry.steps, karras: entry.karras)
            let timesteps = try SamplingFixtures.doubles(entry.timesteps)
            XCTAssertEqual(scheduler.timesteps.count, timesteps.count, label)
            XCTAssertEqual(scheduler.modelCalls, timesteps.count, label)
            for (a, b) in zip(scheduler.timesteps, timesteps) { worstTimestep = max(worstTimestep, abs(a - b)) }
            assertTimesteps(scheduler.timesteps, timesteps, fractionalKarras: entry.karras && entry.sampler != "dpmpp_2m", label)
            let callSigmas = (0 ..< scheduler.modelCalls).map { scheduler.sigma(atStep: $0) }
            let sigmaError = SamplingFixtures.normalizedError(callSigmas, try SamplingFixtures.floats(entry.call_sigmas))
            XCTAssertLessThanOrEqual(sigmaError, 1e-6, label)
            worstSigma = max(worstSigma, sigmaError)
            if let sigmas = entry.sigmas {
                let all: [Float]
                switch scheduler {
                case let s as EulerDiscreteScheduler: all = s.sigmas
                case let s as EulerAncestralDiscreteScheduler: all = s.sigmas
                case let s as HeunDiscreteScheduler: all = s.sigmas
                case let s as DPMSolverMultistepScheduler: all = s.sigmas
                default: all = []
                }
                let error = SamplingFixtures.normalizedError(all, try SamplingFixtures.floats(sigmas))
                XCTAssertLessThanOrEqual(error, 1e-6, label)
                worstSigma = max(worstSigma, error)
            }
            XCTAssertEqual(Double(scheduler.initNoiseSigma), entry.init_noise_sigma,
                           accuracy: 1e-6 * max(1, entry.init_noise_sigma), label)
        }
        print("schedules: \(file.schedules.count) compared; max timestep error \(worstTimestep), "
            + "max normalised sigma error \(worstSigma)")
    }

    func testSamplingLoopsMatchDiffusers() throws {
        let file = try SamplingFixtures.load("loops", as: LoopFile.self)
        let original = Tensor(shape: file.shape, values: try SamplingFixtures.floats(file.original))
        var worstOverall: Float = 0
        for run in file.runs {
            let label = "\(run.sampler)\(run.karras ? "+karras" : "") \(run.config) \(run.prediction) \(run.mode)"
            let base = try XCTUnwrap(file.configs[run.config])
            let prediction = try XCTUnwrap(PredictionType(rawValue: run.prediction))
            let scheduler = try kind(run.sampler).makeScheduler(config: base.with(prediction: prediction),
                                                                 steps: run.steps, karras: run.karras)
            let random = TorchRandom(seed: run.seed)
            var first = 0
            var latents: Tensor
            if let strength = run.strength {
                first = scheduler.img2imgStartIndex(strength: strength)
                let noise = random.randn(file.shape)
                latents = scheduler.addNoise(original: original, noise: noise, stepIndex: first)
            } else {
                let sigma = scheduler.initNoiseSigma
                latents = Tensor(shape: file.shape, values: random.randn(file.shape).scalars.map { $0 * sigma })
            }
            let timesteps = try SamplingFixtures.doubles(run.timesteps)
            assertTimesteps(Array(scheduler.timesteps[first...]), timesteps,
                            fractionalKarras: run.karras && run.sampler != "dpmpp_2m", label)
            let callSigmas = (first ..< scheduler.modelCalls).map { scheduler.sigma(atStep: $0) }
            XCTAssertLessThanOrEqual(
                SamplingFixtures.normalizedError(callSigmas, try SamplingFixtures.floats(run.call_sigmas)), 1e-6, label)
            var worst = SamplingFixtures.normalizedError(latents.scalars, try SamplingFixtures.floats(run.start))
            XCTAssertLessThanOrEqual(worst, 1e-5, "\(label) start")
            XCTAssertEqual(run.outputs_channel0.count, scheduler.modelCalls - first, label)
            let plane = file.shape[2] * file.shape[3]
            for (call, expected) in zip(first ..< scheduler.modelCalls, run.outputs_channel0) {
                let input = scheduler.scaleModelInput(latents, stepIndex: call)
                let timestep = scheduler.timesteps[call]
                // The fixture's stand-in for the UNet: 0.3 tanh(x) + 0.01 t / 1000.
                let shift = Float(0.01 * timestep / 1000.0)
                let output = Tensor(shape: input.shape, values: input.scalars.map { 0.3 * tanh($0) + shift })
                latents = scheduler.step(output: output, stepIndex: call, sample: latents, random: random)
                let error = SamplingFixtures.normalizedError(Array(latents.scalars[0 ..< plane]),
                                                             try SamplingFixtures.floats(expected))
                XCTAssertLessThanOrEqual(error, 1e-5, "\(label) call \(call)")
                worst = max(worst, error)
            }
            let finalError = SamplingFixtures.normalizedError(latents.scalars, try SamplingFixtures.floats(run.final))
            XCTAssertLessThanOrEqual(finalError, 1e-5, "\(label) final")
            worst = max(worst, finalError)
            print(String(format: "%@: max normalised error %.3g over %d calls", label, Double(worst), scheduler.modelCalls - first))
            worstOverall = max(worstOverall, worst)
        }
        print("sampling loops: \(file.runs.count) runs, max normalised error \(worstOverall)")
        XCTAssertEqual(file.runs.count, 64)
    }

    func testSD15DefaultEqualsTheCheckpointConfig() throws {
        let file = try SamplingFixtures.load("loops", as: LoopFile.self)
        XCTAssertEqual(file.configs["sd1"], SchedulerConfig.sd15Default)
        XCTAssertEqual(file.configs["sd2v"]?.predictionType, PredictionType.vPrediction.rawValue)
    }

    /// Progress counts sampler steps: Heun's 2N - 1 model calls finish a step at every second call and the
    /// last step with its single call; first-order samplers finish one step per call.
    func testStepsCompletedCountsSamplerStepsNotModelCalls() throws {
        let heun = try SamplerKind.heun.makeScheduler(config: .sd15Default, steps: 20)
        XCTAssertEqual(heun.modelCalls, 39)
        let counts = (0 ..< heun.modelCalls).map { heun.stepsCompleted(afterCall: $0) }
        XCTAssertEqual(Array(counts.prefix(5)), [0, 1, 1, 2, 2])
        XCTAssertEqual(counts.last, 20)
        XCTAssertEqual(Set(counts), Set(0 ... 20))
        XCTAssertEqual(zip(counts, counts.dropFirst()).filter { $0.0 > $0.1 }.count, 0, "not monotonic: \(counts)")
        for kind in [SamplerKind.euler, .eulerAncestral, .dpmpp2m, .ddim] {
            let scheduler = try kind.makeScheduler(config: .sd15Default, steps: 7)
            XCTAssertEqual((0 ..< scheduler.modelCalls).map { scheduler.stepsCompleted(afterCall: $0) }, Array(1 ... 7), "\(kind)")
        }
    }

    func testKarrasIsRejectedWhereDiffusersHasNone() {
        for kind in [SamplerKind.ddim, .eulerAncestral] {
            XCTAssertThrowsError(try kind.makeScheduler(config: .sd15Default, steps: 10, karras: true)) { error in
                XCTAssertEqual((error as? AnySizeError)?.kind, .invalidArgument, "\(kind)")
            }
        }
        for kind in [SamplerKind.euler, .heun, .dpmpp2m] {
            XCTAssertNoThrow(try kind.makeScheduler(config: .sd15Default, steps: 10, karras: true))
        }
        XCTAssertThrowsError(try SamplerKind.euler.makeScheduler(config: .sd15Default, steps: 0))
    }

    func testConfigDecodingAndValidation() throws {
        let json = """
        {"_class_name": "DPMSolverMultistepScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
         "beta_end": 0.012, "lambda_min_clipped": -Infinity, "algorithm_type": "dpmsolver++", "solver_order": 2,
         "timestep_spacing": "trailing", "steps_offset": 1, "trained_betas": null, "variance_type": null}
        """
        let config = try SchedulerConfig.decode(json: Data(json.utf8))
        XCTAssertEqual(config.lambdaMinClipped, -.infinity)
        XCTAssertEqual(config.timestepSpacing, "trailing")
        XCTAssertNil(config.trainedBetas)
        let scheduler = try SamplerKind.dpmpp2m.makeScheduler(config: config, steps: 4)
        // np.arange(1000, 0, -250).round() - 1
        XCTAssertEqual(scheduler.timesteps, [999, 749, 499, 249])

        var sde = config
        sde.algorithmType = "sde-dpmsolver++"
        XCTAssertThrowsError(try SamplerKind.dpmpp2m.makeScheduler(config: sde, steps: 4)) { error in
            XCTAssertEqual((error as? AnySizeError)?.kind, .unsupportedConfig)
        }
        var cosine = SchedulerConfig.sd15Default
        cosine.betaSchedule = "squaredcos_cap_v2"
        XCTAssertThrowsError(try SamplerKind.euler.makeScheduler(config: cosine, steps: 4)) { error in
            XCTAssertEqual((error as? AnySizeError)?.kind, .unsupportedConfig)
        }
        XCTAssertThrowsError(try SchedulerConfig.decode(json: Data("[1, 2]".utf8))) { error in
            XCTAssertEqual((error as? AnySizeError)?.kind, .corruptFile)
        }
    }

    /// Counts draws; returns zeros.
    final class RecordingSource: RandomSource {
        var shapes: [[Int]] = []
        func randn(_ shape: [Int]) -> Tensor {
            shapes.append(shape)
            return Tensor(zeros: shape)
        }
    }

    func testOnlyTheAncestralSamplerDrawsNoise() throws {
        let shape = [2, 4, 3, 5]
        for kind in SamplerKind.allCases {
            let scheduler = try kind.makeScheduler(config: .sd15Default, steps: 5)
            let source = RecordingSource()
            var latents = Tensor(shape: shape, repeating: 0.5)
            for call in 0 ..< scheduler.modelCalls {
                let output = Tensor(shape: shape, values: scheduler.scaleModelInput(latents, stepIndex: call).scalars.map { 0.1 * $0 })
                latents = scheduler.step(output: output, stepIndex: call, sample: latents, random: source)
                XCTAssertEqual(latents.shape, shape)
            }
            XCTAssertEqual(source.shapes, kind == .eulerAncestral ? Array(repeating: shape, count: 5) : [], "\(kind)")
            XCTAssertTrue(latents.scalars.allSatisfy { $0.isFinite }, "\(kind)")
        }
    }

    func testImg2ImgTruncation() throws {
        let heun = try SamplerKind.heun.makeScheduler(config: .sd15Default, steps: 10)
        XCTAssertEqual(heun.order, 2)
        XCTAssertEqual(heun.modelCalls, 19)
        XCTAssertEqual(heun.img2imgStartIndex(strength: 1), 0)
        XCTAssertEqual(heun.img2imgStartIndex(strength: 0.75), 6)   // int(7.5) = 7 steps kept, t_start 3
        XCTAssertEqual(heun.img2imgStartIndex(strength: 0), 19)
        let euler = try SamplerKind.euler.makeScheduler(config: .sd15Default, steps: 10)
        XCTAssertEqual(euler.img2imgStartIndex(strength: 0.75), 3)
    }
}
