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
    /// prompt, `Negative prompt: ...`, then `Steps: .., Sampler: .., CFG scale: .., Seed: .., Size: WxH, Model: .., Attention: ..`,
    /// and with a `composition` plan `Compose: ..` and the method's own fields (A1111's `Hires upscale`,
    /// `Hires upscaler`, `Denoising strength` for `hires`). `modelHash` (A1111's first 10 hex digits of the file's
    /// SHA-256) adds `Model hash: ..` before `Model`, as A1111 writes it. A precision other than fp32 adds
    /// `Precision: bf16`.
    public static func parameters(options: GenerationOptions, modelName: String, attention: String,
                                  index: Int, decoder: String = "vae", composition: CompositionPlan? = nil,
                                  modelHash: String? = nil) -> String {
        var lines = [options.prompt]
        if !options.negativePrompt.isEmpty { lines.append("Negative prompt: " + options.negativePrompt) }
        var fields: [(String, String)] = [
            ("Steps", "\(options.steps)"),
            ("Sampler", samplerName(options.sampler, karras: options.karras)),
            ("CFG scale", formatNumber(options.cfgScale)),
            ("Seed", "\(options.seed(ofImage: index))"),
            ("Size", "\(options.width)x\(options.height)"),
        ]
        if let modelHash { fields.append(("Model hash", modelHash)) }
        fields += [("Model", modelName), ("Attention", attention)]
        if let plan = composition, plan.requested != .none || plan.method != .none {
            fields.append(("Compose", plan.metadataSummary))
            fields += plan.metadata.map { ($0.key, $0.value) }
        }
        if options.initImage != nil { fields.append(("Denoising strength", formatNumber(options.strength))) }
        if options.clipSkip > 1 { fields.append(("Clip skip", "\(options.clipSkip)")) }
        if options.attention == .local || attention.contains("local") { fields.append(("Local edge", "\(options.localEdge)")) }
        if let t = options.trainedSize { fields.append(("Trained size", "\(t.width)x\(t.height)")) }
        if decoder != "vae" { fields.append(("Decoder", decoder)) }
        // The same seed gives slightly different pixels in bf16: say so, so the image can be re-made.
        if options.precision != .fp32 { fields.append(("Precision", options.precision.rawValue)) }
        if options.batchSize > 1 {
            fields.append(("Batch size", "\(options.batchSize)"))
            fields.append(("Batch pos", "\(index)"))
        }
        lines.append(fields.map { "\($0.0): \(quoted($0.1))" }.joined(separator: ", "))
        return lines.joined(separator: "\n")
    }

    /// Refuses an output name that does not end in `.png` (any case): AnySize writes PNG only, and a
    /// `.jpg` name holding PNG bytes would mislead every program that trusts the extension.
    /// - Throws: `AnySizeError(.invalidArgument)` naming the path and the fix.
    public static func checkOutputName(_ path: String) throws {
        let name = split(path).name
        guard name.lowercased().hasSuffix(".png"), name.count > 4 else {
            throw AnySizeError(.invalidArgument,
                "--output \(path): AnySize writes PNG images only; use a name ending in .png (e.g. \(suggestedPNGName(path)))")
        }
    }

    /// `path` with its extension replaced by `.png` (or `.png` added), for error messages.
    static func suggestedPNGName(_ path: String) -> String {
        let (folder, name) = split(path)
        let stem = name.contains(".") && !name.hasPrefix(".") ? String(name[..<(name.lastIndex(of: ".") ?? name.endIndex)]) : name
        return folder + (stem.isEmpty ? "image" : stem) + ".png"
    }

    /// Output path of image `index` (0-based): `NAME.png` for one image, `NAME-1.png`, `NAME-2.png`, ... for a batch.
    /// Relative paths stay relative.
    public static func outputPath(_ base: String, index: Int, count: Int) -> String {
        guard count > 1 else { return base }
        let (stem, ext) = splitExtension(base)
        return "\(stem)-\(index + 1).\(ext.isEmpty ? "png" : ext)"
    }

    /// Preview path for sampler step `step`: `NAME.step-NN.png` (`NAME-i.step-NN.png` in a batch).
    public static func previewPath(_ base: String, index: Int, count: Int, step: Int) -> String {
        splitExtension(outputPath(base, index: index, count: count)).stem + String(format: ".step-%02d.png", step)
    }

    /// ("dir/", "name.ext") of a path, the folder part kept as written ("" for a bare name).
    private static func split(_ path: String) -> (folder: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return ("", path) }
        return (String(path[...slash]), String(path[path.index(after: slash)...]))
    }

    /// ("dir/name", "ext") of "dir/name.ext"; a leading dot of the name (".hidden") is not an extension.
    private static func splitExtension(_ path: String) -> (stem: String, ext: String) {
        let (folder, name) = split(path)
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return (path, "") }
        return (folder + name[..<dot], String(name[name.index(after: dot)...]))
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
