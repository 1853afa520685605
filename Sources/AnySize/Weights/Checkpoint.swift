import Foundation

/// How a checkpoint is stored on disk.
public enum CheckpointLayout: String, Sendable {
    /// A diffusers pipeline folder (`model_index.json`, `unet/`, `vae/`, `text_encoder/`, `tokenizer/`, `scheduler/`).
    case diffusersFolder
    /// One original-format (CompVis / A1111) `.safetensors` file with all components.
    case singleFile

    public var displayName: String { self == .diffusersFolder ? "diffusers folder" : "single file" }
}

/// The model generation, which fixes the text encoder and attention layout.
public enum ModelFamily: String, Sendable {
    /// Stable Diffusion 1.x: OpenAI CLIP ViT-L/14 text encoder (768 wide), 8 heads per level.
    case sd1
    /// Stable Diffusion 2.x: OpenCLIP ViT-H/14 text encoder (1024 wide), 64-channel heads, linear projections.
    case sd2

    public var displayName: String { self == .sd1 ? "SD1.x" : "SD2.x" }
}

/// Where the CLIP tokenizer comes from.
public enum TokenizerSource: Equatable, Sendable {
    /// A transformers tokenizer folder (`vocab.json`, `merges.txt`, `special_tokens_map.json`, ...).
    case folder(URL)
    /// The bundled CLIP BPE table, padding prompts with `padToken`: `<|endoftext|>` (id 49407) for SD1,
    /// `!` (id 0) for SD2, as the original OpenAI CLIP and OpenCLIP tokenizers do.
    case bundled(padToken: String)
}

/// The three weight-bearing components of a Stable Diffusion checkpoint.
public enum ModelComponent: String, CaseIterable, Sendable {
    case unet, vae, textEncoder = "text_encoder"
}

/// A Stable Diffusion 1.x/2.x checkpoint as `ParameterStore`s named as diffusers'
/// `UNet2DConditionModel`, `AutoencoderKL` and transformers' `CLIPTextModel` state dicts
/// (text encoder names always start with `text_model.`), with typed configs read from a diffusers
/// folder or inferred from the tensor shapes of a single file.
///
/// Loading reads headers only: each tensor is converted to float32 from the memory-mapped file when a model
/// takes it from its store, so building one component materialises only that component's weights
/// (`ParameterStore.materializedBytes`), and a component can be built again later from the same checkpoint.
///
/// Loading is strict: malformed files, missing components and configs contradicting the weights
/// throw `AnySizeError`; every tensor of a single file is mapped, explicitly ignored
/// (`ignoredTensors`, e.g. noise-schedule buffers and EMA copies) or listed as unknown (`unknownTensors`).
public struct StableDiffusionCheckpoint {
    /// The path given to `load`.
    public let path: String
    public let layout: CheckpointLayout
    public let family: ModelFamily
    /// The caller's override if given, else the model's own setting.
    public let predictionType: PredictionType
    /// Where `predictionType` came from, for reports (e.g. "scheduler/scheduler_config.json").
    public let predictionSource: String
    /// Canvas size the model was trained at (pixels).
    public let trainedSize: (width: Int, height: Int)
    public let unetConfig: UNetConfig
    public let vaeConfig: VAEConfig
    public let textConfig: CLIPTextConfig
    /// Raw `scheduler/scheduler_config.json` of a diffusers folder; nil for a single file, where the
    /// pipeline uses the SD1.5 default schedule with `predictionType`. `predictionType` wins over the
    /// file's `prediction_type`.
    public let schedulerConfigData: Data?
    public let tokenizer: TokenizerSource
    public let unet: ParameterStore
    public let vae: ParameterStore
    public let textEncoder: ParameterStore
    /// Number of source tensors of each stored element type, per component.
    public let dtypeCounts: [ModelComponent: [SafeTensorsDType: Int]]
    /// Known extras deliberately not loaded (original names), sorted.
    public let ignoredTensors: [String]
    /// Names that belong to no component (original names), sorted.
    public let unknownTensors: [String]

