import AnySizeKernels
import Foundation

/// The model part `Benchmark` times.
public enum BenchmarkComponent: String, CaseIterable, Sendable {
    /// One UNet call: latents [B, 4, h/8, w/8], timestep 500, a random text context [B, 77, cross_attention_dim].
    case unet
    /// `AutoencoderKL.decode` of random latents [B, 4, h/8, w/8].
    case vaeDecode = "vae-decode"
    /// The CLIP text encoder on B windows of 77 token ids.
    case textEncoder = "text-encoder"
    /// The UNet calls of one whole sampling run through the composition plan (`BenchmarkOptions.composition`):
    /// every pass at its canvas, its calls at the DPM++ 2M Karras schedule's timesteps of `steps` steps (an img2img
    /// pass: the last int(steps * strength)), each with its per-call composition; no guidance, text encoder,
    /// scheduler update or decode. With `none` it is the direct run the other methods are measured against.
    case sample
}

/// What `Benchmark.run` times.
public struct BenchmarkOptions: Sendable {
    public var component: BenchmarkComponent
    /// Canvas size in pixels (multiples of 8; the latents are a eighth of it). Ignored by the text encoder.
    public var width: Int, height: Int
    /// Batch size (UNet and VAE: images; text encoder: 77-token windows).
    public var batch: Int
    /// Timed runs (median and minimum are reported) and untimed runs before them.
    public var repeats: Int, warmup: Int
    /// Seed of the `TorchRandom` inputs (the same draws as `torch.manual_seed(seed)` + `torch.randn`).
    public var seed: UInt64
    /// Records seconds per op family over the timed runs.
    public var profile: Bool
    /// `sample`: the composition method and its settings, and the sampling steps of a direct run.
    public var composition = CompositionOptions()
    public var steps = 20
    /// `unet` and `sample`: the UNet's number format.
    public var precision: Precision = .fp32

    public init(component: BenchmarkComponent, width: Int = 512, height: Int = 512, batch: Int = 1,
                repeats: Int = 3, warmup: Int = 1, seed: UInt64 = 0, profile: Bool = false) {
        self.component = component
        self.width = width
        self.height = height
        self.batch = batch
        self.repeats = repeats
        self.warmup = warmup
        self.seed = seed
        self.profile = profile
    }

    /// Throws `invalidArgument` for sizes that are not positive multiples of 8 or counts out of range.
    public func validate() throws {
        guard width >= 8, height >= 8, width <= 4096, height <= 4096, width % 8 == 0, height % 8 == 0 else {
            throw AnySizeError(.invalidArgument, "bench: --width \(width) / --height \(height) must be multiples of 8 from 8 to 4096 (latents are 1/8 of the canvas)")
        }
        guard batch >= 1 else { throw AnySizeError(.invalidArgument, "bench: --batch-size \(batch) must be at least 1") }
        guard repeats >= 1 else { throw AnySizeError(.invalidArgument, "bench: --repeats \(repeats) must be at least 1") }
        guard warmup >= 0 else { throw AnySizeError(.invalidArgument, "bench: --warmup \(warmup) must be 0 or more") }
        guard steps >= 1, steps <= 1000 else { throw AnySizeError(.invalidArgument, "bench: --steps \(steps) must be from 1 to 1000") }
        try composition.validate()
    }
}

extension BenchmarkOptions {
    /// The estimated peak memory of the benchmark on `model`: the `MemoryEstimate` terms of the component it runs
    /// (one UNet call on the batch without guidance; one VAE decode of the whole batch; the text encoder), in
    /// arithmetic that saturates instead of overflowing.
    public func estimatedPeak(model: ModelFootprint, workers: Int = Parallel.threadCount) -> Int {
        var options = GenerationOptions(prompt: "", width: width, height: height, seed: seed)
        options.batchSize = batch
        options.cfgScale = 1
        options.vaeTiling = .off
        if component == .sample { options.composition = composition }
        let e = MemoryEstimate(model: model, options: options, img2img: false, workers: workers)
        let working: Int
        switch component {
        case .unet, .sample:
            working = Saturating.add(e.unetActivations, e.attentionScratch)
        case .vaeDecode:
            let f = 1 << max(0, model.vae.blockOutChannels.count - 1)
            let perImage = 4 * MemoryEstimate.decoderFloats(model.vae, height: height / f, width: width / f)
            working = Saturating.multiply(batch, perImage)
        case .textEncoder:
            // Per 77-token window: a generous 16 activations of up to 1024 floats per token.
            working = Saturating.multiply(batch, 77 * 1024 * 16 * 4)
        }
        return Saturating.add(Saturating.add(e.overhead, e.weights), working)
    }

