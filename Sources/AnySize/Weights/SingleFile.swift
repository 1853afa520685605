import Foundation

/// Loads an original-format (CompVis / A1111) single `.safetensors` checkpoint: `model.diffusion_model.*`
/// (UNet), `first_stage_model.*` (VAE), and `cond_stage_model.transformer.*` (SD1, transformers CLIP) or
/// `cond_stage_model.model.*` (SD2, OpenCLIP). Names are mapped by `CheckpointKeys`; configs are inferred
/// by `SingleFileConfigs`.
enum SingleFile {
    static func load(path: String, prediction override: PredictionType?, configFolder: String?) throws -> StableDiffusionCheckpoint {
        let file = try SafeTensorsFile(path: path)
        let names = file.names
        func component(_ prefix: String) -> SingleFileConfigs.Component {
            SingleFileConfigs.Component(file: file, prefix: prefix, source: path)
        }
        let unetPart = component(CheckpointKeys.unetPrefix)
        let vaePart = component(CheckpointKeys.vaePrefix)
        let clipPart = component(CheckpointKeys.clipPrefix)
        let openCLIPPart = component(CheckpointKeys.openCLIPPrefix)
        guard !names.contains(where: { $0.hasPrefix("conditioner.embedders.") }) else {
            throw AnySizeError(.unsupportedConfig, "\(path): an SDXL checkpoint (conditioner.embedders.*); use a Stable Diffusion 1.x or 2.x model")
        }
        guard !unetPart.names.isEmpty else {
            throw AnySizeError(.notAModel,
                "\(path): no UNet tensors (model.diffusion_model.*); not a Stable Diffusion 1.x/2.x checkpoint (SDXL, LoRA, VAE-only and embedding files are not supported)")
        }
        guard !vaePart.names.isEmpty else {
            throw AnySizeError(.missingComponent,
                "\(path): no VAE tensors (first_stage_model.*); use a full checkpoint that includes the VAE")
        }
        let family: ModelFamily
        switch (clipPart.names.isEmpty, openCLIPPart.names.isEmpty) {
        case (false, true): family = .sd1
        case (true, false): family = .sd2
        case (true, true):
            throw AnySizeError(.missingComponent,
                "\(path): no text encoder tensors (cond_stage_model.transformer.* for SD1 or cond_stage_model.model.* for SD2); use a full checkpoint")
        case (false, false):
            throw AnySizeError(.unsupportedConfig, "\(path): holds both an SD1 (CLIP) and an SD2 (OpenCLIP) text encoder; the checkpoint is malformed")
        }

        let yaml = try LDMConfigFile(adjacentTo: path)
        let (predictionType, predictionSource) = try prediction(path: path, yaml: yaml, override: override)

        var unetConfig = try SingleFileConfigs.unet(unetPart, family: family, yaml: yaml)
        var vaeConfig = try SingleFileConfigs.vae(vaePart, yaml: yaml)
        let textConfig: CLIPTextConfig
        var lastOpenCLIPBlock: Int?
        if family == .sd1 {
            let normalised = SingleFileConfigs.Component(
                names: clipPart.names.map(CheckpointKeys.clipTextModelName),
                shape: { name in
                    file.shape(of: CheckpointKeys.clipPrefix + name)
                        ?? file.shape(of: CheckpointKeys.clipPrefix + String(name.dropFirst("text_model.".count)))
                },
                source: path)
            textConfig = try SingleFileConfigs.clip(normalised)
        } else {
            let inferred = try SingleFileConfigs.openCLIP(openCLIPPart)
            textConfig = inferred.config
            lastOpenCLIPBlock = inferred.lastBlock
        }
        var side = trainedSide(family: family, prediction: predictionType)
        if let configFolder {
            (unetConfig, vaeConfig) = try StableDiffusionCheckpoint.decodeModelConfigs(folder: URL(fileURLWithPath: configFolder))
            side = unetConfig.sampleSize << max(0, vaeConfig.blockOutChannels.count - 1)
        } else {
            let vaeScale = 1 << (vaeConfig.blockOutChannels.count - 1)
            unetConfig.sampleSize = side / vaeScale
            vaeConfig.sampleSize = side
        }

        let layout = CheckpointKeys.Layout(unetLayersPerBlock: unetConfig.layersPerBlock,
                                           vaeLevels: vaeConfig.blockOutChannels.count,
                                           openCLIPLastBlock: lastOpenCLIPBlock)
        var tensors = ComponentTensors()
        for component in ModelComponent.allCases { tensors.sources[component] = path }
        for name in names {
            switch CheckpointKeys.target(of: name, layout: layout) {
            case .unet(let newName):
                try tensors.load(name, from: file, as: newName, to: .unet)
            case .vae(let newName, let linearFromConv):
                try loadVAE(name, as: newName, linearFromConv: linearFromConv, from: file, into: &tensors)
            case .textEncoder(let newName):
                try tensors.load(name, from: file, as: newName, to: .textEncoder)
            case .fusedQKV(let attention, let parameter):
                try splitQKV(name, attention: attention, parameter: parameter, hidden: textConfig.hiddenSize,
                             from: file, into: &tensors)
            case .ignored:
                tensors.ignored.append(name)
            case .unknown:
                tensors.unknown.append(name)
            }
        }
        try CheckpointValidation.validate(tensors, unet: unetConfig, vae: vaeConfig, text: textConfig,
                                          configSource: configFolder.map { "\($0) (unet and vae config.json)" } ?? "\(path) (configs inferred from shapes)")
        return StableDiffusionCheckpoint(
            path: path, layout: .singleFile, family: family, predictionType: predictionType,
            predictionSource: predictionSource, trainedSize: (side, side), unetConfig: unetConfig, vaeConfig: vaeConfig,
            textConfig: textConfig, schedulerConfigData: nil,
            tokenizer: .bundled(padToken: family == .sd1 ? "<|endoftext|>" : "!"), tensors: tensors)
    }

