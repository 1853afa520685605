import AnySize
import Foundation
import XCTest

/// Loading the tiny fixture models (tools/make_fixtures.py): diffusers folders, and single files that are models
/// of their own (tools/single_file_fixtures.py) whose key map ModelParityTests checks against diffusers' converter.
final class FixtureCheckpointTests: XCTestCase {
    private typealias Support = WeightsTestSupport

    static var fixtures: URL {
        get throws {
            guard let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
                throw AnySizeError(.fileNotFound, "test bundle has no Fixtures folder")
            }
            return url
        }
    }

    static func fixture(_ name: String) throws -> String { try fixtures.appendingPathComponent(name).path }

    /// Same names and bit-identical values.
    private func assertIdentical(_ a: ParameterStore, _ b: ParameterStore, _ label: String,
                                 file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(Set(a.names).subtracting(b.names).sorted(), [], "\(label): names only in the first", file: file, line: line)
        XCTAssertEqual(Set(b.names).subtracting(a.names).sorted(), [], "\(label): names only in the second", file: file, line: line)
        var differing: [String] = []
        for name in Set(a.names).intersection(b.names).sorted() {
            let x = try a.take(name), y = try b.take(name)
            if x.shape != y.shape || x.scalars.map(\.bitPattern) != y.scalars.map(\.bitPattern) { differing.append(name) }
        }
        XCTAssertEqual(differing, [], "\(label): tensors differ", file: file, line: line)
    }

    /// The diffusers configs tools/single_file_fixtures.py built the single file `family` from (index.json).
    private func generatedConfigs(_ family: String) throws -> [String: [String: Any]] {
        let models = try XCTUnwrap(try Fixtures.referenceIndex()["models"] as? [String: [String: Any]])
        return try XCTUnwrap(models[family]?["single_file_configs"] as? [String: [String: Any]], family)
    }

    /// The single files have what every SD file implies (32 GroupNorm groups, text heads 64 wide) and load and
    /// build with nothing beside them (generation: GenerationParityTests' single-file cases).
    func testSingleFilesLoadAlone() throws {
        for family in ["tiny-sd1", "tiny-sd2"] {
            let single = try StableDiffusionCheckpoint.load(path: try Self.fixture("\(family).safetensors"))
            XCTAssertEqual(single.unetConfig.normNumGroups, 32, family)
            XCTAssertEqual(single.vaeConfig.normNumGroups, 32, family)
            XCTAssertEqual(single.textConfig.hiddenSize / single.textConfig.numAttentionHeads, 64, family)
            XCTAssertEqual(single.textConfig.vocabSize, 49408, family)
            XCTAssertEqual(Set(single.unetConfig.blockOutChannels).count, single.unetConfig.blockOutChannels.count,
                           "\(family): levels of one width would let a key mapped to the wrong level load")
            XCTAssertEqual(single.dtypeCounts[.unet], [.f16: single.unet.names.count])
            _ = try UNet2DConditionModel(config: single.unetConfig, parameters: single.unet)
            _ = try AutoencoderKL(config: single.vaeConfig, parameters: single.vae)
            _ = try CLIPTextModel(config: single.textConfig, parameters: single.textEncoder)
            XCTAssertEqual(single.unet.unused, [], family)
            XCTAssertEqual(single.vae.unused, [], family)
            XCTAssertEqual(single.textEncoder.unused, [], family)
        }
    }

    /// The configs inferred from a single file's shapes (and yaml) equal the ones the file was generated from.
    func testInferredConfigsMatchTheGeneratedModels() throws {
        for family in ["tiny-sd1", "tiny-sd2"] {
            let configs = try generatedConfigs(family)
            let (unet, vae, text) = (configs["unet"] ?? [:], configs["vae"] ?? [:], configs["text_encoder"] ?? [:])
            let single = try StableDiffusionCheckpoint.load(path: try Self.fixture("\(family).safetensors"))
            let u = single.unetConfig
            XCTAssertEqual(u.sampleSize, unet["sample_size"] as? Int, family)
            XCTAssertEqual(u.blockOutChannels, unet["block_out_channels"] as? [Int], family)
            XCTAssertEqual(u.layersPerBlock, unet["layers_per_block"] as? Int, family)
            XCTAssertEqual(u.downBlockTypes, unet["down_block_types"] as? [String], family)
            XCTAssertEqual(u.upBlockTypes, unet["up_block_types"] as? [String], family)
            XCTAssertEqual(u.midBlockType, unet["mid_block_type"] as? String, family)
            XCTAssertEqual(u.crossAttentionDim, unet["cross_attention_dim"] as? Int, family)
            XCTAssertEqual(u.normNumGroups, unet["norm_num_groups"] as? Int, family)
            XCTAssertEqual(u.useLinearProjection, unet["use_linear_projection"] as? Bool, family)
            XCTAssertEqual(u.upcastAttention, unet["upcast_attention"] as? Bool, family)
            // diffusers' attention_head_dim holds head counts (one, or one per level).
            let levels = u.blockOutChannels.count
            let heads = (unet["attention_head_dim"] as? [Int]) ?? (unet["attention_head_dim"] as? Int).map { Array(repeating: $0, count: levels) }
            XCTAssertEqual((0 ..< levels).map(u.heads), heads, family)

            let v = single.vaeConfig
            XCTAssertEqual(v.blockOutChannels, vae["block_out_channels"] as? [Int], family)
            XCTAssertEqual(v.layersPerBlock, vae["layers_per_block"] as? Int, family)
            XCTAssertEqual(v.normNumGroups, vae["norm_num_groups"] as? Int, family)
            XCTAssertEqual(v.latentChannels, vae["latent_channels"] as? Int, family)
            XCTAssertEqual(v.sampleSize, vae["sample_size"] as? Int, family)
            XCTAssertEqual(Double(v.scalingFactor), try XCTUnwrap(vae["scaling_factor"] as? Double), accuracy: 1e-9, family)

            let t = single.textConfig
            XCTAssertEqual(t.vocabSize, text["vocab_size"] as? Int, family)
            XCTAssertEqual(t.hiddenSize, text["hidden_size"] as? Int, family)
            XCTAssertEqual(t.intermediateSize, text["intermediate_size"] as? Int, family)
            XCTAssertEqual(t.numHiddenLayers, text["num_hidden_layers"] as? Int, family)
            XCTAssertEqual(t.numAttentionHeads, text["num_attention_heads"] as? Int, family)
            XCTAssertEqual(t.maxPositionEmbeddings, text["max_position_embeddings"] as? Int, family)
            XCTAssertEqual(t.hiddenAct, text["hidden_act"] as? String, family)
        }
    }

    /// A config folder (diffusers' `from_single_file(config:)`) overrides what shapes cannot tell, group counts
    /// included; configs that contradict the weights are refused, and a group count that does not divide the
    /// widths is refused at load (so `info` fails where `generate` would).
    func testConfigFolderForSingleFile() throws {
        let temp = try Support.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: temp) }
        func configFolder(_ family: String, groups: Int) throws -> String {
            let folder = temp.appendingPathComponent("\(family)-\(groups)")
            for component in ["unet", "vae"] {
                var config = try generatedConfigs(family)[component] ?? [:]
                config["norm_num_groups"] = groups
                let dir = folder.appendingPathComponent(component)
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
            }
            return folder.path
        }
        for family in ["tiny-sd1", "tiny-sd2"] {
            let path = try Self.fixture("\(family).safetensors")
            let plain = try StableDiffusionCheckpoint.load(path: path)
            let single = try StableDiffusionCheckpoint.load(path: path, configFolder: try configFolder(family, groups: 16))
            XCTAssertEqual(single.unetConfig.normNumGroups, 16, family)
            XCTAssertEqual(single.vaeConfig.normNumGroups, 16, family)
            XCTAssertEqual(single.unetConfig.blockOutChannels, plain.unetConfig.blockOutChannels, family)
            XCTAssertEqual((0 ..< 2).map(single.unetConfig.heads), (0 ..< 2).map(plain.unetConfig.heads), family)
            XCTAssertEqual(single.trainedSize.width, plain.trainedSize.width, family)
            try assertIdentical(plain.unet, single.unet, "\(family) unet with config folder")
            try assertIdentical(plain.vae, single.vae, "\(family) vae with config folder")

            let odd = try configFolder(family, groups: 24)
            assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: path, configFolder: odd),
                                     mentioning: ["unet/config.json", "norm_num_groups = 24", "a divisor of every channel count"],
                                     "\(family) with 24 groups")
        }
        let sd1Folder = try Self.fixture("tiny-sd1")
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: try Self.fixture("tiny-sd2.safetensors"), configFolder: sd1Folder),
                                 mentioning: ["tiny-sd1 (unet and vae config.json)", "the config does not match the weights"],
                                 "sd1 folder config for sd2 weights")
        let missing = "/nonexistent/config-folder"
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: try Self.fixture("tiny-sd1.safetensors"), configFolder: missing),
                                 mentioning: ["\(missing)/unet/config.json", "missing"], "missing config folder")
    }

    func testFamilyPredictionAndTrainedSize() throws {
        struct Expected { let name: String; let layout: CheckpointLayout; let family: ModelFamily; let prediction: PredictionType; let side: Int }
        let cases = [
            Expected(name: "tiny-sd1", layout: .diffusersFolder, family: .sd1, prediction: .epsilon, side: 512),
            Expected(name: "tiny-sd1.safetensors", layout: .singleFile, family: .sd1, prediction: .epsilon, side: 512),
            Expected(name: "tiny-sd2", layout: .diffusersFolder, family: .sd2, prediction: .vPrediction, side: 768),
            Expected(name: "tiny-sd2.safetensors", layout: .singleFile, family: .sd2, prediction: .vPrediction, side: 768),
        ]
        for e in cases {
            let path = try Self.fixture(e.name)
            let c = try StableDiffusionCheckpoint.load(path: path)
            XCTAssertEqual(c.layout, e.layout, e.name)
            XCTAssertEqual(c.family, e.family, e.name)
            XCTAssertEqual(c.predictionType, e.prediction, e.name)
            XCTAssertEqual(c.trainedSize.width, e.side, e.name)
            XCTAssertEqual(c.trainedSize.height, e.side, e.name)
            if e.layout == .diffusersFolder {
                XCTAssertEqual(c.tokenizer, .folder(URL(fileURLWithPath: path).appendingPathComponent("tokenizer")), e.name)
                let scheduler = try XCTUnwrap(c.schedulerConfigData, e.name)
                let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: scheduler) as? [String: Any])
                XCTAssertEqual(json["prediction_type"] as? String, e.prediction.rawValue, e.name)
                XCTAssertEqual(c.ignoredTensors, [], e.name)
            } else {
                XCTAssertEqual(c.tokenizer, .bundled(padToken: e.family == .sd1 ? "<|endoftext|>" : "!"), e.name)
                XCTAssertNil(c.schedulerConfigData, e.name)
            }
            XCTAssertEqual(c.unknownTensors, [], e.name)
        }
    }

    /// `--prediction` wins; an SD2 single file without its yaml is epsilon at 512 (2.x-base).
    func testPredictionOverride() throws {
        let v = try StableDiffusionCheckpoint.load(path: try Self.fixture("tiny-sd2.safetensors"), prediction: .epsilon)
        XCTAssertEqual(v.predictionType, .epsilon)
        XCTAssertEqual(v.predictionSource, "override")
        XCTAssertEqual(v.trainedSize.width, 512)
        let folder = try StableDiffusionCheckpoint.load(path: try Self.fixture("tiny-sd2"), prediction: .epsilon)
        XCTAssertEqual(folder.predictionType, .epsilon)
        XCTAssertEqual(folder.trainedSize.width, 768)
        let sd1 = try StableDiffusionCheckpoint.load(path: try Self.fixture("tiny-sd1.safetensors"), prediction: .vPrediction)
        XCTAssertEqual(sd1.predictionType, .vPrediction)
        XCTAssertEqual(sd1.trainedSize.width, 512)

        let temp = try Support.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: temp) }
        let bare = temp.appendingPathComponent("sd2-base.safetensors")
        try FileManager.default.copyItem(atPath: try Self.fixture("tiny-sd2.safetensors"), toPath: bare.path)
        // Without the yaml the heads fall back to the SD2 rule (64-channel heads): 1 head per 64 channels, at
        // least 1 (the yaml gives 32-channel heads: 1 and 2).
        let base = try StableDiffusionCheckpoint.load(path: bare.path)
        XCTAssertEqual(base.predictionType, .epsilon)
        XCTAssertEqual(base.trainedSize.width, 512)
        XCTAssertEqual((0 ..< 2).map(base.unetConfig.heads), [1, 1])
        let withYAML = try StableDiffusionCheckpoint.load(path: try Self.fixture("tiny-sd2.safetensors"))
        XCTAssertEqual((0 ..< 2).map(withYAML.unetConfig.heads), [1, 2])
        XCTAssertTrue(base.predictionSource.contains("no sd2-base.yaml"))
    }

    /// Known extras are ignored by name; SD2's unused last OpenCLIP block is ignored; q/k/v are split from
    /// OpenCLIP's fused projection; VAE attention 1x1 convs become [C, C] linears.
    func testIgnoredTensorsAndLoadTimeTransforms() throws {
        let schedule = ["alphas_cumprod", "alphas_cumprod_prev", "betas", "model_ema.decay", "model_ema.num_updates"]
        let sd1 = try StableDiffusionCheckpoint.load(path: try Self.fixture("tiny-sd1.safetensors"))
        XCTAssertEqual(sd1.ignoredTensors, (schedule + ["cond_stage_model.transformer.text_model.embeddings.position_ids"]).sorted())

        let path = try Self.fixture("tiny-sd2.safetensors")
        let sd2 = try StableDiffusionCheckpoint.load(path: path)
        let lastBlock = ["attn.in_proj_bias", "attn.in_proj_weight", "attn.out_proj.bias", "attn.out_proj.weight",
                         "ln_1.bias", "ln_1.weight", "ln_2.bias", "ln_2.weight", "mlp.c_fc.bias", "mlp.c_fc.weight",
                         "mlp.c_proj.bias", "mlp.c_proj.weight"].map { "cond_stage_model.model.transformer.resblocks.3.\($0)" }
        XCTAssertEqual(sd2.ignoredTensors, (schedule + lastBlock + ["cond_stage_model.model.logit_scale",
                                                                    "cond_stage_model.model.text_projection"]).sorted())
        XCTAssertEqual(sd2.textConfig.numHiddenLayers, 3)

        let file = try SafeTensorsFile(path: path)
        let hidden = sd2.textConfig.hiddenSize
        for (layer, kind) in [(0, "weight"), (2, "bias")] {
            let fused = try file.tensor("cond_stage_model.model.transformer.resblocks.\(layer).attn.in_proj_\(kind)").scalars
            let part = fused.count / 3
            for (i, p) in ["q", "k", "v"].enumerated() {
                let t = try sd2.textEncoder.take("text_model.encoder.layers.\(layer).self_attn.\(p)_proj.\(kind)")
                XCTAssertEqual(t.shape, kind == "weight" ? [hidden, hidden] : [hidden])
                XCTAssertEqual(t.scalars, Array(fused[i * part ..< (i + 1) * part]), "\(p) \(kind)")
            }
        }
        let conv = try XCTUnwrap(file.shape(of: "first_stage_model.decoder.mid.attn_1.q.weight"))
        XCTAssertEqual(conv.count, 4)
        XCTAssertEqual(sd2.vae.shape(of: "decoder.mid_block.attentions.0.to_q.weight"), [conv[0], conv[1]])
    }

    func testInfoReport() throws {
        let report = ModelInfo(try StableDiffusionCheckpoint.load(path: try Self.fixture("tiny-sd2.safetensors"))).report
        let lines = report.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 11)
        XCTAssertEqual(lines[1], "layout: single file")
        XCTAssertEqual(lines[2], "family: SD2.x")
        XCTAssertEqual(lines[3], "prediction: v_prediction (tiny-sd2.yaml: parameterization \"v\")")
        XCTAssertEqual(lines[4], "trained size: 768x768")
        XCTAssertEqual(lines[5], "tokenizer: bundled CLIP BPE, padding with \"!\"")
        let c = try StableDiffusionCheckpoint.load(path: try Self.fixture("tiny-sd2.safetensors"))
        for (line, component) in zip(lines[6 ... 8], ModelComponent.allCases) {
            let store = c.store(component)
            let words = line.split(separator: " ").map(String.init)
            XCTAssertEqual(words[0], "\(component.rawValue):")
            XCTAssertEqual(words[1].filter { $0 != "," }, String(store.parameterCount), line)
            XCTAssertTrue(line.hasSuffix("parameters in \(store.names.count) tensors (\(store.names.count) F16)"), line)
        }
        // The UNet count, independently: every model.diffusion_model.* element of the file (1.12M).
        let file = try SafeTensorsFile(path: try Self.fixture("tiny-sd2.safetensors"))
        let unetCount = file.names.filter { $0.hasPrefix("model.diffusion_model.") }
            .reduce(0) { $0 + (file.shape(of: $1)?.reduce(1, *) ?? 0) }
        XCTAssertEqual(c.unet.parameterCount, unetCount)
        let grouped = String(unetCount).reversed().enumerated()
            .map { $0.offset > 0 && $0.offset % 3 == 0 ? ",\($0.element)" : "\($0.element)" }.joined()
        let expected = "unet: " + String(grouped.reversed()) + String(format: " (%.2fM) parameters", Double(unetCount) / 1e6)
        XCTAssertTrue(lines[6].hasPrefix(expected), "\(lines[6]) vs \(expected)")
        XCTAssertTrue(lines[9].hasPrefix("ignored tensors: 19: alphas_cumprod, "), lines[9])
        XCTAssertEqual(lines[10], "unknown tensors: none")
        var limited = ModelInfo(try StableDiffusionCheckpoint.load(path: try Self.fixture("tiny-sd2.safetensors")))
        limited.listLimit = 2
        XCTAssertTrue(limited.report.contains("ignored tensors: 19: alphas_cumprod, alphas_cumprod_prev, ... (17 more)"))
    }

    // MARK: - Modified copies of the fixtures

    /// A copy of fixture `name` in a fresh temporary folder.
    private func copyFixture(_ name: String, to folder: URL) throws -> URL {
        let url = folder.appendingPathComponent(name)
        try FileManager.default.copyItem(atPath: try Self.fixture(name), toPath: url.path)
        return url
    }

    private func editJSON(_ url: URL, _ edit: (inout [String: Any]) -> Void) throws {
        var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        edit(&object)
        try JSONSerialization.data(withJSONObject: object).write(to: url)
    }

    /// Tensors of an unknown kind are listed, not loaded; integer buffers are dropped from this copy.
    func testUnknownTensorsAreListed() throws {
        let temp = try Support.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: temp) }
        let source = try SafeTensorsFile(path: try Self.fixture("tiny-sd1.safetensors"))
        var tensors = try source.names.filter { source.dtype(of: $0)?.isConvertibleToFloat32 == true }
            .map { ($0, try source.tensor($0)) }
        let extra = Tensor(shape: [2], values: [1, 2])
        tensors += [("extra.weight", extra), ("model.diffusion_model.input_blocks.1.0.mystery.weight", extra),
                    ("first_stage_model.encoder.mid.attn_1.extra.weight", extra)]
        let path = temp.appendingPathComponent("extended.safetensors").path
        try SafeTensorsWriter.write(tensors, to: path)
        let c = try StableDiffusionCheckpoint.load(path: path)
        XCTAssertEqual(c.unknownTensors, ["extra.weight", "first_stage_model.encoder.mid.attn_1.extra.weight",
                                          "model.diffusion_model.input_blocks.1.0.mystery.weight"])
        XCTAssertTrue(ModelInfo(c).report.contains("unknown tensors: 3: extra.weight, "))
        XCTAssertEqual(c.dtypeCounts[.unet], [.f32: c.unet.names.count])
    }

    /// Sharded weights, the fp16 variant file name, deprecated VAE attention names and text-encoder names
    /// without `text_model.` all load to the same stores.
    func testFolderWeightVariants() throws {
        let temp = try Support.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: temp) }
        let original = try StableDiffusionCheckpoint.load(path: try Self.fixture("tiny-sd1"))
        let copy = try copyFixture("tiny-sd1", to: temp)
        let fm = FileManager.default

        let unetFile = copy.appendingPathComponent("unet/diffusion_pytorch_model.safetensors")
        let unet = try SafeTensorsFile(path: unetFile.path)
        let names = unet.names
        var weightMap: [String: String] = [:]
        for (index, part) in [names.prefix(names.count / 2), names.dropFirst(names.count / 2)].enumerated() {
            let shard = "diffusion_pytorch_model-0000\(index + 1)-of-00002.safetensors"
            try SafeTensorsWriter.write(try part.map { ($0, try unet.tensor($0)) },
                                        to: copy.appendingPathComponent("unet/\(shard)").path)
            for name in part { weightMap[name] = shard }
        }
        try JSONSerialization.data(withJSONObject: ["metadata": [:], "weight_map": weightMap])
            .write(to: copy.appendingPathComponent("unet/diffusion_pytorch_model.safetensors.index.json"))
        try fm.removeItem(at: unetFile)

        let vaeFile = copy.appendingPathComponent("vae/diffusion_pytorch_model.safetensors")
        let vae = try SafeTensorsFile(path: vaeFile.path)
        let renamed = try vae.names.map { name -> (String, Tensor) in
            let legacy = name.replacingOccurrences(of: ".to_q.", with: ".query.")
                .replacingOccurrences(of: ".to_out.0.", with: ".proj_attn.")
            return (legacy, try vae.tensor(name))
        }
        XCTAssertTrue(renamed.contains { $0.0.hasSuffix("mid_block.attentions.0.query.weight") })
        try SafeTensorsWriter.write(renamed, to: copy.appendingPathComponent("vae/diffusion_pytorch_model.fp16.safetensors").path)
        try fm.removeItem(at: vaeFile)

        let textFile = copy.appendingPathComponent("text_encoder/model.safetensors")
        let text = try SafeTensorsFile(path: textFile.path)
        XCTAssertTrue(text.names.allSatisfy { $0.hasPrefix("text_model.") })
        var unprefixed = try text.names.map { (String($0.dropFirst("text_model.".count)), try text.tensor($0)) }
        unprefixed.append(("text_projection.weight", Tensor(shape: [8, 8], repeating: 0)))
        try SafeTensorsWriter.write(unprefixed, to: textFile.path)

        let loaded = try StableDiffusionCheckpoint.load(path: copy.path)
        try assertIdentical(original.unet, loaded.unet, "sharded unet")
        try assertIdentical(original.vae, loaded.vae, "fp16-variant vae with legacy names")
        try assertIdentical(original.textEncoder, loaded.textEncoder, "unprefixed text encoder")
        XCTAssertEqual(loaded.ignoredTensors, ["text_encoder/text_projection.weight"])
        XCTAssertEqual(loaded.dtypeCounts[.unet], [.f32: names.count])

        // A shard that lacks a tensor its index lists.
        let firstShard = copy.appendingPathComponent("unet/diffusion_pytorch_model-00001-of-00002.safetensors")
        try SafeTensorsWriter.write([("conv_in.bias", Tensor(zeros: [32]))], to: firstShard.path)
        let listed = try XCTUnwrap(weightMap.filter { $0.value.hasSuffix("00001-of-00002.safetensors") && $0.key != "conv_in.bias" }
            .keys.min())
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: copy.path),
                                 mentioning: [firstShard.path, "'\(listed)' listed in diffusion_pytorch_model.safetensors.index.json is missing"],
                                 "incomplete shard")
    }

    /// Configs that contradict the weights are refused at load, naming the tensor and the config.
    func testConfigContradictingWeights() throws {
        let temp = try Support.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: temp) }
        let copy = try copyFixture("tiny-sd1", to: temp)
        let unetConfig = copy.appendingPathComponent("unet/config.json")
        let pristine = try Data(contentsOf: unetConfig)
        let original = try StableDiffusionCheckpoint.load(path: copy.path)
        let channels = original.unetConfig.blockOutChannels
        try editJSON(unetConfig) { $0["block_out_channels"] = Array(channels.dropLast()) + [2 * channels[3]] }
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: copy.path), mentioning: [
            copy.appendingPathComponent("unet").path,
            "unet tensor 'down_blocks.3.resnets.0.conv1.weight' has shape [\(channels[3]), \(channels[2]), 3, 3]",
            "needs size \(2 * channels[3]) in dimension 0",
        ], "channels")
        try editJSON(unetConfig) { $0["block_out_channels"] = channels; $0["layers_per_block"] = 3 }
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: copy.path),
                                 mentioning: ["2 resnets in UNet down block 0", "says 3"], "layers")
        let toK = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"
        let toKShape = try XCTUnwrap(original.unet.shape(of: toK))
        try editJSON(unetConfig) { $0["layers_per_block"] = 2; $0["cross_attention_dim"] = 768 }
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: copy.path),
                                 mentioning: ["'\(toK)' has shape \(toKShape)", "needs size 768 in dimension 1"], "cross")
        try pristine.write(to: unetConfig)
        try editJSON(unetConfig) { $0["addition_embed_type"] = "text_time" }
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: copy.path),
                                 mentioning: [unetConfig.path, "class or addition embeddings (SDXL, upscaler, unCLIP) is not supported"], "sdxl unet")
        try pristine.write(to: unetConfig)
        try editJSON(copy.appendingPathComponent("text_encoder/config.json")) { $0["num_hidden_layers"] = 12 }
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: copy.path),
                                 mentioning: [copy.appendingPathComponent("text_encoder").path, "3 text encoder layers", "says 12"], "text layers")
    }

    func testTruncatedSingleFile() throws {
        let temp = try Support.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: temp) }
        let data = try Data(contentsOf: URL(fileURLWithPath: try Self.fixture("tiny-sd1.safetensors")))
        let path = temp.appendingPathComponent("half.safetensors").path
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: path), mentioning: [path, "run past", "truncated"], "half")
        try data.prefix(100).write(to: URL(fileURLWithPath: path))
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: path), mentioning: [path, "does not fit"], "header cut")
    }

    // MARK: - Command line

    /// The built `anysize` next to the test bundle (`.build/<configuration>/anysize`).
    private func anysizeBinary() throws -> URL {
        let url = Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("anysize")
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw AnySizeError(.fileNotFound, "\(url.path) is missing; build the anysize product before running the tests")
        }
        return url
    }

    private func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = try anysizeBinary()
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    func testInfoCommandEndToEnd() throws {
        let ok = try run(["info", "--model", try Self.fixture("tiny-sd1")])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertEqual(ok.stderr, "")
        XCTAssertTrue(ok.stdout.contains("\nfamily: SD1.x\n"), ok.stdout)
        XCTAssertTrue(ok.stdout.contains("\nlayout: diffusers folder\n"), ok.stdout)

        let overridden = try run(["info", "--model", try Self.fixture("tiny-sd2.safetensors"), "--prediction", "epsilon"])
        XCTAssertEqual(overridden.status, 0, overridden.stderr)
        XCTAssertTrue(overridden.stdout.contains("\nprediction: epsilon (override)\ntrained size: 512x512\n"), overridden.stdout)

        let temp = try Support.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: temp) }
        let corrupt = temp.appendingPathComponent("corrupt.safetensors").path
        try Support.writeRaw(URL(fileURLWithPath: corrupt), header: "{\"w\": [", length: 9)
        for arguments in [["info", "--model", corrupt], ["info", "--model", temp.appendingPathComponent("model.ckpt").path]] {
            if arguments[2].hasSuffix(".ckpt") { try Data().write(to: URL(fileURLWithPath: arguments[2])) }
            let failed = try run(arguments)
            XCTAssertEqual(failed.status, 1, arguments[2])
            XCTAssertEqual(failed.stdout, "")
            XCTAssertTrue(failed.stderr.hasPrefix("error: \(arguments[2]): "), failed.stderr)
            XCTAssertEqual(failed.stderr.filter { $0 == "\n" }.count, 1, failed.stderr)
        }
    }

    /// Loading reads headers only; building the VAE converts exactly the VAE's tensors and nothing of the
    /// UNet or text encoder, for a folder and a single file; a second build reads the VAE again.
    func testBuildingOnlyTheVAEMaterialisesOnlyVAEWeights() throws {
        for path in [try Self.fixture("tiny-sd1"), try Self.fixture("tiny-sd2.safetensors")] {
            let checkpoint = try StableDiffusionCheckpoint.load(path: path)
            for store in [checkpoint.unet, checkpoint.vae, checkpoint.textEncoder] {
                XCTAssertEqual(store.materializedBytes, 0, "\(path) \(store.component) after load")
            }
            _ = try AutoencoderKL(config: checkpoint.vaeConfig, parameters: checkpoint.vae)
            XCTAssertEqual(checkpoint.unet.materializedBytes, 0, "\(path): UNet weights read for a VAE build")
            XCTAssertEqual(checkpoint.textEncoder.materializedBytes, 0, "\(path): text encoder weights read for a VAE build")
            XCTAssertEqual(checkpoint.vae.materializedBytes, 4 * checkpoint.vae.parameterCount, path)
            XCTAssertEqual(checkpoint.vae.unused, [], path)
            _ = try AutoencoderKL(config: checkpoint.vaeConfig, parameters: checkpoint.vae)
            XCTAssertEqual(checkpoint.vae.materializedBytes, 8 * checkpoint.vae.parameterCount, "\(path): rebuild")
        }
    }
}
