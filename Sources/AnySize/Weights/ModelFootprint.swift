import Foundation

/// What a memory estimate needs to know about a model: the UNet and VAE configs and how many float parameters
/// the loaded models hold (each becomes 4 bytes of float32, whatever the file stores).
public struct ModelFootprint: Sendable {
    public var unet: UNetConfig
    public var vae: VAEConfig
    /// Parameters of the UNet, VAE and text encoder together.
    public var parameterCount: Int
    /// Parameters of the text encoder alone (part of `parameterCount`): the pipeline drops them after encoding.
    public var textEncoderParameterCount: Int
    /// Parameters of the UNet alone (part of `parameterCount`): held in bfloat16 with `--precision bf16`.
    public var unetParameterCount: Int

    public init(unet: UNetConfig, vae: VAEConfig, parameterCount: Int, textEncoderParameterCount: Int = 0,
                unetParameterCount: Int = 0) {
        self.unet = unet
        self.vae = vae
        self.parameterCount = parameterCount
        self.textEncoderParameterCount = textEncoderParameterCount
        self.unetParameterCount = unetParameterCount
    }

    /// The footprint of a loaded checkpoint.
    public init(_ checkpoint: StableDiffusionCheckpoint) {
        self.init(unet: checkpoint.unetConfig, vae: checkpoint.vaeConfig,
                  parameterCount: checkpoint.parameterCounts.values.reduce(0, +),
                  textEncoderParameterCount: checkpoint.textEncoder.parameterCount,
                  unetParameterCount: checkpoint.parameterCounts[.unet] ?? 0)
    }

    /// The canvas the model was trained at, in pixels: the UNet's `sample_size` times the VAE's downsampling
    /// factor (the loader's `trainedSize`).
    public var trainedSize: (width: Int, height: Int) {
        let side = unet.sampleSize << max(0, vae.blockOutChannels.count - 1)
        return (side, side)
    }

    /// float32 bytes of all parameters.
    public var weightBytes: Int { 4 * parameterCount }

    /// Bytes of all parameters as the pipeline holds them in `precision`: float32, except the UNet's in bfloat16
    /// (2 bytes) with `.bf16` (its few norm parameters and biases stay float32; counting them at 2 bytes
    /// undercounts by under 0.1 % of the UNet).
    public func weightBytes(precision: Precision) -> Int {
        precision == .bf16 ? weightBytes - 2 * unetParameterCount : weightBytes
    }

    /// float32 bytes of the text encoder's parameters.
    public var textEncoderWeightBytes: Int { 4 * textEncoderParameterCount }

    /// Reads only configs and safetensors headers (no tensor data) of a diffusers folder or a single file, so a
    /// run that cannot fit in memory can be refused before any weights load. `prediction` and `configFolder` as in
    /// `StableDiffusionCheckpoint.load` (a single SD2 file's trained size follows its prediction type). Errors are
    /// those the full load would raise for the same defects.
    public static func read(path: String, prediction override: PredictionType? = nil,
                            configFolder: String? = nil) throws -> ModelFootprint {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw AnySizeError(.fileNotFound, "\(path): no such file or folder; pass a diffusers model folder or a .safetensors file")
        }
        return isDirectory.boolValue ? try readFolder(path)
            : try readSingleFile(path, prediction: override, configFolder: configFolder)
    }

    private static func readFolder(_ path: String) throws -> ModelFootprint {
        let files = try DiffusersFolderFiles.discover(path)
        let (unet, vae) = try StableDiffusionCheckpoint.decodeModelConfigs(folder: files.root)
        _ = try files.tokenizer()  // refused here as by the loader
        var count = 0, text = 0, unetCount = 0
        for component in ModelComponent.allCases {
            for file in try files.files(component) {
                let elements = floatElements(try SafeTensorsFile(path: file.path)) { _ in true }
                count += elements
                if component == .textEncoder { text += elements }
                if component == .unet { unetCount += elements }
            }
        }
        return ModelFootprint(unet: unet, vae: vae, parameterCount: count, textEncoderParameterCount: text,
                              unetParameterCount: unetCount)
    }

    private static func readSingleFile(_ path: String, prediction override: PredictionType?,
                                       configFolder: String?) throws -> ModelFootprint {
        let file = try SafeTensorsFile(path: path)
        let names = file.names
        func component(_ prefix: String) -> SingleFileConfigs.Component {
            SingleFileConfigs.Component(file: file, prefix: prefix, source: path)
        }
        let unetPart = component(CheckpointKeys.unetPrefix), vaePart = component(CheckpointKeys.vaePrefix)
        guard !unetPart.names.isEmpty, !vaePart.names.isEmpty else {
            throw AnySizeError(.notAModel,
                "\(path): no UNet (model.diffusion_model.*) or VAE (first_stage_model.*) tensors; not a full Stable Diffusion 1.x/2.x checkpoint")
        }
        let family: ModelFamily = names.contains { $0.hasPrefix(CheckpointKeys.openCLIPPrefix) } ? .sd2 : .sd1
        var unet: UNetConfig, vae: VAEConfig
        if let configFolder {
            (unet, vae) = try StableDiffusionCheckpoint.decodeModelConfigs(folder: URL(fileURLWithPath: configFolder))
        } else {
            let yaml = try LDMConfigFile(adjacentTo: path)
            unet = try SingleFileConfigs.unet(unetPart, family: family, yaml: yaml)
            vae = try SingleFileConfigs.vae(vaePart, yaml: yaml)
            // The trained size as `SingleFile.load` sets it (768 px for an SD2 v-prediction file).
            let side = SingleFile.trainedSide(family: family,
                                              prediction: try SingleFile.prediction(path: path, yaml: yaml, override: override).type)
            unet.sampleSize = side >> max(0, vae.blockOutChannels.count - 1)
            vae.sampleSize = side
        }
        // Count what `SingleFile.load` keeps: SD2 files carry an open_clip block the text encoder never uses.
        let lastBlock = family == .sd2 ? try SingleFileConfigs.openCLIP(component(CheckpointKeys.openCLIPPrefix)).lastBlock : nil
        let layout = CheckpointKeys.Layout(unetLayersPerBlock: unet.layersPerBlock, vaeLevels: vae.blockOutChannels.count,
                                           openCLIPLastBlock: lastBlock)
        let count = floatElements(file) { name in
            switch CheckpointKeys.target(of: name, layout: layout) {
            case .unet, .vae, .textEncoder, .fusedQKV: return true
            default: return false
            }
        }
        let text = floatElements(file) { name in
            switch CheckpointKeys.target(of: name, layout: layout) {
            case .textEncoder, .fusedQKV: return true
            default: return false
            }
        }
        let unetCount = floatElements(file) { name in
            if case .unet = CheckpointKeys.target(of: name, layout: layout) { return true }
            return false
        }
        return ModelFootprint(unet: unet, vae: vae, parameterCount: count, textEncoderParameterCount: text,
                              unetParameterCount: unetCount)
    }

    /// Elements of the float tensors whose names pass `include`.
    private static func floatElements(_ file: SafeTensorsFile, include: (String) -> Bool) -> Int {
        file.entries.reduce(0) { sum, item in
            item.value.dtype.isConvertibleToFloat32 && include(item.key) ? sum + item.value.elementCount : sum
        }
    }
}
