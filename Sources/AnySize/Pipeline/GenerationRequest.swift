import Foundation

/// One generation as a user asks for it, before any weights load: the options, the model, what the canvas
/// defaults to, the init image and the files the run will write.
///
/// `resolve()` makes every check that needs no weights, once and in this order: the options' own values, the
/// output paths (before the model is read, and never onto one of the run's inputs), the init image, the model's
/// configs and headers (`ModelFootprint`: trained size and parameter count), the canvas (defaulting to the trained
/// size), and the memory estimate against physical memory. Its result is what `generate`, `attention-report` and
/// library callers run.
public struct GenerationRequest: Sendable {
    /// A diffusers model folder or a single `.safetensors` file.
    public var model: String
    /// Prediction type instead of the model's own (`--prediction`).
    public var prediction: PredictionType?
    /// For a single file: a diffusers folder whose UNet and VAE configs replace the inferred ones.
    public var configFolder: String?
    /// Every other setting. `options.width` / `options.height` are replaced by `width` / `height` (or the model's
    /// trained size), `options.strength` by `strength` when given, `options.initImage` by `initImagePath`.
    public var options: GenerationOptions
    /// Canvas in pixels; nil = the model's trained size (or `options.trainedSize` when set).
    public var width: Int?
    public var height: Int?
    /// img2img strength; giving it without an init image is refused.
    public var strength: Double?
    /// img2img: a PNG, resized to the canvas when its size differs.
    public var initImagePath: String?
    /// PNG output: one path for one image, `NAME-1.png`, `NAME-2.png`, ... for a batch; nil = no PNG.
    public var imageOutput: String?
    /// Write `NAME.step-NN.png` previews every this many model calls (0 = off).
    public var previewEvery: Int = 0
    /// A `.safetensors` file for the final latents; nil = none.
    public var latentsOutput: String?
    /// Physical memory the estimate must fit in.
    public var physicalMemory: UInt64 = ProcessInfo.processInfo.physicalMemory

    public init(model: String, options: GenerationOptions) {
        self.model = model
        self.options = options
    }

    /// Checks everything, reading only configs, safetensors headers and the init image.
    /// - Throws: a one-line `AnySizeError` naming the value or file at fault and what to do; `.outOfMemory` with
    ///   the flags that lower the estimate when the run would not fit.
    public func resolve() throws -> ResolvedGeneration {
        var options = self.options
        if let strength { options.strength = strength }
        if strength != nil && initImagePath == nil && options.initImage == nil {
            throw AnySizeError(.invalidArgument, "--strength applies to img2img only; add --init-image PATH.png or drop --strength")
        }
        if let w = width { options.width = w }
        if let h = height { options.height = h }
        // Everything but the canvas (which may still default to the trained size) is checked here.
        var unsized = options
        unsized.width = width ?? 512
        unsized.height = height ?? 512
        try unsized.validate()
        try Self.checkAttentionMemory(options.attentionMemory, physicalMemory: physicalMemory)
        guard previewEvery >= 0 else {
            throw AnySizeError(.invalidArgument, "--preview-every \(previewEvery): use 0 (off) or a positive step count")
        }
        if let path = latentsOutput, !path.hasSuffix(".safetensors") {
            throw AnySizeError(.invalidArgument, "--save-latents \(path): use a .safetensors file name")
        }
        try checkOutputs(batch: options.batchCount)

        var notices: [String] = []
        var image: RGBImage?
        if let path = initImagePath { image = try PNGReader.read(path: path) }
        let footprint = try ModelFootprint.read(path: model, prediction: prediction, configFolder: configFolder)
        let trained = options.trainedSize ?? footprint.trainedSize
        if width == nil { options.width = trained.width }
        if height == nil { options.height = trained.height }
        try options.validate()
        if var image {
            if image.width != options.width || image.height != options.height {
                notices.append("note: init image \(image.width)x\(image.height) resized to \(options.width)x\(options.height)")
                image = ImageConversion.resize(image, width: options.width, height: options.height)
            }
            options.initImage = ImageConversion.tensor(from: image)
        }
        return try ResolvedGeneration(request: self, footprint: footprint, options: options, notices: notices)
    }

