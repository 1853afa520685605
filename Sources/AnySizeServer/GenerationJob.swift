import AnySize
import Foundation

/// One validated txt2img or img2img request, ready for the generation thread.
struct GenerationJob: @unchecked Sendable {
    enum Kind: String, Sendable { case txt2img, img2img }

    let kind: Kind
    /// The first iteration's options; `seed` is the first image's seed (image i of the request uses seed + i).
    var options: GenerationOptions
    /// Width or height not given: the model's trained size, known once the model is loaded.
    let widthFromModel: Bool
    let heightFromModel: Bool
    /// A1111's `n_iter`: batches run one after another.
    let iterations: Int
    /// `override_settings.sd_model_checkpoint`: the model to run on (nil: the current one).
    let model: ModelEntry?
    let sendImages: Bool
    let saveImages: Bool
    /// img2img: one image for the whole batch, or one per image of the batch (before resizing).
    let initImages: [RGBImage]
    /// What the answer's `info` says about accepted-but-ignored fields.
    let notes: [String]
    /// The request's `seed` (-1 = random) and `subseed`, echoed in `parameters` and `info`.
    let requestedSeed: Int64
    let subseed: Int64
    /// The A1111 sampler and scheduler names echoed back.
    let samplerName: String
    let schedulerName: String

