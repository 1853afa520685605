/// Every checkpoint key rename in the project, in one place: original LDM / CompVis names (single-file
/// checkpoints) to diffusers `UNet2DConditionModel` / `AutoencoderKL` names, OpenCLIP text-encoder names
/// to transformers `CLIPTextModel` names, and deprecated diffusers VAE attention names to current ones.
///
/// Mirrors diffusers `loaders/single_file_utils.py` (`convert_ldm_unet_checkpoint`,
/// `convert_ldm_vae_checkpoint`, `convert_ldm_clip_checkpoint`, `convert_open_clip_checkpoint`) and
/// `ModelMixin._fix_state_dict_keys_on_load`.
enum CheckpointKeys {
    static let unetPrefix = "model.diffusion_model."
    static let vaePrefix = "first_stage_model."
    /// SD1: transformers CLIP names follow (with or without `text_model.`).
    static let clipPrefix = "cond_stage_model.transformer."
    /// SD2: OpenCLIP names follow.
    static let openCLIPPrefix = "cond_stage_model.model."

    /// Where one original tensor goes.
    enum Target: Equatable {
        case unet(String)
        /// `linearFromConv`: a 1x1 conv weight `[O, I, 1, 1]` stored by diffusers as a linear `[O, I]`.
        case vae(String, linearFromConv: Bool)
        case textEncoder(String)
        /// OpenCLIP's fused `in_proj_weight` / `in_proj_bias` (`parameter` = "weight" / "bias"), split in
        /// equal thirds into `<attention>.q_proj`, `k_proj`, `v_proj`.
        case fusedQKV(attention: String, parameter: String)
        case ignored
        case unknown
    }

    /// Structure needed to number blocks, inferred from the names beforehand.
    struct Layout {
        /// Resnets per UNet down level (`layers_per_block`).
        var unetLayersPerBlock: Int
        /// Number of VAE levels (decoder `up.N` counts from the bottom).
        var vaeLevels: Int
        /// Index of OpenCLIP's last residual block, which SD2 does not use (it takes the penultimate layer).
        var openCLIPLastBlock: Int?
    }

    /// The destination of the single-file tensor `key`.
    static func target(of key: String, layout: Layout) -> Target {
        if isIgnorable(key) { return .ignored }
        if let rest = key.dropPrefix(unetPrefix) {
            return unet(rest, layersPerBlock: layout.unetLayersPerBlock).map { .unet($0) } ?? .unknown
        }
        if let rest = key.dropPrefix(vaePrefix) {
            guard let name = vae(rest, levels: layout.vaeLevels) else { return .unknown }
            return .vae(name, linearFromConv: name.contains(".mid_block.attentions.0.to_") && name.hasSuffix(".weight"))
        }
        if let rest = key.dropPrefix(clipPrefix) { return .textEncoder(clipTextModelName(rest)) }
        if let rest = key.dropPrefix(openCLIPPrefix) { return openCLIP(rest, lastBlock: layout.openCLIPLastBlock) }
        return .unknown
    }

    // MARK: - Ignorable extras

    private static let ignorableNames: Set<String> = [
        "alphas_cumprod", "alphas_cumprod_prev", "betas", "log_one_minus_alphas_cumprod", "lvlb_weights", "logvar",
        clipPrefix + "text_model.embeddings.position_ids", clipPrefix + "embeddings.position_ids",
        openCLIPPrefix + "logit_scale", openCLIPPrefix + "text_projection", openCLIPPrefix + "attn_mask",
    ]
    /// Noise-schedule buffers, EMA copies of the UNet, and the VAE's training loss (LPIPS / discriminator).
    private static let ignorablePrefixes = ["posterior_", "sqrt_", "model_ema.", vaePrefix + "loss."]

    static func isIgnorable(_ key: String) -> Bool {
        ignorableNames.contains(key) || ignorablePrefixes.contains { key.hasPrefix($0) }
    }

    // MARK: - UNet

