import AnySize
import Foundation

/// `anysize generate` as steps: the command's values become a `GenerationRequest`, resolved (every check made,
/// before any weights load) by the library; then load, sample, decode and write.
struct GenerationPlan {
    let resolved: ResolvedGeneration
    let decoder: LatentDecoderKind
    let previewKind: LatentDecoderKind
    let approxDecoder: String?
    let skipDecode: Bool
    let verbose: Bool
    let progress: ProgressReporter

    init(_ c: GenerateCommand) throws {
        guard let attention = AttentionMode(rawValue: c.attention) else {
            throw AnySizeError(.invalidArgument, "--attention '\(c.attention)' is unknown; use one of \(AttentionMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let d = LatentDecoderKind(rawValue: c.decoder) else {
            throw AnySizeError(.invalidArgument, "--decoder '\(c.decoder)' is unknown; use vae, approx or linear")
        }
        guard let p = LatentDecoderKind(rawValue: c.preview), p != .vae else {
            throw AnySizeError(.invalidArgument, "--preview '\(c.preview)' is unknown; use approx or linear")
        }
        if c.skipDecode && c.saveLatents == nil {
            throw AnySizeError(.invalidArgument, "--skip-decode without --save-latents would produce nothing; add --save-latents PATH.safetensors")
        }
        let seed = c.seed ?? UInt64.random(in: 0 ... UInt64(UInt32.max))
        var request = try c.sampling.request(model: c.model, prompt: c.prompt, seed: seed)
        request.width = c.width
        request.height = c.height
        request.strength = c.strength
        request.initImagePath = c.initImage
        request.options.batchSize = c.batchSize
        request.options.clipSkip = c.clipSkip
        request.options.attention = attention
        request.options.vaeTiling = try VAETiling(flag: c.vaeTile)
        request.imageOutput = c.skipDecode ? nil : (c.output ?? "anysize-\(seed).png")
        request.latentsOutput = c.saveLatents
        request.previewEvery = c.previewEvery
        progress = ProgressReporter(quiet: c.quiet)
        resolved = try request.resolve()
        decoder = d
        previewKind = p
        approxDecoder = c.approxDecoder
        skipDecode = c.skipDecode
        verbose = c.verbose
    }

    func run() throws {
        let options = resolved.options
        let request = resolved.request
        progress.line("seed: \(options.seed)")
        if verbose { progress.line(resolved.memorySummary) }
        for notice in resolved.notices { progress.line(notice) }
        let loadStart = Date()
        let pipeline = try StableDiffusionPipeline(checkpoint: try resolved.loadCheckpoint(), precision: options.precision)
        progress.phase("load", seconds: Date().timeIntervalSince(loadStart))
        if !pipeline.unusedTensors.isEmpty {
            progress.line("note: \(pipeline.unusedTensors.count) checkpoint tensors were not used (see anysize info)")
        }
        if options.precision != .fp32 { progress.line("precision: \(options.precision.rawValue) UNet (\(options.precision.kernelDescription))") }
        if verbose {
            progress.line("attention memory: \(options.attentionMemory >> 20) MB")
            progress.line("vae tiling: \(options.vaeTiling.summary)")
        }
        let outputBase = request.imageOutput ?? ""
        let previewEvery = request.previewEvery
        let preview: (any PixelwiseLatentDecoder)? = previewEvery > 0 && request.imageOutput != nil ? try latentDecoder(previewKind) : nil
        let modelName = URL(fileURLWithPath: request.model).deletingPathExtension().lastPathComponent
        let result = try pipeline.generate(options) { event in
            switch event {
            case .phase(let name, let seconds): progress.phase(name, seconds: seconds)
            case .step(let i, let n, let spi): progress.step(i, of: n, secondsPerStep: spi)
            case .notice(let text): progress.line(text)
            case .latents(let i, let n, let latents):
                guard let preview, i % previewEvery == 0 || i == n else { return }
                for b in 0 ..< latents.dim(0) {
                    let path = GenerationMetadata.previewPath(outputBase, index: b, count: latents.dim(0), step: i)
                    do {
                        try PNGWriter.write(preview.image(fromLatents: latents, index: b), to: path)
                        progress.line("wrote \(path)")
                    } catch {
                        progress.line("note: preview not written: \(error)")
                    }
                }
            }
        }
        if let path = request.latentsOutput {
            try SafeTensorsWriter.write([("latents", result.latents)], to: path)
            progress.line("latents: \(path)")
        }
        guard !skipDecode, let base = request.imageOutput else { return }
        let decodeStart = Date()
        let images: [RGBImage]
        switch decoder {
        case .vae:
            let decoded = pipeline.decodeImages(result, tiling: options.vaeTiling)
            images = (0 ..< decoded.dim(0)).map { ImageConversion.image(fromDecoded: decoded, index: $0) }
        case .approx, .linear:
            let d = try latentDecoder(decoder)
            images = (0 ..< result.latents.dim(0)).map { d.image(fromLatents: result.latents, index: $0) }
        }
        progress.phase("decode", seconds: Date().timeIntervalSince(decodeStart))
        let attentionLabel = options.attention == .auto ? "auto -> \(result.attentionName)" : result.attentionName
        for (i, image) in images.enumerated() {
            let path = GenerationMetadata.outputPath(base, index: i, count: images.count)
            let text = GenerationMetadata.parameters(options: options, modelName: modelName, attention: attentionLabel,
                                                     index: i, decoder: decoder.rawValue, composition: result.composition)
            try PNGWriter.write(image, to: path, text: [("parameters", text)])
            progress.line("wrote \(path)")
        }
    }

    private func latentDecoder(_ kind: LatentDecoderKind) throws -> any PixelwiseLatentDecoder {
        switch kind {
        case .linear: return LinearLatentDecoder.sd15
        default: return try approxDecoder.map { try ApproximateDecoder(file: $0) } ?? ApproximateDecoder.bundledSD15()
        }
    }
}
