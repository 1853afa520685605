import AnySize
import Foundation

/// What one request field accepts: its JSON type, default, allowed values and range. The request decoder's keys
/// (`A1111Request.Key`) map onto these with an exhaustive switch, the validator (`GenerationJob`) reads its ranges
/// from here, and the OpenAPI document (`OpenAPIDocument`) is built from them, so the three cannot drift apart.
struct FieldSchema {
    enum JSONType: String { case string, integer, number, boolean, array, object }

    /// A closed or half-open numeric interval.
    struct Range {
        var minimum: Double
        var maximum: Double?
        /// `minimum` itself is refused (denoising strength: (0, 1]).
        var exclusiveMinimum = false
        var multipleOf: Int? = nil

        /// Within the bounds (the step `multipleOf` not checked).
        func bounds(contain v: Double) -> Bool {
            (exclusiveMinimum ? v > minimum : v >= minimum) && (maximum.map { v <= $0 } ?? true)
        }

        func contains(_ v: Double) -> Bool {
            bounds(contain: v) && (multipleOf.map { v.truncatingRemainder(dividingBy: Double($0)) == 0 } ?? true)
        }

        /// "1 to 500", "(0, 1]", "0 or more".
        var text: String {
            func number(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v) }
            guard let maximum else { return "\(number(minimum)) or more" }
            return exclusiveMinimum ? "(\(number(minimum)), \(number(maximum))]" : "\(number(minimum)) to \(number(maximum))"
        }
    }

    var type: JSONType
    var description: String
    /// The JSON default (nil: none; NSNull: null means "decided at run time", as the model's trained size).
    var defaultValue: Any? = nil
    /// Allowed values (strings; case-insensitive where the description says so).
    var choices: [Any]? = nil
    var range: Range? = nil
    /// Item type of an array.
    var items: JSONType? = nil
    /// Read by img2img only.
    var img2imgOnly = false
    /// An A1111 feature AnySize does not have: accepted only unset (null, false, 0, "", [], {}).
    var unsupported = false

    /// The OpenAPI 3.0 schema object.
    var openAPI: [String: Any] {
        var s: [String: Any] = ["type": type.rawValue, "description": description, "nullable": true]
        if let defaultValue { s["default"] = defaultValue }
        if let choices { s["enum"] = choices + [NSNull()] }
        if let range {
            s["minimum"] = range.minimum
            if range.exclusiveMinimum { s["exclusiveMinimum"] = true }
            if let maximum = range.maximum { s["maximum"] = maximum }
            if let m = range.multipleOf { s["multipleOf"] = m }
        }
        if let items { s["items"] = ["type": items.rawValue] }
        if type == .object { s["additionalProperties"] = true }
        return s
    }
}

