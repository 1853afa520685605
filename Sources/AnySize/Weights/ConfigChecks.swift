import Foundation

/// A decoded config whose values can be checked for sanity, naming the file and key at fault, before any model is
/// built from it (a `sample_size` of 0 or `block_out_channels` of 10^12 must not surface later as a canvas or a
/// memory error).
protocol CheckedConfig {
    /// - Throws: `AnySizeError(.unsupportedConfig)` naming `source`, the key and its value.
    func check(source: String) throws
}

/// Range checks with one message format.
struct ConfigChecker {
    let source: String

    func fail(_ key: String, _ value: Any, _ expected: String) -> AnySizeError {
        AnySizeError(.unsupportedConfig, "\(source): \(key) = \(value) is not sane (expected \(expected)); fix or re-download the config")
    }

    func range(_ key: String, _ value: Int, _ bounds: ClosedRange<Int>) throws {
        guard bounds.contains(value) else { throw fail(key, value, "\(bounds.lowerBound) to \(bounds.upperBound)") }
    }

    func ranges(_ key: String, _ values: [Int], _ bounds: ClosedRange<Int>, count: ClosedRange<Int>) throws {
        guard count.contains(values.count) else { throw fail(key, values, "\(count.lowerBound) to \(count.upperBound) levels") }
        for v in values where !bounds.contains(v) { throw fail(key, values, "each \(bounds.lowerBound) to \(bounds.upperBound)") }
    }

    /// GroupNorm needs the group count to divide every channel count it normalises.
    func groups(_ key: String, _ groups: Int, channels: [Int]) throws {
        try range(key, groups, 1 ... 1024)
        for c in channels where c % groups != 0 {
            throw fail(key, groups, "a divisor of every channel count \(channels)")
        }
    }
}

/// Channel widths up to 16384 and latent sides up to 1024 (8192 px) cover every SD-family model with margin.
private let channelRange = 1 ... 16384

extension UNetConfig: CheckedConfig {
    func check(source: String) throws {
        let c = ConfigChecker(source: source)
        try c.range("sample_size", sampleSize, 1 ... 1024)
        try c.range("in_channels", inChannels, 1 ... 64)
        try c.range("out_channels", outChannels, 1 ... 64)
        try c.ranges("block_out_channels", blockOutChannels, channelRange, count: 1 ... 8)
        try c.range("layers_per_block", layersPerBlock, 1 ... 16)
        try c.range("cross_attention_dim", crossAttentionDim, channelRange)
        guard downBlockTypes.count == blockOutChannels.count, upBlockTypes.count == blockOutChannels.count else {
            throw c.fail("down_block_types / up_block_types", "\(downBlockTypes.count) / \(upBlockTypes.count) entries",
                         "one per block_out_channels level (\(blockOutChannels.count))")
        }
        try c.groups("norm_num_groups", normNumGroups, channels: blockOutChannels)
        for level in blockOutChannels.indices {
            let heads = self.heads(level: level)
            try c.range(numAttentionHeads == nil ? "attention_head_dim" : "num_attention_heads", heads, 1 ... 1024)
            try c.range("transformer_layers_per_block", transformerLayersPerBlock[level], 1 ... 64)
        }
        guard normEps.isFinite, normEps > 0 else { throw c.fail("norm_eps", normEps, "a small positive number such as 1e-5") }
    }
}

extension VAEConfig: CheckedConfig {
    func check(source: String) throws {
        let c = ConfigChecker(source: source)
        try c.range("in_channels", inChannels, 1 ... 64)
        try c.range("out_channels", outChannels, 1 ... 64)
        try c.range("latent_channels", latentChannels, 1 ... 64)
        try c.ranges("block_out_channels", blockOutChannels, channelRange, count: 1 ... 8)
        try c.range("layers_per_block", layersPerBlock, 1 ... 16)
        try c.groups("norm_num_groups", normNumGroups, channels: blockOutChannels)
        try c.range("sample_size", sampleSize, 1 ... 16384)
        guard scalingFactor.isFinite, scalingFactor > 0 else {
            throw c.fail("scaling_factor", scalingFactor, "a positive number such as 0.18215")
        }
    }
}

extension CLIPTextConfig: CheckedConfig {
    func check(source: String) throws {
        let c = ConfigChecker(source: source)
        try c.range("vocab_size", vocabSize, 2 ... 1_000_000)
        try c.range("hidden_size", hiddenSize, channelRange)
        try c.range("intermediate_size", intermediateSize, 1 ... 65536)
        try c.range("num_hidden_layers", numHiddenLayers, 1 ... 128)
        try c.range("num_attention_heads", numAttentionHeads, 1 ... 1024)
        guard hiddenSize % numAttentionHeads == 0 else {
            throw c.fail("num_attention_heads", numAttentionHeads, "a divisor of hidden_size \(hiddenSize)")
        }
        try c.range("max_position_embeddings", maxPositionEmbeddings, CLIPTokenizer.contextLength ... 4096)
        guard layerNormEps.isFinite, layerNormEps > 0 else { throw c.fail("layer_norm_eps", layerNormEps, "a small positive number") }
    }
}

extension SchedulerConfig {
    /// The values every sampler uses: betas in (0, 1) with start <= end, and a sane training step count.
    /// - Throws: `AnySizeError(.unsupportedConfig)` naming `source` and the key.
    func checkValues(source: String) throws {
        let c = ConfigChecker(source: source)
        for (key, value) in [("beta_start", betaStart), ("beta_end", betaEnd)] {
            if let value, !(value > 0 && value < 1) { throw c.fail(key, value, "a number in (0, 1), e.g. 0.00085 / 0.012") }
        }
        if let start = betaStart, let end = betaEnd, start > end {
            throw c.fail("beta_start", start, "at most beta_end (\(end))")
        }
        if let steps = numTrainTimesteps { try c.range("num_train_timesteps", steps, 2 ... 100_000) }
    }
}
