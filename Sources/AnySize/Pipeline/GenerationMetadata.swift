import Foundation

/// The A1111-style `parameters` text stored in generated PNGs, and output file naming.
public enum GenerationMetadata {
    /// A1111's sampler display name ("DPM++ 2M Karras", "Euler a", ...).
    public static func samplerName(_ kind: SamplerKind, karras: Bool) -> String {
        let base: String
        switch kind {
        case .euler: base = "Euler"
        case .eulerAncestral: base = "Euler a"
        case .heun: base = "Heun"
        case .dpmpp2m: base = "DPM++ 2M"
        case .ddim: base = "DDIM"
        }
        return karras ? base + " Karras" : base
    }

    /// The attention a run reports in its metadata: the formulation that ran, prefixed with "auto -> " when
    /// `auto` chose it.
    public static func attentionLabel(_ mode: AttentionMode, result: GenerationResult) -> String {
        mode == .auto ? "auto -> \(result.attentionName)" : result.attentionName
    }

    /// The `parameters` text of image `index` (0-based) of a batch:
    /// prompt, `Negative prompt: ...`, then `Steps: .., Sampler: .., CFG scale: .., Seed: .., Size: WxH, Model: .., Attention: ..`.
    public static func parameters(options: GenerationOptions, modelName: String, attention: String,
                                  index: Int, decoder: String = "vae") -> String {
        var lines = [options.prompt]
        if !options.negativePrompt.isEmpty { lines.append("Negative prompt: " + options.negativePrompt) }
        var fields: [(String, String)] = [
            ("Steps", "\(options.steps)"),
            ("Sampler", samplerName(options.sampler, karras: options.karras)),
            ("CFG scale", formatNumber(options.cfgScale)),
            ("Seed", "\(options.seed)"),
            ("Size", "\(options.width)x\(options.height)"),
            ("Model", modelName),
            ("Attention", attention),
        ]
        if options.initImage != nil { fields.append(("Denoising strength", formatNumber(options.strength))) }
        if options.clipSkip > 1 { fields.append(("Clip skip", "\(options.clipSkip)")) }
        if options.attention == .local || attention.contains("local") { fields.append(("Local edge", "\(options.localEdge)")) }
        if let t = options.trainedSize { fields.append(("Trained size", "\(t.width)x\(t.height)")) }
        if decoder != "vae" { fields.append(("Decoder", decoder)) }
        if options.batchSize > 1 {
            fields.append(("Batch size", "\(options.batchSize)"))
            fields.append(("Batch pos", "\(index)"))
        }
        lines.append(fields.map { "\($0.0): \(quoted($0.1))" }.joined(separator: ", "))
        return lines.joined(separator: "\n")
    }

    /// Output path of image `index` (0-based): `NAME.png` for one image, `NAME-1.png`, `NAME-2.png`, ... for a batch.
    public static func outputPath(_ base: String, index: Int, count: Int) -> String {
        guard count > 1 else { return base }
        let url = URL(fileURLWithPath: base)
        let ext = url.pathExtension.isEmpty ? "png" : url.pathExtension
        let stem = url.deletingPathExtension().path
        return "\(stem)-\(index + 1).\(ext)"
    }

    /// Preview path for model call `step`: `NAME.step-NN.png` (`NAME-i.step-NN.png` in a batch).
    public static func previewPath(_ base: String, index: Int, count: Int, step: Int) -> String {
        let url = URL(fileURLWithPath: outputPath(base, index: index, count: count))
        return url.deletingPathExtension().path + String(format: ".step-%02d.png", step)
    }

    /// 7.5 -> "7.5", 7.0 -> "7".
    static func formatNumber(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v)
    }

    /// A1111 quotes values containing separators.
    static func quoted(_ v: String) -> String {
        v.contains(",") || v.contains(":") || v.contains("\n") ? "\"" + v.replacingOccurrences(of: "\"", with: "\\\"") + "\"" : v
    }
}