    /// The prediction type of a single file and where it came from: the override, else the adjacent LDM yaml's
    /// `model.params.parameterization` (`eps` or `v`; absent = epsilon), else epsilon.
    /// - Throws: `unsupportedConfig` for any other parameterization (x0 models are not supported).
    static func prediction(path: String, yaml: LDMConfigFile?, override: PredictionType?) throws
        -> (type: PredictionType, source: String) {
        if let yaml, !yaml.values.keys.contains(where: { $0.hasPrefix("model.") }) {
            throw AnySizeError(.unsupportedConfig,
                "\(yaml.path): not an LDM config (no model: section with target and params); use the model's own .yaml "
                + "(e.g. Stability's v2-inference-v.yaml) or remove the file")
        }
        let yamlPrediction = yaml?.string("model.params.parameterization")
        if let yaml, let value = yamlPrediction, !["eps", "epsilon", "v"].contains(value) {
            throw AnySizeError(.unsupportedConfig,
                "\(yaml.path): model.params.parameterization '\(value)' is not supported; use eps or v (or pass --prediction)")
        }
        if let override { return (override, "override") }
        let type: PredictionType = yamlPrediction == "v" ? .vPrediction : .epsilon
        guard let yaml else {
            return (type, "default, no \(URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent).yaml next to the file")
        }
        let file = URL(fileURLWithPath: yaml.path).lastPathComponent
        return (type, yamlPrediction.map { "\(file): parameterization \"\($0)\"" } ?? "\(file): no parameterization (epsilon)")
    }

    /// The trained side of a single file without a config folder: SD1 512 (epsilon); SD2 768 with v-prediction,
    /// 512 with epsilon (2.x-base).
    static func trainedSide(family: ModelFamily, prediction: PredictionType) -> Int {
        family == .sd2 && prediction == .vPrediction ? 768 : 512
    }

    /// VAE mid-block attention projections are 1x1 convs `[C, C, 1, 1]` in the original; diffusers stores `[C, C]`.
    private static func loadVAE(_ name: String, as newName: String, linearFromConv: Bool, from file: SafeTensorsFile,
                                into tensors: inout ComponentTensors) throws {
        let (dtype, shape) = try ComponentTensors.header(name, in: file)
        guard linearFromConv, shape.count > 2 else {
            try tensors.load(name, from: file, as: newName, to: .vae)
            return
        }
        guard shape.count == 4, shape[2] == 1, shape[3] == 1 else {
            throw AnySizeError(.shapeMismatch,
                "\(file.path): tensor '\(name)' has shape \(shape); expected a 1x1 convolution [C, C, 1, 1]")
        }
        let linear = [shape[0], shape[1]]
        let deferred = DeferredTensor(shape: linear, load: { try file.tensor(name).reshaped(linear) })
        try tensors.add(deferred, as: newName, to: .vae, dtype: dtype, origin: "\(file.path): '\(name)'")
    }

    /// OpenCLIP's fused `[3D, D]` / `[3D]` attention input projection, split into q, k, v (rows 0..<D, D..<2D, 2D..<3D).
    /// Each part reads the fused tensor when taken and keeps its third.
    private static func splitQKV(_ name: String, attention: String, parameter: String, hidden: Int,
                                 from file: SafeTensorsFile, into tensors: inout ComponentTensors) throws {
        let (dtype, shape) = try ComponentTensors.header(name, in: file)
        let expected = parameter == "weight" ? [3 * hidden, hidden] : [3 * hidden]
        guard shape == expected else {
            throw AnySizeError(.shapeMismatch,
                "\(file.path): tensor '\(name)' has shape \(shape), expected \(expected) for a \(hidden)-wide text encoder")
        }
        let partShape = parameter == "weight" ? [hidden, hidden] : [hidden]
        let part = partShape.reduce(1, *)
        for (index, projection) in ["q_proj", "k_proj", "v_proj"].enumerated() {
            let deferred = DeferredTensor(shape: partShape, load: {
                let fused = try file.tensor(name)
                let out = Tensor(zeros: partShape)
                out.pointer.update(from: fused.pointer + index * part, count: part)
                return out
            })
            try tensors.add(deferred, as: "\(attention).\(projection).\(parameter)", to: .textEncoder, dtype: dtype,
                            origin: "\(file.path): '\(name)'")
        }
    }
}
