import AnySize
import ArgumentParser

/// The sampling and attention options `generate` and `attention-report` share; `request` turns them into the
/// library's `GenerationRequest`, which makes every check before any model loads.
struct SamplingArguments: ParsableArguments {
    @Option(name: .customLong("negative-prompt"), help: "What to avoid (default: empty).") var negativePrompt: String = ""
    @Option(parsing: .unconditional, help: "Sampling steps.") var steps: Int = 20
    @Option(name: .customLong("cfg-scale"), parsing: .unconditional, help: "Classifier-free guidance scale (1 = no unconditional pass).") var cfgScale: Double = 7.5
    @Option(help: "euler, euler_a, heun, dpmpp_2m or ddim.") var sampler: String = "dpmpp_2m"
    @Flag(inversion: .prefixedNo, help: "Karras sigmas (euler, heun, dpmpp_2m; default on for dpmpp_2m).") var karras: Bool?
    @Option(help: "Override the prediction type: epsilon or v.") var prediction: String?
    @Option(name: .customLong("local-edge"), parsing: .unconditional, help: "Canvas-edge sink tokens for local attention.") var localEdge: Int = 0
    @Option(name: .customLong("trained-size"), help: "The model's trained size WxH (default: from the model).") var trainedSize: String?
    @Option(name: .customLong("attention-memory"), parsing: .unconditional, help: "Attention scratch memory in MB (default: from physical RAM).") var attentionMemory: Int?
    @Option(help: "How a canvas other than the trained one is composed: none, redilate, hires, cascade (hires through passes that double the side), deep-shrink, resize or auto (trained size: none; no side larger than trained: resize; a side larger: hires, or cascade above 2x the trained side). Default: auto for generate, none for attention-report (it measures attention on the canvas itself).") var compose: String?
    @Option(name: .customLong("hires-strength"), parsing: .unconditional, help: "hires, cascade: img2img strength of each pass after the first, in (0, 1].") var hiresStrength: Double = 0.7
    @Option(name: .customLong("redilate-until"), parsing: .unconditional, help: "redilate: re-dilate the convolutions while the timestep is at least T (0 to 1000).") var redilateUntil: Double = 400
    @Option(help: "fp32 (default, equal to diffusers) or bf16: the UNet with bfloat16 weights and products (float32 accumulation; about half the weight memory; text encoder and VAE stay fp32).") var precision: String = "fp32"
    @Option(name: .customLong("prompt-syntax"), help: "a1111 (emphasis (word:1.3), [word], BREAK) or plain.") var promptSyntax: String = "a1111"
    @Option(name: .customLong("deep-shrink-end"), parsing: .unconditional, help: "deep-shrink: shrink the inner levels while the timestep is at least (1 - E) * 1000, E in [0, 1].") var deepShrinkEnd: Double = 0.35

    /// The request for `model` and `prompt` with these settings (canvas left to the model).
    /// `defaultCompose` applies when `--compose` is not given.
    func request(model: String, prompt: String, seed: UInt64, defaultCompose: CompositionMode = .auto) throws -> GenerationRequest {
        guard let kind = SamplerKind(rawValue: sampler) else {
            throw AnySizeError(.invalidArgument, "--sampler '\(sampler)' is unknown; use one of \(SamplerKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let mode = compose.map({ CompositionMode(rawValue: $0) }) ?? defaultCompose else {
            throw AnySizeError(.invalidArgument, "--compose '\(compose ?? "")' is unknown; use one of \(CompositionMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let syntax = PromptSyntax(rawValue: promptSyntax) else {
            throw AnySizeError(.invalidArgument, "--prompt-syntax '\(promptSyntax)' is unknown; use a1111 or plain")
        }
        var options = GenerationOptions(prompt: prompt, width: 512, height: 512, seed: seed)
        options.promptSyntax = syntax
        options.composition = CompositionOptions(mode: mode, hiresStrength: hiresStrength, redilateUntil: redilateUntil,
                                                 deepShrinkEnd: deepShrinkEnd)
        try options.composition.validate()
        options.negativePrompt = negativePrompt
        options.steps = steps
        options.cfgScale = cfgScale
        options.sampler = kind
        options.karras = karras ?? (kind == .dpmpp2m)
        options.localEdge = localEdge
        options.trainedSize = try trainedSize.map { try Self.parseSize($0, flag: "--trained-size") }
        options.precision = try Precision.parse(precision)
        options.attentionMemory = try attentionMemory.map { try AttentionMemory.budget(megabytes: $0) } ?? AttentionMemory.defaultBudget()
        var request = GenerationRequest(model: model, options: options)
        if let p = prediction {
            guard let parsed = PredictionType(name: p) else {
                throw AnySizeError(.invalidArgument, "--prediction '\(p)' is unknown; use epsilon or v")
            }
            request.prediction = parsed
        }
        return request
    }

    /// Parses "WxH".
    static func parseSize(_ text: String, flag: String) throws -> (width: Int, height: Int) {
        let parts = text.lowercased().split(separator: "x")
        guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]) else {
            throw AnySizeError(.invalidArgument, "\(flag) '\(text)' is not WIDTHxHEIGHT, e.g. 512x512")
        }
        return (w, h)
    }
}
