import AnySize
import Foundation

/// The body of `POST /sdapi/v1/txt2img` and `/img2img`: A1111's field names (StableDiffusionTxt2ImgProcessingAPI,
/// StableDiffusionImg2ImgProcessingAPI). Every field is optional; missing or null ones take `anysize generate`'s
/// defaults. Fields AnySize does not implement are accepted when unset (false, 0, empty) and refused otherwise.
struct A1111Request: Decodable {
    var prompt: String?
    var negativePrompt: String?
    var styles: [String]?
    var seed: Int64?
    var subseed: Int64?
    var subseedStrength: Double?
    var samplerName: String?
    var samplerIndex: String?
    var scheduler: String?
    var batchSize: Int?
    var nIter: Int?
    var steps: Int?
    var cfgScale: Double?
    var width: Int?
    var height: Int?
    var denoisingStrength: Double?
    var overrideSettings: [String: JSONValue]?
    var sendImages: Bool?
    var saveImages: Bool?
    var initImages: [String]?
    var resizeMode: Int?
    var includeInitImages: Bool?
    var anysizeAttention: String?
    var anysizePromptSyntax: String?
    var anysizeLocalEdge: Int?
    var anysizeCompose: String?
    var anysizeHiresStrength: Double?
    var anysizeRedilateUntil: Double?
    var anysizeDeepShrinkEnd: Double?
    /// A1111's task id; AnySize's job id (`GET /anysize/v1/jobs/{id}`).
    var forceTaskID: String?
    /// Features AnySize does not have, by A1111 field name: refused unless unset.
    var unsupported: [(field: String, value: JSONValue)] = []

    /// Every field the decoder reads; `Key.schema` (A1111Fields.swift) describes each for the validator and the
    /// OpenAPI document.
    enum Key: String, CodingKey, CaseIterable {
        case prompt, styles, seed, subseed, steps, width, height, scheduler, mask
        case negativePrompt = "negative_prompt", subseedStrength = "subseed_strength"
        case samplerName = "sampler_name", samplerIndex = "sampler_index", batchSize = "batch_size", nIter = "n_iter"
        case cfgScale = "cfg_scale", denoisingStrength = "denoising_strength", overrideSettings = "override_settings"
        case sendImages = "send_images", saveImages = "save_images", initImages = "init_images"
        case resizeMode = "resize_mode", includeInitImages = "include_init_images"
        case anysizeAttention = "anysize_attention", anysizePromptSyntax = "anysize_prompt_syntax"
        case anysizeLocalEdge = "anysize_local_edge", forceTaskID = "force_task_id"
        case anysizeCompose = "anysize_compose", anysizeHiresStrength = "anysize_hires_strength"
        case anysizeRedilateUntil = "anysize_redilate_until", anysizeDeepShrinkEnd = "anysize_deep_shrink_end"
        case enableHR = "enable_hr", restoreFaces = "restore_faces", tiling = "tiling", scriptName = "script_name"
        case alwaysonScripts = "alwayson_scripts", refinerCheckpoint = "refiner_checkpoint"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        // JSONDecoder reports 2.5 for an integer without the field's name; say which field wants an integer.
        func integer<T: FixedWidthInteger & Decodable>(_ key: Key) throws -> T? {
            do {
                return try c.decodeIfPresent(T.self, forKey: key)
            } catch {
                if let number = try? c.decodeIfPresent(Double.self, forKey: key) {
                    throw APIError.invalid(key.stringValue, "expected an integer, got \(number)")
                }
                throw error
            }
        }
        prompt = try c.decodeIfPresent(String.self, forKey: .prompt)
        negativePrompt = try c.decodeIfPresent(String.self, forKey: .negativePrompt)
        styles = try c.decodeIfPresent([String].self, forKey: .styles)
        seed = try integer(.seed)
        subseed = try integer(.subseed)
        subseedStrength = try c.decodeIfPresent(Double.self, forKey: .subseedStrength)
        samplerName = try c.decodeIfPresent(String.self, forKey: .samplerName)
        samplerIndex = try c.decodeIfPresent(String.self, forKey: .samplerIndex)
        scheduler = try c.decodeIfPresent(String.self, forKey: .scheduler)
        batchSize = try integer(.batchSize)
        nIter = try integer(.nIter)
        steps = try integer(.steps)
        cfgScale = try c.decodeIfPresent(Double.self, forKey: .cfgScale)
        width = try integer(.width)
        height = try integer(.height)
        denoisingStrength = try c.decodeIfPresent(Double.self, forKey: .denoisingStrength)
        overrideSettings = try c.decodeIfPresent([String: JSONValue].self, forKey: .overrideSettings)
        sendImages = try c.decodeIfPresent(Bool.self, forKey: .sendImages)
        saveImages = try c.decodeIfPresent(Bool.self, forKey: .saveImages)
        initImages = try c.decodeIfPresent([String].self, forKey: .initImages)
        resizeMode = try integer(.resizeMode)
        includeInitImages = try c.decodeIfPresent(Bool.self, forKey: .includeInitImages)
        anysizeAttention = try c.decodeIfPresent(String.self, forKey: .anysizeAttention)
        anysizePromptSyntax = try c.decodeIfPresent(String.self, forKey: .anysizePromptSyntax)
        anysizeLocalEdge = try integer(.anysizeLocalEdge)
        anysizeCompose = try c.decodeIfPresent(String.self, forKey: .anysizeCompose)
        anysizeHiresStrength = try c.decodeIfPresent(Double.self, forKey: .anysizeHiresStrength)
        anysizeRedilateUntil = try c.decodeIfPresent(Double.self, forKey: .anysizeRedilateUntil)
        anysizeDeepShrinkEnd = try c.decodeIfPresent(Double.self, forKey: .anysizeDeepShrinkEnd)
        forceTaskID = try c.decodeIfPresent(String.self, forKey: .forceTaskID)
        // (Inpainting options such as inpaint_full_res only act with a mask, which is refused.)
        for key in [Key.enableHR, .restoreFaces, .tiling, .scriptName, .alwaysonScripts, .refinerCheckpoint, .mask] {
            if let value = try c.decodeIfPresent(JSONValue.self, forKey: key), !value.isEmpty {
                unsupported.append((key.stringValue, value))
            }
        }
    }

