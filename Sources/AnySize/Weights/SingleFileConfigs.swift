import Foundation

/// Configs of a single-file checkpoint, inferred from its tensor names and shapes, with the few
/// settings shapes cannot tell (heads, prediction type, VAE scale) taken from an adjacent original
/// LDM `NAME.yaml` when there is one (A1111 convention) and from family defaults otherwise.
enum SingleFileConfigs {
    /// Names (component prefix removed) and a shape lookup for one component.
    struct Component {
        let names: [String]
        let shape: (String) -> [Int]?
        let source: String

        init(names: [String], shape: @escaping (String) -> [Int]?, source: String) {
            self.names = names
            self.shape = shape
            self.source = source
        }

        /// The tensors of `file` under `prefix` (ignorable buffers left out), named without the prefix.
        init(file: SafeTensorsFile, prefix: String, source: String) {
            names = file.names.filter { $0.hasPrefix(prefix) && !CheckpointKeys.isIgnorable($0) }
                .map { String($0.dropFirst(prefix.count)) }
            shape = { file.shape(of: prefix + $0) }
            self.source = source
        }

        func require(_ name: String) throws -> [Int] {
            guard let s = shape(name) else {
                throw AnySizeError(.missingTensor, "\(source): tensor '\(name)' is missing; the checkpoint is incomplete")
            }
            return s
        }

        func require(_ name: String, rank: Int) throws -> [Int] {
            let s = try require(name)
            guard s.count == rank else {
                throw AnySizeError(.shapeMismatch, "\(source): tensor '\(name)' has shape \(s), expected rank \(rank)")
            }
            return s
        }

        /// Distinct integers `N` in names `prefix + "N." + ...`.
        func indices(after prefix: String) -> Set<Int> {
            Set(names.compactMap { name -> Int? in
                guard name.hasPrefix(prefix) else { return nil }
                return Int(name.dropFirst(prefix.count).prefix { $0 != "." })
            })
        }

        func has(prefix: String) -> Bool { names.contains { $0.hasPrefix(prefix) } }
    }

    /// 0 ..< n check: block indices must have no gaps.
    private static func count(_ indices: Set<Int>, _ what: String, _ source: String) throws -> Int {
        guard let last = indices.max(), indices.count == last + 1, indices.min() == 0 else {
            throw AnySizeError(.corruptFile, "\(source): \(what) are not numbered 0..n-1 (found \(indices.sorted())); the checkpoint is incomplete")
        }
        return indices.count
    }

    // MARK: - UNet

    /// `model.diffusion_model.*` (prefix removed) to a `UNetConfig`; `sampleSize` is left for the caller.
    static func unet(_ c: Component, family: ModelFamily, yaml: LDMConfigFile?) throws -> UNetConfig {
        var config = UNetConfig()
        let inputBlocks = try count(c.indices(after: "input_blocks."), "UNet input blocks", c.source)
        let downsamplers = c.names.filter { $0.hasPrefix("input_blocks.") && $0.hasSuffix(".0.op.weight") }.count
        let levels = downsamplers + 1
        let resnets = inputBlocks - 1 - downsamplers
        guard resnets > 0, resnets % levels == 0 else {
            throw AnySizeError(.unsupportedConfig,
                "\(c.source): \(inputBlocks) UNet input blocks with \(downsamplers) downsamplers do not form equal levels; not an SD1/SD2 UNet")
        }
        config.layersPerBlock = resnets / levels
        let perLevel = config.layersPerBlock + 1

        let convIn = try c.require("input_blocks.0.0.weight", rank: 4)
        config.inChannels = convIn[1]
        config.outChannels = try c.require("out.2.weight", rank: 4)[0]
        var channels: [Int] = [], down: [String] = [], up: [String] = [], depth: [Int] = []
        for level in 0 ..< levels {
            let block = 1 + level * perLevel
            channels.append(try c.require("input_blocks.\(block).0.out_layers.3.weight", rank: 4)[0])
            let attention = c.has(prefix: "input_blocks.\(block).1.")
            down.append(attention ? "CrossAttnDownBlock2D" : "DownBlock2D")
            depth.append(attention ? c.indices(after: "input_blocks.\(block).1.transformer_blocks.").count : 1)
            let upBlock = level * perLevel
            let upAttention = c.has(prefix: "output_blocks.\(upBlock).1.transformer_blocks.")
            up.append(upAttention ? "CrossAttnUpBlock2D" : "UpBlock2D")
        }
        config.blockOutChannels = channels
        config.downBlockTypes = down
        config.upBlockTypes = up
        config.transformerLayersPerBlock = Set(depth).count == 1 ? PerLevel(depth[0]) : PerLevel(depth)
        config.midBlockType = c.has(prefix: "middle_block.1.") ? "UNetMidBlock2DCrossAttn" : "UNetMidBlock2D"

        guard let toK = c.names.first(where: { $0.hasSuffix(".attn2.to_k.weight") }),
              let projIn = c.names.first(where: { $0.hasSuffix(".proj_in.weight") }) else {
            throw AnySizeError(.unsupportedConfig, "\(c.source): the UNet has no cross-attention; not an SD1/SD2 text-to-image UNet")
        }
        config.crossAttentionDim = try c.require(toK, rank: 2)[1]
        config.useLinearProjection = try c.require(projIn).count == 2
        config.upcastAttention = family == .sd2

        // Heads: the yaml's num_heads (all levels) or num_head_channels (channels / that), else the family's.
        let params = "model.params.unet_config.params."
        if let heads = yaml?.int(params + "num_heads"), heads > 0 {
            config.attentionHeadDim = PerLevel(heads)
        } else if let width = yaml?.int(params + "num_head_channels"), width > 0 {
            config.attentionHeadDim = PerLevel(channels.map { max(1, $0 / width) })
        } else if family == .sd1 {
            config.attentionHeadDim = PerLevel(8)
        } else {
            config.attentionHeadDim = PerLevel(channels.map { max(1, $0 / 64) })
        }
        return config
    }

