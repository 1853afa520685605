/// Up-front checks that the configs agree with the loaded tensors (block counts, channel widths,
/// embedding sizes), so a mismatched config fails at load with a clear message rather than deep in
/// model construction. `ParameterStore.take` checks every remaining shape when the models are built.
enum CheckpointValidation {
    static func validate(_ tensors: ComponentTensors, unet: UNetConfig, vae: VAEConfig, text: CLIPTextConfig,
                         configSource: String) throws {
        let u = Checker(tensors: tensors, component: .unet, configSource: configSource)
        let levels = unet.blockOutChannels.count
        guard levels > 0, unet.downBlockTypes.count == levels, unet.upBlockTypes.count == levels else {
            throw AnySizeError(.unsupportedConfig,
                "\(configSource): the UNet config has \(levels) block_out_channels, \(unet.downBlockTypes.count) down and \(unet.upBlockTypes.count) up block types; they must agree")
        }
        let c0 = unet.blockOutChannels[0]
        try u.expect("conv_in.weight", [c0, unet.inChannels, 3, 3])
        try u.expect("conv_out.weight", [unet.outChannels, c0, 3, 3])
        try u.expectCount("down_blocks.", levels, "UNet down blocks")
        try u.expectCount("up_blocks.", levels, "UNet up blocks")
        for level in 0 ..< levels {
            let channels = unet.blockOutChannels[level]
            try u.expectCount("down_blocks.\(level).resnets.", unet.layersPerBlock, "resnets in UNet down block \(level)")
            try u.expectCount("up_blocks.\(level).resnets.", unet.layersPerBlock + 1, "resnets in UNet up block \(level)")
            try u.expect("down_blocks.\(level).resnets.0.conv1.weight", dimension: 0, equals: channels)
            let crossAttention = unet.downBlockTypes[level].hasPrefix("CrossAttn")
            guard crossAttention == u.has(prefix: "down_blocks.\(level).attentions.") else {
                throw AnySizeError(.shapeMismatch,
                    "\(u.source): UNet down block \(level) is \(unet.downBlockTypes[level]) in \(configSource) but the weights \(crossAttention ? "have no" : "have") attention layers there; the config does not match the weights")
            }
            let heads = unet.heads(level: level)
            guard !crossAttention || (heads > 0 && channels % heads == 0) else {
                throw AnySizeError(.unsupportedConfig,
                    "\(configSource): \(heads) attention heads do not divide the \(channels) channels of UNet level \(level)")
            }
        }
        try checkGroups(unet.blockOutChannels, groups: unet.normNumGroups, model: "UNet", configSource: configSource)
        if let toK = u.firstName(suffix: ".attn2.to_k.weight") {
            try u.expect(toK, dimension: 1, equals: unet.crossAttentionDim)
        }
        if let projIn = u.firstName(suffix: ".proj_in.weight"), let shape = u.shape(projIn),
           (shape.count == 2) != unet.useLinearProjection {
            throw AnySizeError(.shapeMismatch,
                "\(u.source): unet tensor '\(projIn)' has shape \(shape) but use_linear_projection is \(unet.useLinearProjection) in \(configSource); the config does not match the weights")
        }
        guard unet.crossAttentionDim == text.hiddenSize else {
            throw AnySizeError(.shapeMismatch,
                "\(configSource): the UNet cross-attends to \(unet.crossAttentionDim)-wide text features but the text encoder is \(text.hiddenSize) wide; the components are from different models")
        }

        let v = Checker(tensors: tensors, component: .vae, configSource: configSource)
        let vaeLevels = vae.blockOutChannels.count
        guard vaeLevels > 0 else {
            throw AnySizeError(.unsupportedConfig, "\(configSource): the VAE config has no block_out_channels")
        }
        try v.expect("encoder.conv_in.weight", [vae.blockOutChannels[0], vae.inChannels, 3, 3])
        try v.expect("decoder.conv_out.weight", [vae.outChannels, vae.blockOutChannels[0], 3, 3])
        try v.expect("decoder.conv_in.weight", dimension: 1, equals: vae.latentChannels)
        try v.expectCount("encoder.down_blocks.", vaeLevels, "VAE encoder blocks")
        try v.expectCount("decoder.up_blocks.", vaeLevels, "VAE decoder blocks")
        for level in 0 ..< vaeLevels {
            try v.expectCount("encoder.down_blocks.\(level).resnets.", vae.layersPerBlock, "resnets in VAE encoder block \(level)")
            try v.expectCount("decoder.up_blocks.\(level).resnets.", vae.layersPerBlock + 1, "resnets in VAE decoder block \(level)")
            try v.expect("encoder.down_blocks.\(level).resnets.0.conv1.weight", dimension: 0, equals: vae.blockOutChannels[level])
        }

        try checkGroups(vae.blockOutChannels, groups: vae.normNumGroups, model: "VAE", configSource: configSource)

        let t = Checker(tensors: tensors, component: .textEncoder, configSource: configSource)
        try t.expect("text_model.embeddings.token_embedding.weight", [text.vocabSize, text.hiddenSize])
        try t.expect("text_model.embeddings.position_embedding.weight", [text.maxPositionEmbeddings, text.hiddenSize])
        try t.expectCount("text_model.encoder.layers.", text.numHiddenLayers, "text encoder layers")
        try t.expect("text_model.encoder.layers.0.mlp.fc1.weight", [text.intermediateSize, text.hiddenSize])
        guard text.numAttentionHeads > 0, text.hiddenSize % text.numAttentionHeads == 0 else {
            throw AnySizeError(.unsupportedConfig,
                "\(configSource): \(text.numAttentionHeads) text encoder heads do not divide its width \(text.hiddenSize)")
        }
    }