    /// Refuses, before any weights load, a benchmark whose estimate exceeds `physicalMemory`.
    public func checkMemory(model: ModelFootprint, physicalMemory: UInt64 = ProcessInfo.processInfo.physicalMemory) throws {
        let peak = estimatedPeak(model: model), physical = Int(clamping: physicalMemory)
        guard peak <= physical else {
            throw AnySizeError(.outOfMemory,
                "bench: \(component.rawValue) at \(width)x\(height) with batch size \(batch) needs about "
                + "\(MemoryEstimate.gigabytes(peak)) but this machine has \(MemoryEstimate.gigabytes(physical)); "
                + "use a smaller --width/--height or --batch-size")
        }
    }
}

/// Timings of one benchmark.
public struct BenchmarkResult: Sendable {
    public var options: BenchmarkOptions
    /// Wall-clock seconds of each timed run, in run order.
    public var seconds: [Double]
    /// Analytic FLOPs of one run (`FLOPCount`).
    public var flops: Double
    /// Peak resident set size of the process so far, in bytes (0 where the system does not report it).
    public var peakResidentBytes: Int
    /// Seconds per run of each op family (totals over the timed runs / repeats), when profiling.
    public var profile: [OpFamilyTiming]?
    /// `sample`: the composition plan that ran.
    public var composition: CompositionPlan? = nil

