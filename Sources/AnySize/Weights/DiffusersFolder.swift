import Foundation

/// Loads a diffusers pipeline folder: `model_index.json`, `unet/`, `vae/`, `text_encoder/` (each with
/// `config.json` and safetensors weights: plain, `*.fp16.safetensors` variant, or sharded with a
/// `*.safetensors.index.json`), `tokenizer/` (`tokenizer.json`, or `vocab.json` + `merges.txt`) and
/// `scheduler/scheduler_config.json`, as `DiffusersFolderFiles` finds them.
enum DiffusersFolder {
    static func load(path: String, prediction override: PredictionType?) throws -> StableDiffusionCheckpoint {
        let files = try DiffusersFolderFiles.discover(path)
        let unetConfigURL = files.unetConfig
        let unetConfig = try StableDiffusionCheckpoint.decodeConfig(UNetConfig.self, at: unetConfigURL)
        guard unetConfig.additionEmbedType == nil, unetConfig.classEmbedType == nil else {
            throw AnySizeError(.unsupportedConfig,
                "\(unetConfigURL.path): a UNet with class or addition embeddings (SDXL, upscaler, unCLIP) is not supported; use a Stable Diffusion 1.x or 2.x model")
        }
        let vaeConfig = try StableDiffusionCheckpoint.decodeConfig(VAEConfig.self, at: files.vaeConfig)
        let textConfig = try StableDiffusionCheckpoint.decodeConfig(CLIPTextConfig.self, at: files.textConfig)

        let schedulerURL = files.schedulerConfig
        let scheduler = try jsonObject(at: schedulerURL)
        try SchedulerConfig.decode(json: scheduler.data, source: schedulerURL.path).checkValues(source: schedulerURL.path)
        let predictionName = scheduler.object["prediction_type"] as? String ?? "epsilon"
        guard let ownPrediction = PredictionType(name: predictionName) else {
            throw AnySizeError(.unsupportedConfig,
                "\(schedulerURL.path): prediction_type '\(predictionName)' is not supported (epsilon or v_prediction)")
        }

        _ = try files.tokenizer()  // present in one of its two forms

        var tensors = ComponentTensors()
        try loadWeights(files, component: .unet, into: &tensors) { .keep($0) }
        try loadWeights(files, component: .vae, into: &tensors) { .keep(CheckpointKeys.currentDiffusersVAEName($0)) }
        try loadWeights(files, component: .textEncoder, into: &tensors) { name in
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
            schedulerConfigData: scheduler.data, tokenizer: .folder(files.tokenizerFolder), tensors: tensors)
    }

    /// What to do with one stored name.
    private enum Rename { case keep(String), ignore }

    /// Loads a component's weights as `DiffusersFolderFiles` found them (one file or shards).
    private static func loadWeights(_ files: DiffusersFolderFiles, component: ModelComponent,
                                    into tensors: inout ComponentTensors, rename: (String) -> Rename) throws {
        tensors.sources[component] = files.root.appendingPathComponent(component.rawValue).path
        switch try files.weights(component) {
        case .sharded(let index):
            try loadShards(index: index, component: component, into: &tensors, rename: rename)
        case .single(let url):
            let file = try SafeTensorsFile(path: url.path)
            for name in file.names {
                try store(name, from: file, component: component, into: &tensors, rename: rename)
            }
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
        let map = try DiffusersFolderFiles.shardMap(index)
        for shard in Set(map.values).sorted() {
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
