import AnySize
import ArgumentParser

/// The sampling and attention options `generate` and `attention-report` share, with their checks (all made
/// before any model loads).
struct SamplingArguments: ParsableArguments {
    @Option(name: .customLong("negative-prompt"), help: "What to avoid (default: empty).") var negativePrompt: String = ""
    @Option(help: "Sampling steps.") var steps: Int = 20
    @Option(name: .customLong("cfg-scale"), help: "Classifier-free guidance scale (1 = no unconditional pass).") var cfgScale: Double = 7.5
    @Option(help: "euler, euler_a, heun, dpmpp_2m or ddim.") var sampler: String = "dpmpp_2m"
    @Flag(inversion: .prefixedNo, help: "Karras sigmas (euler, heun, dpmpp_2m; default on for dpmpp_2m).") var karras: Bool?
    @Option(help: "Override the prediction type: epsilon or v.") var prediction: String?
    @Option(name: .customLong("local-edge"), help: "Canvas-edge sink tokens for local attention.") var localEdge: Int = 0
    @Option(name: .customLong("trained-size"), help: "The model's trained size WxH (default: from the model).") var trainedSize: String?
    @Option(name: .customLong("attention-memory"), help: "Attention scratch memory in MB (default: from physical RAM).") var attentionMemory: Int?
    @Option(name: .customLong("prompt-syntax"), help: "a1111 (emphasis (word:1.3), [word], BREAK) or plain.") var promptSyntax: String = "a1111"

    /// The checked values.
    struct Resolved {
        var sampler: SamplerKind
        var karras: Bool
        var prediction: PredictionType?
        var trainedSize: (width: Int, height: Int)?
        var attentionMemoryBytes: Int
        var promptSyntax: PromptSyntax
    }

    func resolved() throws -> Resolved {
        guard let kind = SamplerKind(rawValue: sampler) else {
            throw AnySizeError(.invalidArgument, "--sampler '\(sampler)' is unknown; use one of \(SamplerKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var override: PredictionType?
        if let p = prediction {
            guard let parsed = PredictionType(name: p) else {
                throw AnySizeError(.invalidArgument, "--prediction '\(p)' is unknown; use epsilon or v")
            }
            override = parsed
        }
        guard let syntax = PromptSyntax(rawValue: promptSyntax) else {
            throw AnySizeError(.invalidArgument, "--prompt-syntax '\(promptSyntax)' is unknown; use a1111 or plain")
        }
        if let m = attentionMemory, m < 1 {
            throw AnySizeError(.invalidArgument, "--attention-memory \(m): use at least 1 MB")
        }
        return Resolved(sampler: kind, karras: karras ?? (kind == .dpmpp2m), prediction: override,
                        trainedSize: try trainedSize.map { try Self.parseSize($0, flag: "--trained-size") },
                        attentionMemoryBytes: (attentionMemory.map { $0 << 20 }) ?? AttentionMemory.defaultBudget(),
                        promptSyntax: syntax)
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
