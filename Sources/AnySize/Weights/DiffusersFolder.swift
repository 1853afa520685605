import Foundation

/// Loads a diffusers pipeline folder: `model_index.json`, `unet/`, `vae/`, `text_encoder/` (each with
/// `config.json` and safetensors weights: plain, `*.fp16.safetensors` variant, or sharded with a
/// `*.safetensors.index.json`), `tokenizer/` and `scheduler/scheduler_config.json`.
enum DiffusersFolder {
    static func load(path: String, prediction override: PredictionType?) throws -> StableDiffusionCheckpoint {
        let root = URL(fileURLWithPath: path)
        let fm = FileManager.default
        let modelIndex = root.appendingPathComponent("model_index.json")
        guard fm.fileExists(atPath: modelIndex.path) else {
            throw AnySizeError(.notAModel,
                "\(path): not a diffusers model folder (no model_index.json); pass a folder with model_index.json, unet/, vae/, text_encoder/, tokenizer/ and scheduler/, or a .safetensors file")
        }
        let pipelineClass = try jsonObject(at: modelIndex).object["_class_name"] as? String ?? ""
        guard !pipelineClass.hasPrefix("StableDiffusionXL"), !pipelineClass.hasPrefix("StableDiffusion3") else {
            throw AnySizeError(.unsupportedConfig, "\(modelIndex.path): \(pipelineClass) models are not supported; use a Stable Diffusion 1.x or 2.x model")
        }
        for folder in ["unet", "vae", "text_encoder", "tokenizer", "scheduler"] {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: root.appendingPathComponent(folder).path, isDirectory: &isDirectory),
                  isDirectory.boolValue else {
                throw AnySizeError(.missingComponent,
                    "\(root.appendingPathComponent(folder).path): missing; the model folder is incomplete, download the \(folder)/ folder too")
            }
        }

        let unetConfigURL = root.appendingPathComponent("unet/config.json")
        let unetConfig = try StableDiffusionCheckpoint.decodeConfig(UNetConfig.self, at: unetConfigURL)
        guard unetConfig.additionEmbedType == nil, unetConfig.classEmbedType == nil else {
            throw AnySizeError(.unsupportedConfig,
                "\(unetConfigURL.path): a UNet with class or addition embeddings (SDXL, upscaler, unCLIP) is not supported; use a Stable Diffusion 1.x or 2.x model")
        }
        let vaeConfig = try StableDiffusionCheckpoint.decodeConfig(VAEConfig.self, at: root.appendingPathComponent("vae/config.json"))
        let textConfig = try StableDiffusionCheckpoint.decodeConfig(CLIPTextConfig.self, at: root.appendingPathComponent("text_encoder/config.json"))

        let schedulerURL = root.appendingPathComponent("scheduler/scheduler_config.json")
        let scheduler = try jsonObject(at: schedulerURL)
        let predictionName = scheduler.object["prediction_type"] as? String ?? "epsilon"
        guard let ownPrediction = PredictionType(name: predictionName) else {
            throw AnySizeError(.unsupportedConfig,
                "\(schedulerURL.path): prediction_type '\(predictionName)' is not supported (epsilon or v_prediction)")
        }

        let tokenizer = root.appendingPathComponent("tokenizer")
        for file in ["vocab.json", "merges.txt"] where !fm.fileExists(atPath: tokenizer.appendingPathComponent(file).path) {
            throw AnySizeError(.missingComponent,
                "\(tokenizer.appendingPathComponent(file).path): missing; the tokenizer folder is incomplete")
        }

        var tensors = ComponentTensors()
        try loadWeights(root.appendingPathComponent("unet"), baseName: "diffusion_pytorch_model", component: .unet,
                        into: &tensors) { .keep($0) }
        try loadWeights(root.appendingPathComponent("vae"), baseName: "diffusion_pytorch_model", component: .vae,
                        into: &tensors) { .keep(CheckpointKeys.currentDiffusersVAEName($0)) }
        try loadWeights(root.appendingPathComponent("text_encoder"), baseName: "model", component: .textEncoder,
                        into: &tensors) { name in
            CheckpointKeys.isIgnorableTextEncoderName(name) ? .ignore : .keep(CheckpointKeys.clipTextModelName(name))
        }
        try CheckpointValidation.validate(tensors, unet: unetConfig, vae: vaeConfig, text: textConfig,
                                          configSource: "\(path) (config.json files)")