    /// The store of `component`.
    public func store(_ component: ModelComponent) -> ParameterStore {
        switch component {
        case .unet: return unet
        case .vae: return vae
        case .textEncoder: return textEncoder
        }
    }

    /// Number of float parameters per component.
    public var parameterCounts: [ModelComponent: Int] {
        Dictionary(uniqueKeysWithValues: ModelComponent.allCases.map { ($0, store($0).parameterCount) })
    }

    /// Loads a diffusers folder or a single `.safetensors` file.
    /// - Parameters:
    ///   - path: model folder or file.
    ///   - override: prediction type to use instead of the model's own (`--prediction`).
    ///   - configFolder: for a single file, a diffusers folder whose `unet/config.json` and `vae/config.json`
    ///     replace the configs inferred from the tensor shapes (as diffusers' `from_single_file(config:)`), for
    ///     settings shapes cannot show, such as GroupNorm group counts (LDM fixes 32); the trained size then
    ///     follows the folder's `sample_size`. Ignored for folders.
    public static func load(path: String, prediction override: PredictionType? = nil,
                            configFolder: String? = nil) throws -> StableDiffusionCheckpoint {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw AnySizeError(.fileNotFound, "\(path): no such file or folder; pass a diffusers model folder or a .safetensors file")
        }
        if isDirectory.boolValue {
            return try DiffusersFolder.load(path: path, prediction: override)
        }
        let ext = URL(fileURLWithPath: path).pathExtension.lowercased()
        if pickleExtensions.contains(ext) { throw pickleRefusal(path) }
        guard ext == "safetensors" else {
            throw AnySizeError(.unsupportedFormat,
                "\(path): unsupported file type '.\(ext)'; pass a diffusers model folder or a .safetensors checkpoint")
        }
        return try SingleFile.load(path: path, prediction: override, configFolder: configFolder)
    }

    /// Memberwise initializer used by the loaders.
    init(path: String, layout: CheckpointLayout, family: ModelFamily, predictionType: PredictionType,
         predictionSource: String, trainedSize: (width: Int, height: Int), unetConfig: UNetConfig,
         vaeConfig: VAEConfig, textConfig: CLIPTextConfig, schedulerConfigData: Data?, tokenizer: TokenizerSource,
         tensors: ComponentTensors) {
        self.path = path
        self.layout = layout
        self.family = family
        self.predictionType = predictionType
        self.predictionSource = predictionSource
        self.trainedSize = trainedSize
        self.unetConfig = unetConfig
        self.vaeConfig = vaeConfig
        self.textConfig = textConfig
        self.schedulerConfigData = schedulerConfigData
        self.tokenizer = tokenizer
        unet = ParameterStore(component: "unet", source: tensors.sources[.unet] ?? path, deferred: tensors.tensors[.unet] ?? [:])
        vae = ParameterStore(component: "vae", source: tensors.sources[.vae] ?? path, deferred: tensors.tensors[.vae] ?? [:])
        textEncoder = ParameterStore(component: "text_encoder", source: tensors.sources[.textEncoder] ?? path,
                                     deferred: tensors.tensors[.textEncoder] ?? [:])
        dtypeCounts = tensors.dtypeCounts
        ignoredTensors = tensors.ignored.sorted()
        unknownTensors = tensors.unknown.sorted()
    }
}

/// A checkpoint tensor known by its header (shape) and converted to float32 only when a model takes it.
struct DeferredTensor {
    let shape: [Int]
    let load: () throws -> Tensor
}

/// Tensors gathered per component while loading (deferred: headers only), with dtype counts and the names
/// left out.
struct ComponentTensors {
    var tensors: [ModelComponent: [String: DeferredTensor]] = [:]
    var sources: [ModelComponent: String] = [:]
    var dtypeCounts: [ModelComponent: [SafeTensorsDType: Int]] = [:]
    var ignored: [String] = []
    var unknown: [String] = []