    // MARK: - VAE

    /// `first_stage_model.*` (prefix removed) to a `VAEConfig`; `sampleSize` is left for the caller.
    static func vae(_ c: Component, yaml: LDMConfigFile?) throws -> VAEConfig {
        var config = VAEConfig()
        let levels = try count(c.indices(after: "encoder.down."), "VAE encoder levels", c.source)
        config.blockOutChannels = try (0 ..< levels).map { try c.require("encoder.down.\($0).block.0.conv1.weight", rank: 4)[0] }
        config.layersPerBlock = try count(c.indices(after: "encoder.down.0.block."), "VAE encoder resnets", c.source)
        config.inChannels = try c.require("encoder.conv_in.weight", rank: 4)[1]
        config.outChannels = try c.require("decoder.conv_out.weight", rank: 4)[0]
        config.latentChannels = try c.require("decoder.conv_in.weight", rank: 4)[1]
        config.midBlockAddAttention = c.has(prefix: "encoder.mid.attn_1.")
        config.useQuantConv = c.has(prefix: "quant_conv.")
        config.usePostQuantConv = c.has(prefix: "post_quant_conv.")
        config.normNumGroups = 32
        config.scalingFactor = yaml?.double("model.params.scale_factor") ?? 0.18215
        return config
    }

    // MARK: - Text encoders

    /// SD1: transformers CLIP names (already with `text_model.`).
    static func clip(_ c: Component) throws -> CLIPTextConfig {
        var config = CLIPTextConfig()
        let tokens = try c.require("text_model.embeddings.token_embedding.weight", rank: 2)
        config.vocabSize = tokens[0]
        config.hiddenSize = tokens[1]
        config.maxPositionEmbeddings = try c.require("text_model.embeddings.position_embedding.weight", rank: 2)[0]
        config.numHiddenLayers = try count(c.indices(after: "text_model.encoder.layers."), "text encoder layers", c.source)
        config.intermediateSize = try c.require("text_model.encoder.layers.0.mlp.fc1.weight", rank: 2)[0]
        config.numAttentionHeads = max(1, config.hiddenSize / 64)
        config.hiddenAct = "quick_gelu"
        return config
    }

    /// SD2: OpenCLIP names (`cond_stage_model.model.` removed). The last residual block is not part of
    /// the model (SD2 conditions on the penultimate layer), so layers = blocks - 1.
    static func openCLIP(_ c: Component) throws -> (config: CLIPTextConfig, lastBlock: Int) {
        var config = CLIPTextConfig()
        let tokens = try c.require("token_embedding.weight", rank: 2)
        config.vocabSize = tokens[0]
        config.hiddenSize = tokens[1]
        config.maxPositionEmbeddings = try c.require("positional_embedding", rank: 2)[0]
        let blocks = try count(c.indices(after: "transformer.resblocks."), "OpenCLIP residual blocks", c.source)
        guard blocks >= 2 else {
            throw AnySizeError(.unsupportedConfig, "\(c.source): the OpenCLIP text encoder has \(blocks) block; SD2 needs at least 2")
        }
        config.numHiddenLayers = blocks - 1
        config.intermediateSize = try c.require("transformer.resblocks.0.mlp.c_fc.weight", rank: 2)[0]
        config.numAttentionHeads = max(1, config.hiddenSize / 64)
        config.hiddenAct = "gelu"
        return (config, blocks - 1)
    }
}

/// The few settings read from an original LDM inference yaml (`v1-inference.yaml`, `v2-inference-v.yaml`)
/// saved next to a checkpoint as `NAME.yaml`. A small line-based reader for nested `key: value` maps:
/// enough for these files, not a YAML parser (lists and flow collections are kept as raw text).
struct LDMConfigFile {
    let path: String
    /// Scalars by dotted key path, e.g. `model.params.parameterization`.
    let values: [String: String]

    /// Reads `NAME.yaml` (or `.yml`) next to `checkpoint`, or returns nil if there is none.
    init?(adjacentTo checkpoint: String) throws {
        let base = URL(fileURLWithPath: checkpoint).deletingPathExtension().path
        guard let path = [base + ".yaml", base + ".yml"].first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            return nil
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw AnySizeError(.io, "\(path): cannot read the file as UTF-8 text")
        }
        self.init(path: path, text: text)
    }

    init(path: String, text: String) {
        self.path = path
        var values: [String: String] = [:]
        var stack: [(indent: Int, key: String)] = []
        for rawLine in text.split(whereSeparator: \.isNewline) {
            var line = Substring(rawLine)
            if let hash = line.firstIndex(of: "#"), line[..<hash].allSatisfy({ $0 == " " }) || line[line.index(before: hash)] == " " {
                line = line[..<hash]
            }
            let indent = line.prefix { $0 == " " }.count
            let content = line.drop { $0 == " " }
            guard !content.isEmpty, !content.hasPrefix("-"), let colon = content.firstIndex(of: ":") else { continue }
            let key = content[..<colon].trimmingCharacters(in: .whitespaces)
            var value = content[content.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            while let last = stack.last, last.indent >= indent { stack.removeLast() }
            if value.isEmpty {
                stack.append((indent, key))
                continue
            }
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            values[(stack.map(\.key) + [key]).joined(separator: ".")] = value
        }
        self.values = values
    }

    func string(_ key: String) -> String? { values[key] }
    func int(_ key: String) -> Int? { values[key].flatMap { Int($0) } }
    func double(_ key: String) -> Double? { values[key].flatMap { Double($0) } }
}