extension A1111Request.Key {
    /// The field's schema: every key the decoder reads has one (the switch is exhaustive).
    var schema: FieldSchema {
        let defaults = GenerationOptions(prompt: "", width: 512, height: 512, seed: 0)
        let composition = CompositionOptions()
        switch self {
        case .prompt:
            return FieldSchema(type: .string, description: "The prompt, in A1111 syntax ((word:1.3), [word], BREAK, long prompts) unless anysize_prompt_syntax is plain.", defaultValue: "")
        case .negativePrompt:
            return FieldSchema(type: .string, description: "The negative prompt, same syntax.", defaultValue: "")
        case .styles:
            return FieldSchema(type: .array, description: "A1111 saved styles: not supported; only an empty list is accepted.", defaultValue: [String](), items: .string, unsupported: true)
        case .seed:
            return FieldSchema(type: .integer, description: "-1 picks a random seed. Image i of the request (batch_size x n_iter images) uses seed + i, as A1111.", defaultValue: -1, range: .init(minimum: -1, maximum: nil))
        case .subseed:
            return FieldSchema(type: .integer, description: "Variation seed: ignored (noted in info.anysize_notes); AnySize has no variation seeds.", defaultValue: -1)
        case .subseedStrength:
            return FieldSchema(type: .number, description: "Variation strength: ignored (noted in info.anysize_notes).", defaultValue: 0)
        case .samplerName:
            return FieldSchema(type: .string, description: "Sampler: an A1111 name, an old-style name with the scheduler (\"DPM++ 2M Karras\"), an alias or AnySize's name; case-insensitive.", defaultValue: A1111Names.defaultSampler, choices: A1111Names.acceptedSamplerNames)
        case .samplerIndex:
            return FieldSchema(type: .string, description: "A1111's older name of sampler_name, read when sampler_name is unset.", choices: A1111Names.acceptedSamplerNames)
        case .scheduler:
            return FieldSchema(type: .string, description: "Sigma schedule; case-insensitive. Automatic is Karras for DPM++ 2M (as A1111), uniform otherwise.", defaultValue: "Automatic", choices: A1111Names.schedulers.map(\.label))
        case .batchSize:
            return FieldSchema(type: .integer, description: "Images sampled together.", defaultValue: 1, range: .init(minimum: 1, maximum: 64))
        case .nIter:
            return FieldSchema(type: .integer, description: "Batches run one after another.", defaultValue: 1, range: .init(minimum: 1, maximum: 100))
        case .steps:
            return FieldSchema(type: .integer, description: "Sampler steps.", defaultValue: defaults.steps, range: .init(minimum: 1, maximum: 500))
        case .cfgScale:
            return FieldSchema(type: .number, description: "Classifier-free guidance scale; 1 or less runs no unconditional pass.", defaultValue: defaults.cfgScale, range: .init(minimum: 0, maximum: 100))
        case .width:
            return FieldSchema(type: .integer, description: "Canvas width in pixels; null or absent: the model's trained width.", defaultValue: NSNull(), range: .init(minimum: 64, maximum: 4096, multipleOf: 8))
        case .height:
            return FieldSchema(type: .integer, description: "Canvas height in pixels; null or absent: the model's trained height.", defaultValue: NSNull(), range: .init(minimum: 64, maximum: 4096, multipleOf: 8))
        case .denoisingStrength:
            return FieldSchema(type: .number, description: "img2img: the part of the schedule run from the init image.", defaultValue: defaults.strength, range: .init(minimum: 0, maximum: 1, exclusiveMinimum: true), img2imgOnly: true)
        case .overrideSettings:
            return FieldSchema(type: .object, description: "Per-request settings: CLIP_stop_at_last_layers (clip skip, 1 to 12) and sd_model_checkpoint (a title of /sdapi/v1/sd-models) are applied; other keys are ignored with a note.", defaultValue: [String: Any]())
        case .sendImages:
            return FieldSchema(type: .boolean, description: "Return the images in the answer.", defaultValue: true)
        case .saveImages:
            return FieldSchema(type: .boolean, description: "Also write them under STATE/outputs/{txt2img,img2img}-images/.", defaultValue: false)
        case .initImages:
            return FieldSchema(type: .array, description: "img2img (required): base64 PNGs, plain or as data: URLs; one image, or one per image of the batch. Resized to the canvas.", items: .string, img2imgOnly: true)
        case .resizeMode:
            return FieldSchema(type: .integer, description: "img2img: 0 (just resize) only.", defaultValue: 0, choices: [0], img2imgOnly: true)
        case .includeInitImages:
            return FieldSchema(type: .boolean, description: "Accepted and ignored: the init images are not sent back.", defaultValue: false, img2imgOnly: true)
        case .anysizeAttention:
            return FieldSchema(type: .string, description: "AnySize: the self-attention formulation (auto picks by canvas size; see docs/METHODS.md).", defaultValue: defaults.attention.rawValue, choices: AttentionMode.allCases.map(\.rawValue))
        case .anysizePromptSyntax:
            return FieldSchema(type: .string, description: "AnySize: how prompts are read: A1111 emphasis syntax, or plain text.", defaultValue: defaults.promptSyntax.rawValue, choices: PromptSyntax.allCases.map(\.rawValue))
        case .anysizeLocalEdge:
            return FieldSchema(type: .integer, description: "AnySize: canvas-edge sink tokens of local attention.", defaultValue: defaults.localEdge, range: .init(minimum: 0, maximum: 4096))
        case .anysizeCompose:
            return FieldSchema(type: .string, description: "AnySize: how a canvas other than the trained one is composed (as anysize generate --compose; see docs/METHODS.md).", defaultValue: CompositionMode.auto.rawValue, choices: CompositionMode.allCases.map(\.rawValue))
        case .anysizeHiresStrength:
            return FieldSchema(type: .number, description: "AnySize, compose hires: img2img strength of the pass at the target size.", defaultValue: composition.hiresStrength, range: CompositionOptions.hiresStrengthRange.field(excludingMinimum: true))
        case .anysizeRedilateUntil:
            return FieldSchema(type: .number, description: "AnySize, compose redilate: re-dilate while the timestep t >= this.", defaultValue: composition.redilateUntil, range: CompositionOptions.redilateUntilRange.field())
        case .anysizeDeepShrinkEnd:
            return FieldSchema(type: .number, description: "AnySize, compose deep-shrink: shrink while t >= (1 - end) * 1000.", defaultValue: composition.deepShrinkEnd, range: CompositionOptions.deepShrinkEndRange.field())
        case .forceTaskID:
            return FieldSchema(type: .string, description: "The job's id (1 to 200 characters, unused so far) for GET /anysize/v1/jobs/{id}; default a new UUID.")
        case .mask:
            return FieldSchema(type: .string, description: "Inpainting mask: not supported; only null is accepted.", img2imgOnly: true, unsupported: true)
        case .enableHR:
            return FieldSchema(type: .boolean, description: "A1111 hires fix: not supported, use anysize_compose hires; only false is accepted.", defaultValue: false, unsupported: true)
        case .restoreFaces:
            return FieldSchema(type: .boolean, description: "Not supported; only false is accepted.", defaultValue: false, unsupported: true)
        case .tiling:
            return FieldSchema(type: .boolean, description: "Not supported; only false is accepted.", defaultValue: false, unsupported: true)
        case .scriptName:
            return FieldSchema(type: .string, description: "A1111 scripts: not supported; only null or \"\" is accepted.", unsupported: true)
        case .alwaysonScripts:
            return FieldSchema(type: .object, description: "A1111 extensions (ControlNet, ...): not supported; only {} is accepted.", defaultValue: [String: Any](), unsupported: true)
        case .refinerCheckpoint:
            return FieldSchema(type: .string, description: "Not supported; only null or \"\" is accepted.", unsupported: true)
        }
    }
}

extension ClosedRange<Double> {
    /// The same interval as a field range (`excludingMinimum` for the library's half-open ones).
    func field(excludingMinimum: Bool = false) -> FieldSchema.Range {
        FieldSchema.Range(minimum: lowerBound, maximum: upperBound, exclusiveMinimum: excludingMinimum)
    }
}

extension A1111Names {
    /// The sampler a request without `sampler_name` runs.
    static var defaultSampler: String {
        let kind = GenerationOptions(prompt: "", width: 512, height: 512, seed: 0).sampler
        return samplers.first { $0.kind == kind }?.name ?? kind.rawValue
    }

    /// Every spelling `sampler(name:scheduler:)` accepts (it also ignores case): A1111 names, the same with
    /// " Karras" where Karras sigmas apply, aliases and AnySize's names.
    static var acceptedSamplerNames: [String] {
        var names: [String] = []
        for s in samplers {
            names.append(s.name)
            if s.kind.supportsKarras { names.append(s.name + " Karras") }
        }
        for s in samplers { names += s.aliases }
        names += SamplerKind.allCases.map(\.rawValue)
        var seen = Set<String>()
        return names.filter { seen.insert($0).inserted }
    }
}