    /// The files this run reads; no output may be one of them.
    public var inputs: InputFiles {
        var inputs = InputFiles()
        inputs.add(model)
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: model, isDirectory: &isFolder), !isFolder.boolValue {
            let base = URL(fileURLWithPath: model).deletingPathExtension().path
            inputs.add(base + ".yaml")
            inputs.add(base + ".yml")
        }
        if let configFolder { inputs.add(configFolder) }
        if let initImagePath { inputs.add(initImagePath) }
        return inputs
    }

    /// Every file the run writes (images of the batch, the latents), checked by `FileIO.checkOutput`; previews
    /// share the images' folder, so checking the images covers them.
    func checkOutputs(batch: Int) throws {
        let inputs = self.inputs
        if let path = latentsOutput { try FileIO.checkOutput(path, flag: "--save-latents", inputs: inputs) }
        guard let base = imageOutput else { return }
        // A batch writes NAME-1.png ... NAME-N.png; checking more than a few hundred adds nothing but time.
        for index in 0 ..< min(batch, 256) {
            let path = GenerationMetadata.outputPath(base, index: index, count: batch)
            try FileIO.checkOutput(path, flag: "--output", inputs: inputs)
            if let latents = latentsOutput,
               latents == path || (FileIO.resolvedPath(latents).map { $0 == FileIO.resolvedPath(path) } ?? false) {
                throw AnySizeError(.invalidArgument, "--save-latents and --output both name '\(path)'; give them different paths")
            }
        }
        // A device or FIFO (`/dev/null`, `/dev/stdout`) takes the PNG bytes under any name.
        if case .stream? = try? FileIO.destination(of: base) { return }
        try GenerationMetadata.checkOutputName(base)
    }

    /// The attention kernel's scratch budget must be between 1 MB and half of physical memory.
    static func checkAttentionMemory(_ bytes: Int, physicalMemory: UInt64) throws {
        let limit = Int(clamping: physicalMemory / 2)
        guard bytes > 0, bytes <= limit else {
            throw AnySizeError(.invalidArgument,
                "attention memory \(bytes) bytes is outside 1 byte to \(limit >> 20) MB (half of this machine's memory); "
                + "use the default, AttentionMemory.defaultBudget()")
        }
    }
}

/// A `GenerationRequest` with every up-front check passed: the options to run, the model's footprint and the
/// memory estimate.
public struct ResolvedGeneration: Sendable {
    public let request: GenerationRequest
    public let footprint: ModelFootprint
    /// The options to run: canvas decided, init image read and resized, all values checked.
    public let options: GenerationOptions
    /// What the user should know before the run (a resized init image).
    public let notices: [String]
    public let estimate: MemoryEstimate
    /// The composition the run will use (`options.composition` resolved for the canvas and the trained size):
    /// its passes, cost and summary. The memory estimate covers its largest pass.
    public let composition: CompositionPlan

    init(request: GenerationRequest, footprint: ModelFootprint, options: GenerationOptions, notices: [String]) throws {
        let trained = options.trainedSize ?? footprint.trainedSize
        let f = 1 << max(0, footprint.vae.blockOutChannels.count - 1)
        composition = try CompositionPlan.resolve(CompositionRequest(
            width: options.width, height: options.height, trainedWidth: trained.width, trainedHeight: trained.height,
            latentFactor: f, steps: options.steps, img2img: options.initImage != nil, options: options.composition,
            unet: footprint.unet))
        if let refusal = MemoryEstimate.refusal(model: footprint, options: options, physicalMemory: request.physicalMemory) {
            throw refusal
        }
        self.request = request
        self.footprint = footprint
        self.options = options
        self.notices = notices
        estimate = MemoryEstimate(model: footprint, options: options)
    }

    /// The same request at another canvas (and attention formulation), checked and estimated again: the runs of
    /// `AttentionReport`.
    public func resized(width: Int, height: Int, attention: AttentionMode? = nil) throws -> ResolvedGeneration {
        var options = self.options
        options.width = width
        options.height = height
        if let attention { options.attention = attention }
        try options.validate()
        return try ResolvedGeneration(request: request, footprint: footprint, options: options, notices: [])
    }

    /// Loads the model the request names (with its prediction override and config folder).
    public func loadCheckpoint() throws -> StableDiffusionCheckpoint {
        try StableDiffusionCheckpoint.load(path: request.model, prediction: request.prediction,
                                           configFolder: request.configFolder)
    }

    /// The one-line estimate for `--verbose`, with physical memory.
    public var memorySummary: String {
        "memory: \(estimate.summary); physical \(MemoryEstimate.gigabytes(Int(clamping: request.physicalMemory)))"
    }
}
