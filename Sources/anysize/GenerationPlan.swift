import AnySize
import Foundation

/// The validated inputs of `anysize generate` and the steps that run it.
/// Everything that can be checked without the model is checked in `init`, before any weights load.
struct GenerationPlan {
    let command: GenerateCommand
    var options: GenerationOptions
    let prediction: PredictionType?
    let decoder: LatentDecoderKind
    let previewKind: LatentDecoderKind
    let initImage: RGBImage?
    let outputBase: String
    let progress: ProgressReporter

    init(_ c: GenerateCommand) throws {
        command = c
        let settings = try c.sampling.resolved()
        guard let attention = AttentionMode(rawValue: c.attention) else {
            throw AnySizeError(.invalidArgument, "--attention '\(c.attention)' is unknown; use one of \(AttentionMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        prediction = settings.prediction
        guard let d = LatentDecoderKind(rawValue: c.decoder) else {
            throw AnySizeError(.invalidArgument, "--decoder '\(c.decoder)' is unknown; use vae, approx or linear")
        }
        decoder = d
        guard let p = LatentDecoderKind(rawValue: c.preview), p != .vae else {
            throw AnySizeError(.invalidArgument, "--preview '\(c.preview)' is unknown; use approx or linear")
        }
        previewKind = p
        guard c.previewEvery >= 0 else {
            throw AnySizeError(.invalidArgument, "--preview-every \(c.previewEvery): use 0 (off) or a positive step count")
        }
        let seed = c.seed ?? UInt64.random(in: 0 ... UInt64(UInt32.max))
        // The size is checked again once the model's trained size is known; here the explicit values.
        var options = GenerationOptions(prompt: c.prompt, width: c.width ?? 512, height: c.height ?? 512, seed: seed)
        options.negativePrompt = c.sampling.negativePrompt
        options.steps = c.sampling.steps
        options.cfgScale = c.sampling.cfgScale
        options.sampler = settings.sampler
        options.karras = settings.karras
        options.batchSize = c.batchSize
        options.strength = c.strength
        options.clipSkip = c.clipSkip
        options.promptSyntax = settings.promptSyntax
        options.attention = attention
        options.localEdge = c.sampling.localEdge
        options.trainedSize = settings.trainedSize
        options.attentionMemory = settings.attentionMemoryBytes
        options.vaeTiling = try VAETiling(flag: c.vaeTile)
        try options.validate()
        if let path = c.initImage {
            initImage = try PNGReader.read(path: path)
        } else {
            initImage = nil
        }
        self.options = options
        outputBase = c.output ?? "anysize-\(seed).png"
        if c.skipDecode && c.saveLatents == nil {
            throw AnySizeError(.invalidArgument, "--skip-decode without --save-latents would produce nothing; add --save-latents PATH.safetensors")
        }
        if let path = c.saveLatents, !path.hasSuffix(".safetensors") {
            throw AnySizeError(.invalidArgument, "--save-latents \(path): use a .safetensors file name")
        }
        for path in [c.saveLatents, c.skipDecode ? nil : outputBase].compactMap({ $0 }) {
            let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
                throw AnySizeError(.fileNotFound, "\(path): folder \(dir) does not exist; create it or choose another output path")
            }
        }
        progress = ProgressReporter(quiet: c.quiet)
    }

    func run() throws {
        var options = self.options
        progress.line("seed: \(options.seed)")
        try checkMemory()
        let loadStart = Date()
        let checkpoint = try StableDiffusionCheckpoint.load(path: command.model, prediction: prediction)
        let pipeline = try StableDiffusionPipeline(checkpoint: checkpoint)
        progress.phase("load", seconds: Date().timeIntervalSince(loadStart))
        if !pipeline.unusedTensors.isEmpty {
            progress.line("note: \(pipeline.unusedTensors.count) checkpoint tensors were not used (see anysize info)")
        }
        if command.width == nil { options.width = pipeline.trainedSize.width }
        if command.height == nil { options.height = pipeline.trainedSize.height }
        try options.validate()
        if command.verbose {
            progress.line("attention memory: \(options.attentionMemory >> 20) MB")
            progress.line("vae tiling: \(options.vaeTiling.summary)")
        }
        if let image = initImage {
            var img = image
            if img.width != options.width || img.height != options.height {
                progress.line("note: init image \(img.width)x\(img.height) resized to \(options.width)x\(options.height)")
                img = ImageConversion.resize(img, width: options.width, height: options.height)
            }
            options.initImage = ImageConversion.tensor(from: img)
        }
        let preview: (any PixelwiseLatentDecoder)? = command.previewEvery > 0 ? try latentDecoder(previewKind) : nil
        let modelName = URL(fileURLWithPath: command.model).deletingPathExtension().lastPathComponent
        let result = try pipeline.generate(options) { event in
            switch event {
            case .phase(let name, let seconds): progress.phase(name, seconds: seconds)
            case .step(let i, let n, let spi): progress.step(i, of: n, secondsPerStep: spi)
            case .notice(let text): progress.line(text)
            case .latents(let i, let n, let latents):
                guard let preview, i % command.previewEvery == 0 || i == n else { return }
                for b in 0 ..< latents.dim(0) {
                    let path = GenerationMetadata.previewPath(outputBase, index: b, count: latents.dim(0), step: i)
                    try? PNGWriter.write(preview.image(fromLatents: latents, index: b), to: path)
                }
            }
        }
        if let path = command.saveLatents {
            try SafeTensorsWriter.write([("latents", result.latents)], to: path)
            progress.line("latents: \(path)")
        }
        guard !command.skipDecode else { return }
        let decodeStart = Date()
        let images: [RGBImage]
        switch decoder {
        case .vae:
            let decoded = pipeline.decode(result.latents, tiling: options.vaeTiling)
            images = (0 ..< decoded.dim(0)).map { ImageConversion.image(fromDecoded: decoded, index: $0) }
        case .approx, .linear:
            let d = try latentDecoder(decoder)
            images = (0 ..< result.latents.dim(0)).map { d.image(fromLatents: result.latents, index: $0) }
        }
        progress.phase("decode", seconds: Date().timeIntervalSince(decodeStart))
        let attentionLabel = options.attention == .auto ? "auto -> \(result.attentionName)" : result.attentionName
        for (i, image) in images.enumerated() {
            let path = GenerationMetadata.outputPath(outputBase, index: i, count: images.count)
            let text = GenerationMetadata.parameters(options: options, modelName: modelName, attention: attentionLabel,
                                                     index: i, decoder: decoder.rawValue)
            try PNGWriter.write(image, to: path, text: [("parameters", text)])
            progress.line("wrote \(path)")
        }
    }

    /// Refuses, before any weights load, a run whose estimated peak memory exceeds physical memory.
    private func checkMemory() throws {
        let footprint = try ModelFootprint.read(path: command.model)
        var sized = options
        let side = footprint.unet.sampleSize << max(0, footprint.vae.blockOutChannels.count - 1)
        if command.width == nil { sized.width = side }
        if command.height == nil { sized.height = side }
        if command.verbose {
            let estimate = MemoryEstimate(model: footprint, options: sized, img2img: initImage != nil)
            progress.line("memory: \(estimate.summary); physical \(MemoryEstimate.gigabytes(Int(clamping: ProcessInfo.processInfo.physicalMemory)))")
        }
        if let refusal = MemoryEstimate.refusal(model: footprint, options: sized, img2img: initImage != nil) { throw refusal }
    }

    private func latentDecoder(_ kind: LatentDecoderKind) throws -> any PixelwiseLatentDecoder {
        switch kind {
        case .linear: return LinearLatentDecoder.sd15
        default: return try command.approxDecoder.map { try ApproximateDecoder(file: $0) } ?? ApproximateDecoder.bundledSD15()
        }
    }
}