    /// Every GroupNorm of a UNet or VAE normalises a level's width or a sum of level widths (skip
    /// concatenations), so the group count must divide every level's width: checked here, at load, so
    /// `info` refuses what model construction would. Single files carry no group count (LDM fixes 32).
    private static func checkGroups(_ channels: [Int], groups: Int, model: String, configSource: String) throws {
        for (level, width) in channels.enumerated() where groups <= 0 || width % groups != 0 {
            let fix = configSource.hasSuffix("(configs inferred from shapes)")
                ? "single-file SD checkpoints use \(groups) groups, so this file is not a standard SD1/SD2 checkpoint; load it with a diffusers config folder that sets norm_num_groups"
                : "fix norm_num_groups in the config"
            throw AnySizeError(.unsupportedConfig,
                "\(configSource): \(model) level \(level) has \(width) channels, not divisible into \(groups) GroupNorm groups; \(fix)")
        }
    }

    /// Shape checks on one component's tensors.
    private struct Checker {
        let tensors: ComponentTensors
        let component: ModelComponent
        let configSource: String

        var source: String { tensors.sources[component] ?? configSource }

        func shape(_ name: String) -> [Int]? { tensors.shape(component, name) }

        func has(prefix: String) -> Bool { tensors.names(component).contains { $0.hasPrefix(prefix) } }

        func firstName(suffix: String) -> String? { tensors.names(component).filter { $0.hasSuffix(suffix) }.min() }

        func require(_ name: String) throws -> [Int] {
            guard let shape = shape(name) else {
                throw AnySizeError(.missingTensor,
                    "\(source): \(component.rawValue) tensor '\(name)' is missing; the checkpoint is incomplete or of another model type")
            }
            return shape
        }

        func expect(_ name: String, _ expected: [Int]) throws {
            let actual = try require(name)
            guard actual == expected else { throw mismatch(name, actual, "\(expected)") }
        }

        func expect(_ name: String, dimension: Int, equals value: Int) throws {
            let actual = try require(name)
            guard actual.count > dimension, actual[dimension] == value else {
                throw mismatch(name, actual, "size \(value) in dimension \(dimension)")
            }
        }

        /// Blocks `prefix + "0." ... prefix + "\(count - 1)."` exist and no others.
        func expectCount(_ prefix: String, _ count: Int, _ what: String) throws {
            let found = Set(tensors.names(component).compactMap { name -> Int? in
                guard name.hasPrefix(prefix) else { return nil }
                return Int(name.dropFirst(prefix.count).prefix { $0 != "." })
            })
            guard found == Set(0 ..< count) else {
                throw AnySizeError(.shapeMismatch,
                    "\(source): the weights have \(found.count) \(what) (indices \(found.sorted())), \(configSource) says \(count); the config does not match the weights")
            }
        }

        private func mismatch(_ name: String, _ actual: [Int], _ expected: String) -> AnySizeError {
            AnySizeError(.shapeMismatch,
                "\(source): \(component.rawValue) tensor '\(name)' has shape \(actual), \(configSource) needs \(expected); the config does not match the weights")
        }
    }
}