    /// `model.diffusion_model.` names (prefix removed) to `UNet2DConditionModel` names; nil if unrecognised.
    ///
    /// `input_blocks.0` is `conv_in`; input block i >= 1 is layer (i-1) % (L+1) of down level (i-1) / (L+1):
    /// `.0` a resnet (or `.0.op` the level's downsampler), `.1` its transformer. `middle_block.0/1/2` are
    /// resnet, transformer, resnet. Output block i is layer i % (L+1) of up level i / (L+1): `.0` resnet,
    /// `.1` transformer or upsampler (`.1.conv`), `.2.conv` upsampler. Transformer internals keep their names.
    static func unet(_ key: String, layersPerBlock: Int) -> String? {
        let fixed = [
            "time_embed.0.": "time_embedding.linear_1.", "time_embed.2.": "time_embedding.linear_2.",
            "input_blocks.0.0.": "conv_in.", "out.0.": "conv_norm_out.", "out.2.": "conv_out.",
        ]
        for (old, new) in fixed { if let rest = key.dropPrefix(old), isParameter(rest) { return new + rest } }

        let parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 3, let i = Int(parts[1]) else { return nil }
        if parts[0] == "middle_block" {
            let rest = parts[2...].joined(separator: ".")
            if i == 0 || i == 2 { return unetResnet(rest).map { "mid_block.resnets.\(i / 2).\($0)" } }
            return i == 1 ? "mid_block.attentions.0.\(rest)" : nil
        }
        guard parts.count >= 4, let module = Int(parts[2]) else { return nil }
        let rest = parts[3...].joined(separator: ".")
        let perLevel = layersPerBlock + 1
        switch parts[0] {
        case "input_blocks" where i >= 1:
            let level = (i - 1) / perLevel, layer = (i - 1) % perLevel
            if module == 0, let p = rest.dropPrefix("op."), isParameter(p) { return "down_blocks.\(level).downsamplers.0.conv.\(p)" }
            if module == 0 { return unetResnet(rest).map { "down_blocks.\(level).resnets.\(layer).\($0)" } }
            if module == 1 { return "down_blocks.\(level).attentions.\(layer).\(rest)" }
        case "output_blocks":
            let level = i / perLevel, layer = i % perLevel
            if module == 0 { return unetResnet(rest).map { "up_blocks.\(level).resnets.\(layer).\($0)" } }
            if module == 1 || module == 2, let p = rest.dropPrefix("conv."), isParameter(p) {
                return "up_blocks.\(level).upsamplers.0.conv.\(p)"
            }
            if module == 1 { return "up_blocks.\(level).attentions.\(layer).\(rest)" }
        default:
            break
        }
        return nil
    }

    /// LDM `ResBlock` parameters to diffusers `ResnetBlock2D` names.
    private static func unetResnet(_ key: String) -> String? {
        let map = [
            "in_layers.0.": "norm1.", "in_layers.2.": "conv1.", "out_layers.0.": "norm2.", "out_layers.3.": "conv2.",
            "emb_layers.1.": "time_emb_proj.", "skip_connection.": "conv_shortcut.",
        ]
        for (old, new) in map { if let p = key.dropPrefix(old), isParameter(p) { return new + p } }
        return nil
    }

    // MARK: - VAE

    /// `first_stage_model.` names (prefix removed) to `AutoencoderKL` names; nil if unrecognised.
    /// The decoder's `up.N` counts from the lowest resolution, diffusers' `up_blocks.N` from the highest.
    static func vae(_ key: String, levels: Int) -> String? {
        let parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 3 else {
            let same = ["quant_conv", "post_quant_conv"]
            return parts.count == 2 && same.contains(parts[0]) && isParameter(parts[1]) ? key : nil
        }
        let coder = parts[0]
        guard coder == "encoder" || coder == "decoder" else { return nil }
        let rest = parts[1...].joined(separator: ".")
        for (old, new) in ["conv_in.": "conv_in.", "conv_out.": "conv_out.", "norm_out.": "conv_norm_out."] {
            if let p = rest.dropPrefix(old), isParameter(p) { return "\(coder).\(new)\(p)" }
        }
        if let p = rest.dropPrefix("mid.block_1.") { return vaeResnet(p).map { "\(coder).mid_block.resnets.0.\($0)" } }
        if let p = rest.dropPrefix("mid.block_2.") { return vaeResnet(p).map { "\(coder).mid_block.resnets.1.\($0)" } }
        if let p = rest.dropPrefix("mid.attn_1.") {
            let map = ["norm.": "group_norm.", "q.": "to_q.", "k.": "to_k.", "v.": "to_v.", "proj_out.": "to_out.0."]
            for (old, new) in map { if let q = p.dropPrefix(old), isParameter(q) { return "\(coder).mid_block.attentions.0.\(new)\(q)" } }
            return nil
        }
        guard parts.count >= 5, let n = Int(parts[2]), n >= 0, n < levels else { return nil }
        let tail = parts[3...].joined(separator: ".")
        switch (coder, parts[1]) {
        case ("encoder", "down"):
            if let p = tail.dropPrefix("downsample.conv."), isParameter(p) { return "encoder.down_blocks.\(n).downsamplers.0.conv.\(p)" }
            return blockResnet(tail).map { "encoder.down_blocks.\(n).resnets.\($0)" }
        case ("decoder", "up"):
            let block = levels - 1 - n
            if let p = tail.dropPrefix("upsample.conv."), isParameter(p) { return "decoder.up_blocks.\(block).upsamplers.0.conv.\(p)" }
            return blockResnet(tail).map { "decoder.up_blocks.\(block).resnets.\($0)" }
        default:
            return nil
        }
    }