    /// Stores `tensor` under the diffusers `name`, refusing a second tensor with the same name.
    mutating func add(_ tensor: DeferredTensor, as name: String, to component: ModelComponent, dtype: SafeTensorsDType,
                      origin: String) throws {
        guard tensors[component]?[name] == nil else {
            throw AnySizeError(.corruptFile,
                "\(origin): \(component.rawValue) tensor '\(name)' is stored twice; the checkpoint is malformed")
        }
        tensors[component, default: [:]][name] = tensor
        dtypeCounts[component, default: [:]][dtype, default: 0] += 1
    }

    /// Registers `name` of `file` (read as float32 when taken) under `newName` (see `add`).
    mutating func load(_ name: String, from file: SafeTensorsFile, as newName: String,
                       to component: ModelComponent) throws {
        let (dtype, shape) = try Self.header(name, in: file)
        try add(DeferredTensor(shape: shape, load: { try file.tensor(name) }), as: newName, to: component,
                dtype: dtype, origin: "\(file.path): '\(name)'")
    }

    /// The dtype and shape of `name`, refusing dtypes that cannot be read as float32 (at load, not at first use).
    static func header(_ name: String, in file: SafeTensorsFile) throws -> (SafeTensorsDType, [Int]) {
        guard let dtype = file.dtype(of: name), let shape = file.shape(of: name) else {
            throw AnySizeError(.missingTensor, "\(file.path): no tensor named '\(name)'")
        }
        guard dtype.isConvertibleToFloat32 else {
            throw AnySizeError(.unsupportedFormat,
                "\(file.path): tensor '\(name)' has dtype \(dtype.rawValue); only F32, F16, BF16, F64 (and U8 image data) are supported")
        }
        return (dtype, shape)
    }

    func names(_ component: ModelComponent) -> Set<String> { Set(tensors[component].map { Array($0.keys) } ?? []) }

    func shape(_ component: ModelComponent, _ name: String) -> [Int]? { tensors[component]?[name]?.shape }
}

extension StableDiffusionCheckpoint {
    /// File extensions of Python pickle checkpoints, which are refused.
    static let pickleExtensions: Set<String> = ["ckpt", "pt", "pth", "bin", "pkl", "pickle"]

    /// The error for a pickle checkpoint, with a working conversion command.
    static func pickleRefusal(_ path: String) -> AnySizeError {
        let out = URL(fileURLWithPath: path).deletingPathExtension().path + ".safetensors"
        return AnySizeError(.unsupportedFormat,
            "\(path): pickle checkpoints can run arbitrary code when loaded; convert it to .safetensors first "
            + "(e.g. python -c 'import torch, safetensors.torch as s; sd=torch.load(\"\(path)\", map_location=\"cpu\", weights_only=True); "
            + "sd=sd.get(\"state_dict\", sd); s.save_file({k: v.contiguous() for k, v in sd.items() if isinstance(v, torch.Tensor)}, \"\(out)\")')")
    }

    /// The UNet and VAE `config.json` of a diffusers folder (also the `configFolder` of a single file).
    static func decodeModelConfigs(folder: URL) throws -> (unet: UNetConfig, vae: VAEConfig) {
        (try decodeConfig(UNetConfig.self, at: folder.appendingPathComponent("unet/config.json")),
         try decodeConfig(VAEConfig.self, at: folder.appendingPathComponent("vae/config.json")))
    }

    /// Reads and decodes a JSON config file, with one-line errors naming the file.
    static func decodeConfig<T: Decodable>(_ type: T.Type, at url: URL) throws -> T {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw AnySizeError(.missingComponent, "\(url.path): missing or unreadable; the model folder is incomplete")
        }
        let value: T
        do {
            value = try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw AnySizeError(.corruptFile, "\(url.path): invalid config JSON (\(oneLineDescription(error))); fix or re-download the file")
        }
        try (value as? CheckedConfig)?.check(source: url.path)
        return value
    }
}