        let family: ModelFamily = unetConfig.crossAttentionDim == 1024 || unetConfig.useLinearProjection ? .sd2 : .sd1
        let vaeScale = 1 << max(0, vaeConfig.blockOutChannels.count - 1)
        let side = unetConfig.sampleSize * vaeScale
        return StableDiffusionCheckpoint(
            path: path, layout: .diffusersFolder, family: family, predictionType: override ?? ownPrediction,
            predictionSource: override == nil ? "scheduler/scheduler_config.json" : "override",
            trainedSize: (side, side), unetConfig: unetConfig, vaeConfig: vaeConfig, textConfig: textConfig,
            schedulerConfigData: scheduler.data, tokenizer: .folder(tokenizer), tensors: tensors)
    }

    /// What to do with one stored name.
    private enum Rename { case keep(String), ignore }

    /// Finds and loads a component's weights: `B.safetensors`, else the sharded `B.safetensors.index.json`,
    /// else the `fp16` variants of both; pickle files (`.bin`) are refused.
    private static func loadWeights(_ folder: URL, baseName: String, component: ModelComponent,
                                    into tensors: inout ComponentTensors, rename: (String) -> Rename) throws {
        let fm = FileManager.default
        tensors.sources[component] = folder.path
        let candidates = ["\(baseName).safetensors", "\(baseName).safetensors.index.json",
                          "\(baseName).fp16.safetensors", "\(baseName).safetensors.index.fp16.json"]
        guard let found = candidates.first(where: { fm.fileExists(atPath: folder.appendingPathComponent($0).path) }) else {
            let pickles = ["\(baseName).bin", "\(baseName).fp16.bin", "pytorch_model.bin", "\(baseName).ckpt"]
            if let pickle = pickles.first(where: { fm.fileExists(atPath: folder.appendingPathComponent($0).path) }) {
                throw StableDiffusionCheckpoint.pickleRefusal(folder.appendingPathComponent(pickle).path)
            }
            throw AnySizeError(.missingComponent,
                "\(folder.path): no weights (expected \(baseName).safetensors); the model folder is incomplete")
        }
        let url = folder.appendingPathComponent(found)
        if found.hasSuffix(".json") {
            try loadShards(index: url, component: component, into: &tensors, rename: rename)
            return
        }
        let file = try SafeTensorsFile(path: url.path)
        for name in file.names {
            try store(name, from: file, component: component, into: &tensors, rename: rename)
        }
    }

    private static func store(_ name: String, from file: SafeTensorsFile, component: ModelComponent,
                              into tensors: inout ComponentTensors, rename: (String) -> Rename) throws {
        switch rename(name) {
        case .keep(let newName): try tensors.load(name, from: file, as: newName, to: component)
        case .ignore: tensors.ignored.append("\(component.rawValue)/\(name)")
        }
    }

    /// A sharded checkpoint: `{"weight_map": {"tensor name": "shard file name", ...}}`.
    private static func loadShards(index: URL, component: ModelComponent, into tensors: inout ComponentTensors,
                                   rename: (String) -> Rename) throws {
        struct ShardIndex: Decodable {
            let weightMap: [String: String]
            enum CodingKeys: String, CodingKey { case weightMap = "weight_map" }
        }
        let map = try StableDiffusionCheckpoint.decodeConfig(ShardIndex.self, at: index).weightMap
        for shard in Set(map.values).sorted() {
            guard !shard.contains("/"), !shard.hasPrefix(".") else {
                throw AnySizeError(.corruptFile, "\(index.path): shard name '\(shard)' must be a file name in the same folder")
            }
            let file = try SafeTensorsFile(path: index.deletingLastPathComponent().appendingPathComponent(shard).path)
            let listed = Set(map.filter { $0.value == shard }.keys)
            for name in listed.sorted() {
                guard file.dtype(of: name) != nil else {
                    throw AnySizeError(.missingTensor,
                        "\(file.path): tensor '\(name)' listed in \(index.lastPathComponent) is missing; the shard is incomplete")
                }
                try store(name, from: file, component: component, into: &tensors, rename: rename)
            }
            tensors.unknown += file.names.filter { !listed.contains($0) }.map { "\(component.rawValue)/\(shard): \($0)" }
        }
    }

    /// A JSON object file, with its raw bytes.
    private static func jsonObject(at url: URL) throws -> (object: [String: Any], data: Data) {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw AnySizeError(.missingComponent, "\(url.path): missing or unreadable; the model folder is incomplete")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw AnySizeError(.corruptFile, "\(url.path): not a JSON object; fix or re-download the file")
        }
        return (object, data)
    }
}