    public var secondsMedian: Double {
        let s = seconds.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    public var secondsMin: Double { seconds.min() ?? 0 }

    /// Which kernels ran the component's products: "fp32", or the bfloat16 path (`BFloat16Path`) for `.bf16`.
    public var matmulPath: String { options.precision == .fp32 ? "fp32" : BFloat16.path.rawValue }

    /// Counted FLOPs / median seconds, in units of 10^9.
    public var gflops: Double { secondsMedian > 0 ? flops / secondsMedian / 1e9 : 0 }

    /// One JSON object on one line: component, width, height, batch, repeats, seconds_median, seconds_min,
    /// gflops, peak_rss_mb, and `profile` (seconds per run by op family) when profiled.
    public var jsonLine: String {
        func number(_ v: Double) -> String { String(format: "%.4f", v) }
        var fields = [
            "\"component\":\"\(options.component.rawValue)\"", "\"width\":\(options.width)",
            "\"height\":\(options.height)", "\"batch\":\(options.batch)", "\"repeats\":\(options.repeats)",
            "\"seconds_median\":\(number(secondsMedian))", "\"seconds_min\":\(number(secondsMin))",
            "\"gflops\":\(number(gflops))", "\"peak_rss_mb\":\(peakResidentBytes >> 20)",
            "\"precision\":\"\(options.precision.rawValue)\"", "\"matmul_path\":\"\(matmulPath)\"",
        ]
        if let plan = composition {
            fields.append("\"compose\":\"\(plan.metadataSummary)\"")
            fields.append("\"estimated_relative_cost\":\(number(plan.relativeCost))")
        }
        if let profile {
            let entries = profile.map { "\"\($0.family.rawValue)\":\(number($0.seconds))" }
            fields.append("\"profile\":{" + entries.joined(separator: ",") + "}")
        }
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// The profile as a table: family, seconds per run, share of the median, calls per run.
    public var profileTable: String {
        guard let profile else { return "" }
        let total = max(secondsMedian, 1e-12)
        var lines = ["op family        s/run   share  calls/run"]
        for entry in profile.sorted(by: { $0.seconds > $1.seconds }) {
            let name = entry.family.rawValue.padding(toLength: 14, withPad: " ", startingAt: 0)
            lines.append(name + String(format: " %7.3f  %5.1f%%  %9d", entry.seconds, 100 * entry.seconds / total, entry.calls))
        }
        let counted = profile.reduce(0) { $0 + $1.seconds }
        lines.append(String(format: "other (untimed) %7.3f  %5.1f%%", secondsMedian - counted, 100 * (secondsMedian - counted) / total))
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Times one model component on seeded random inputs (`anysize bench`).
public enum Benchmark {
    /// Builds only the component's model from `checkpoint`, runs `warmup` untimed and `repeats` timed calls.
    public static func run(checkpoint: StableDiffusionCheckpoint, options: BenchmarkOptions) throws -> BenchmarkResult {
        try options.validate()
        let random = TorchRandom(seed: options.seed)
        let latentHeight = options.height / 8, latentWidth = options.width / 8
        let call: () throws -> Void
        let flops: Double
        var plan: CompositionPlan?
        switch options.component {
        case .unet:
            let body = try singleCall(checkpoint: checkpoint, options: options, precision: options.precision)
            call = { _ = try body() }
            flops = FLOPCount.unet(checkpoint.unetConfig, latentHeight: latentHeight, latentWidth: latentWidth,
                                   batch: options.batch)
        case .sample:
            let unet = try UNet2DConditionModel(config: checkpoint.unetConfig, parameters: checkpoint.unet,
                                                  precision: options.precision)
            let config = checkpoint.unetConfig
            let context = random.randn([options.batch, 77, config.crossAttentionDim])                // [B, 77, Cc]
            let schedule = try SamplerKind.dpmpp2m.makeScheduler(
                config: SchedulerConfig.sd15Default.with(prediction: checkpoint.predictionType), steps: options.steps, karras: true)
            let trained = checkpoint.trainedSize
            let resolved = try CompositionPlan.resolve(CompositionRequest(
                width: options.width, height: options.height, trainedWidth: trained.width, trainedHeight: trained.height,
                steps: options.steps, options: options.composition, unet: config, timesteps: schedule.timesteps))
            let attention = AttentionContext(trainedLatentHeight: trained.height / 8, trainedLatentWidth: trained.width / 8)
            let passes = resolved.passes.map { pass in
                let first = pass.strength.map { schedule.img2imgStartIndex(strength: $0) } ?? 0
                return (sample: random.randn([options.batch, config.inChannels, pass.height / 8, pass.width / 8]),
                        timesteps: Array(schedule.timesteps[first...]), unetCall: pass.unetCall)
            }
            call = {
                for pass in passes {
                    for t in pass.timesteps {
                        _ = unet(pass.sample, timesteps: [Float](repeating: Float(t), count: options.batch), context: context,
                                 attention: attention, composition: pass.unetCall(t))
                    }
                }
            }
            flops = resolved.relativeCost * Double(options.steps)
                * FLOPCount.unet(config, latentHeight: latentHeight, latentWidth: latentWidth, batch: options.batch)
            plan = resolved
        case .vaeDecode:
            let body = try singleCall(checkpoint: checkpoint, options: options, precision: options.precision)
            call = { _ = try body() }
            flops = FLOPCount.vaeDecoder(checkpoint.vaeConfig, latentHeight: latentHeight, latentWidth: latentWidth,
                                         batch: options.batch)
        case .textEncoder:
            let body = try singleCall(checkpoint: checkpoint, options: options, precision: options.precision)
            call = { _ = try body() }
            flops = FLOPCount.textEncoder(checkpoint.textConfig, tokens: 77, batch: options.batch)
        }
        for _ in 0 ..< options.warmup { try call() }
        let wasProfiling = Profiler.isEnabled
        if options.profile {
            Profiler.reset()
            Profiler.setEnabled(true)
        }
        defer { Profiler.setEnabled(wasProfiling) }
        var seconds: [Double] = []
        for _ in 0 ..< options.repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            try call()
            seconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        }
        let profile = options.profile ? Profiler.totals().map {
            OpFamilyTiming(family: $0.family, seconds: $0.seconds / Double(options.repeats), calls: $0.calls / options.repeats)
        } : nil
        return BenchmarkResult(options: options, seconds: seconds, flops: flops,
                               peakResidentBytes: peakResidentBytes(), profile: profile, composition: plan)
    }

    /// `count` windows of 77 ids: BOS, 75 ids (7919 * (i + 1) + 104729 * (window + seed)) mod (vocabulary - 2), EOS,
    /// with BOS = vocabulary - 2 and EOS = vocabulary - 1 (the CLIP layout). tools/bench/diffusers_bench.py
    /// builds the same ids.
    public static func tokenWindows(count: Int, vocabulary: Int, seed: UInt64) -> [[Int]] {
        let body = max(vocabulary - 2, 1)
        return (0 ..< count).map { window in
            let offset = 104_729 * (window + Int(seed % 1_000_003))
            return [vocabulary - 2] + (0 ..< 75).map { (7919 * ($0 + 1) + offset) % body } + [vocabulary - 1]
        }
    }

    #if os(Linux)
    private static let RUSAGE_SELF_WHO = __rusage_who_t(RUSAGE_SELF.rawValue)
    #else
    private static let RUSAGE_SELF_WHO = RUSAGE_SELF
    #endif

    /// ru_maxrss (kilobytes on Linux) in bytes.
    static func peakResidentBytes() -> Int {
        var usage = rusage()
        guard getrusage(RUSAGE_SELF_WHO, &usage) == 0 else { return 0 }
        return Int(usage.ru_maxrss) * 1024
    }
}