    /// `block.J.<resnet parameter>` to `J.<diffusers parameter>`.
    private static func blockResnet(_ key: String) -> String? {
        let parts = key.split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "block", let j = Int(parts[1]) else { return nil }
        return vaeResnet(String(parts[2])).map { "\(j).\($0)" }
    }

    private static func vaeResnet(_ key: String) -> String? {
        let map = ["norm1.": "norm1.", "conv1.": "conv1.", "norm2.": "norm2.", "conv2.": "conv2.", "nin_shortcut.": "conv_shortcut."]
        for (old, new) in map { if let p = key.dropPrefix(old), isParameter(p) { return new + p } }
        return nil
    }

    /// Deprecated diffusers VAE attention names (`query`, `key`, `value`, `proj_attn`) to current ones.
    static func currentDiffusersVAEName(_ key: String) -> String {
        let map = [".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."]
        guard key.contains(".mid_block.attentions.") else { return key }
        for (old, new) in map where key.contains(old) { return key.replacingOccurrences(of: old, with: new) }
        return key
    }

    // MARK: - Text encoder

    /// transformers CLIP names with the `text_model.` prefix (added if missing).
    static func clipTextModelName(_ key: String) -> String {
        key.hasPrefix("text_model.") ? key : "text_model." + key
    }

    /// Names (with or without `text_model.`) dropped from a transformers text encoder: the `position_ids` buffer and
    /// `CLIPTextModelWithProjection`'s projection, which SD does not use.
    static func isIgnorableTextEncoderName(_ key: String) -> Bool {
        clipTextModelName(key) == "text_model.embeddings.position_ids" || key == "text_projection.weight"
    }

    /// OpenCLIP (`cond_stage_model.model.` removed) to transformers `CLIPTextModel` names.
    static func openCLIP(_ key: String, lastBlock: Int?) -> Target {
        switch key {
        case "token_embedding.weight": return .textEncoder("text_model.embeddings.token_embedding.weight")
        case "positional_embedding": return .textEncoder("text_model.embeddings.position_embedding.weight")
        case "ln_final.weight": return .textEncoder("text_model.final_layer_norm.weight")
        case "ln_final.bias": return .textEncoder("text_model.final_layer_norm.bias")
        default: break
        }
        let parts = key.split(separator: ".", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 4, parts[0] == "transformer", parts[1] == "resblocks", let n = Int(parts[2]) else { return .unknown }
        if n == lastBlock { return .ignored }
        let layer = "text_model.encoder.layers.\(n)"
        switch parts[3] {
        case "attn.in_proj_weight": return .fusedQKV(attention: "\(layer).self_attn", parameter: "weight")
        case "attn.in_proj_bias": return .fusedQKV(attention: "\(layer).self_attn", parameter: "bias")
        default: break
        }
        let map = ["ln_1.": "layer_norm1.", "ln_2.": "layer_norm2.", "mlp.c_fc.": "mlp.fc1.", "mlp.c_proj.": "mlp.fc2.",
                   "attn.out_proj.": "self_attn.out_proj."]
        for (old, new) in map { if let p = parts[3].dropPrefix(old), isParameter(p) { return .textEncoder("\(layer).\(new)\(p)") } }
        return .unknown
    }

    private static func isParameter(_ name: String) -> Bool { name == "weight" || name == "bias" }
}

fileprivate extension String {
    /// The rest of the string after `prefix`, or nil if it does not start with it.
    func dropPrefix(_ prefix: String) -> String? {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : nil
    }
}