    /// Checks every field of `request` (422 naming the field on the first bad one).
    init(_ request: A1111Request, kind: Kind, catalog: ModelCatalog, defaultClipSkip: Int = 1,
         randomSeed: () -> UInt64 = { UInt64.random(in: 0 ... UInt64(UInt32.max)) }) throws {
        self.kind = kind
        for (field, _) in request.unsupported {
            throw APIError.invalid(field, "not supported by AnySize; leave it unset (see docs/SERVER.md)")
        }
        if let styles = request.styles, !styles.isEmpty {
            throw APIError.invalid("styles", "saved styles are not supported by AnySize; put the text in the prompt")
        }
        // Ranges from the field table (A1111Fields.swift), the one the OpenAPI document lists.
        func check(_ key: A1111Request.Key, _ value: Int?, _ unit: String) throws {
            guard let v = value, let range = key.schema.range else { return }
            guard range.bounds(contain: Double(v)) else {
                throw APIError.invalid(key.stringValue, "\(v) is out of range; use \(range.text)\(unit)")
            }
            if let m = range.multipleOf, v % m != 0 {
                throw APIError.invalid(key.stringValue, "\(v) is not a multiple of \(m); use e.g. \(max(v / m * m, Int(range.minimum)))")
            }
        }
        try check(.width, request.width, " (a multiple of 8)")
        try check(.height, request.height, " (a multiple of 8)")
        try check(.steps, request.steps, " steps")
        try check(.batchSize, request.batchSize, " images per batch")
        try check(.nIter, request.nIter, " batches")
        try check(.anysizeLocalEdge, request.anysizeLocalEdge, " tokens")
        if let cfg = request.cfgScale, let range = A1111Request.Key.cfgScale.schema.range, !(cfg.isFinite && range.contains(cfg)) {
            throw APIError.invalid("cfg_scale", "\(cfg) is out of range; use \(range.text) (7 is usual)")
        }
        let seedValue = request.seed ?? -1
        guard seedValue >= -1 else { throw APIError.invalid("seed", "\(seedValue) is negative; use -1 (random) or a seed of 0 or more") }
        requestedSeed = seedValue
        subseed = request.subseed ?? -1
        var notes: [String] = []
        if subseed != -1 || (request.subseedStrength ?? 0) != 0 {
            notes.append("subseed and subseed_strength are ignored: AnySize has no variation seeds")
        }
        let (sampler, karras) = try A1111Names.sampler(name: request.samplerName ?? request.samplerIndex,
                                                     field: request.samplerName == nil && request.samplerIndex != nil ? "sampler_index" : "sampler_name",
                                                     scheduler: request.scheduler)
        samplerName = A1111Names.samplers.first { $0.kind == sampler }?.name ?? sampler.rawValue
        schedulerName = karras ? "Karras" : "Automatic"

        var options = GenerationOptions(prompt: request.prompt ?? "", width: request.width ?? 512, height: request.height ?? 512,
                                        seed: seedValue == -1 ? randomSeed() : UInt64(seedValue))
        options.negativePrompt = request.negativePrompt ?? ""
        options.steps = request.steps ?? options.steps
        options.cfgScale = request.cfgScale ?? options.cfgScale
        options.sampler = sampler
        options.karras = karras
        options.batchSize = request.batchSize ?? 1
        options.seedPerImage = true
        options.localEdge = request.anysizeLocalEdge ?? 0
        options.clipSkip = defaultClipSkip
        options.attentionMemory = AttentionMemory.defaultBudget()
        if let text = request.anysizeAttention {
            guard let mode = AttentionMode(rawValue: text) else {
                throw APIError.invalid("anysize_attention", "'\(text)' is unknown; use one of \(AttentionMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            options.attention = mode
        }
        // Composition: as `anysize generate`, `auto` unless the request names a method.
        var composition = CompositionOptions()
        composition.mode = .auto
        if let text = request.anysizeCompose {
            guard let mode = CompositionMode(rawValue: text) else {
                throw APIError.invalid("anysize_compose", "'\(text)' is unknown; use one of \(CompositionMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            composition.mode = mode
        }
        // Each value checked on its own, so the answer names the field at fault.
        func set(_ field: String, _ value: Double?, _ path: WritableKeyPath<CompositionOptions, Double>) throws {
            guard let value else { return }
            composition[keyPath: path] = value
            do {
                try composition.validate()
            } catch let error as AnySizeError {
                throw APIError.invalid(field, error.message)
            }
        }
        try set("anysize_hires_strength", request.anysizeHiresStrength, \.hiresStrength)
        try set("anysize_redilate_until", request.anysizeRedilateUntil, \.redilateUntil)
        try set("anysize_deep_shrink_end", request.anysizeDeepShrinkEnd, \.deepShrinkEnd)
        options.composition = composition
        if let text = request.anysizePromptSyntax {
            guard let syntax = PromptSyntax(rawValue: text) else {
                throw APIError.invalid("anysize_prompt_syntax", "'\(text)' is unknown; use a1111 or plain")
            }
            options.promptSyntax = syntax
        }
        var model: ModelEntry?
        for (key, value) in (request.overrideSettings ?? [:]).sorted(by: { $0.key < $1.key }) {
            switch (key, value) {
            case ("CLIP_stop_at_last_layers", .number(let n)):
                guard n == n.rounded(), (1 ... 12).contains(n) else {
                    throw APIError.invalid("override_settings.CLIP_stop_at_last_layers", "\(n): use a whole number from 1 (last layer) to 12")
                }
                options.clipSkip = Int(n)
            case ("CLIP_stop_at_last_layers", _):
                throw APIError.invalid("override_settings.CLIP_stop_at_last_layers", "expected an integer")
            case ("sd_model_checkpoint", .string(let name)):
                guard let entry = catalog.entry(named: name) else {
                    throw APIError.invalid("override_settings.sd_model_checkpoint", "model '\(name)' not found; GET /sdapi/v1/sd-models lists the models")
                }
                model = entry
            case ("sd_model_checkpoint", _):
                throw APIError.invalid("override_settings.sd_model_checkpoint", "expected a model title")
            default:
                notes.append("override_settings.\(key) is ignored")
            }
        }
        self.model = model

        var images: [RGBImage] = []
        if kind == .img2img {
            guard let list = request.initImages, !list.isEmpty else {
                throw APIError.invalid("init_images", "field required: img2img needs one base64 PNG")
            }
            guard list.count == 1 || list.count == options.batchSize else {
                throw APIError.invalid("init_images", "\(list.count) images for batch_size \(options.batchSize); send one image or one per image of the batch")
            }
            for (i, text) in list.enumerated() { images.append(try Self.decodeImage(text, field: "init_images[\(i)]")) }
            if let mode = request.resizeMode, mode != 0 {
                throw APIError.invalid("resize_mode", "\(mode) is not supported; use 0 (just resize)")
            }
            let strength = request.denoisingStrength ?? options.strength
            if let range = A1111Request.Key.denoisingStrength.schema.range, !(strength.isFinite && range.contains(strength)) {
                throw APIError.invalid("denoising_strength", "\(strength) is outside \(range.text); e.g. 0.75")
            }
            options.strength = strength
        }
        initImages = images
        do {
            try options.validate()
        } catch let error as AnySizeError {
            throw APIError(422, error.message)
        }
        self.options = options
        widthFromModel = request.width == nil
        heightFromModel = request.height == nil
        iterations = request.nIter ?? 1
        sendImages = request.sendImages ?? true
        saveImages = request.saveImages ?? false
        self.notes = notes
    }

    /// A base64 PNG, optionally as a data URL (`data:image/png;base64,...`), as A1111 accepts.
    static func decodeImage(_ text: String, field: String) throws -> RGBImage {
        var payload = Substring(text)
        if payload.hasPrefix("data:"), let comma = payload.firstIndex(of: ",") { payload = payload[payload.index(after: comma)...] }
        guard let data = Data(base64Encoded: String(payload), options: .ignoreUnknownCharacters), !data.isEmpty else {
            throw APIError.invalid(field, "not base64 image data")
        }
        guard data.starts(with: [0x89, 0x50, 0x4E, 0x47]) else {
            throw APIError.invalid(field, "not a PNG image; AnySize reads PNG only (convert JPEG/WebP to PNG first)")
        }
        do {
            return try PNGReader.decode([UInt8](data), source: field)
        } catch let error as AnySizeError {
            throw APIError.invalid(field, error.message)
        }
    }
}