    /// Decodes a request body, answering 422 with the field at fault.
    static func decode(_ body: Data) throws -> A1111Request {
        do {
            return try JSONDecoder().decode(A1111Request.self, from: body)
        } catch {
            throw APIError.decoding(error)
        }
    }
}

/// A1111 sampler and scheduler names.
enum A1111Names {
    /// (A1111 name, aliases, kind) of every sampler AnySize runs, in `/sdapi/v1/samplers` order.
    static let samplers: [(name: String, aliases: [String], kind: SamplerKind)] = [
        ("DPM++ 2M", ["k_dpmpp_2m"], .dpmpp2m),
        ("Euler a", ["k_euler_a"], .eulerAncestral),
        ("Euler", ["k_euler"], .euler),
        ("Heun", ["k_heun"], .heun),
        ("DDIM", ["ddim"], .ddim),
    ]

    /// (name, label) of the schedulers: Automatic is Karras for DPM++ 2M (as A1111 and `generate`), uniform
    /// otherwise.
    static let schedulers: [(name: String, label: String)] = [("automatic", "Automatic"), ("karras", "Karras")]

    /// The sampler and whether Karras sigmas run, from `sampler_name` (A1111 name, alias, AnySize's own name, or
    /// an old-style "DPM++ 2M Karras") and `scheduler`.
    /// `field` names the request field `name` came from (`sampler_name` or A1111's older `sampler_index`).
    static func sampler(name: String?, field: String = "sampler_name", scheduler: String?) throws -> (SamplerKind, karras: Bool) {
        var kind = SamplerKind.dpmpp2m
        var karrasInName = false
        if var text = name?.trimmingCharacters(in: .whitespaces), !text.isEmpty {
            if text.hasSuffix(" Karras") {
                karrasInName = true
                text = String(text.dropLast(" Karras".count))
            }
            let lower = text.lowercased()
            guard let found = samplers.first(where: { $0.name.lowercased() == lower || $0.aliases.contains(lower) })?.kind
                    ?? SamplerKind(rawValue: lower) else {
                throw APIError.invalid(field, "'\(name ?? "")' is not available; use one of \(samplers.map(\.name).joined(separator: ", "))")
            }
            kind = found
        }
        var karras = karrasInName || kind == .dpmpp2m
        if let s = scheduler?.trimmingCharacters(in: .whitespaces), !s.isEmpty {
            switch s.lowercased() {
            case "automatic": break
            case "karras": karras = true
            default:
                throw APIError.invalid("scheduler", "'\(s)' is not available; use Automatic or Karras")
            }
        }
        if karras && !kind.supportsKarras {
            if karrasInName || scheduler?.lowercased() == "karras" {
                throw APIError.invalid("scheduler", "Karras sigmas are not available for \(name ?? kind.rawValue); use Automatic, or Euler, Heun or DPM++ 2M")
            }
            karras = false
        }
        return (kind, karras)
    }
}
