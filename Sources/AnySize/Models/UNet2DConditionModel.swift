import Foundation

/// diffusers `UNet2DConditionModel` for Stable Diffusion 1.x / 2.x: 4 levels of
/// CrossAttnDownBlock2D / DownBlock2D, a UNetMidBlock2DCrossAttn, and mirrored up blocks.
/// Any latent size of at least 8x8: upsampled features are resized to the skip tensor's size, as
/// diffusers' `upsample_size` does, so sizes that do not halve evenly work.
public final class UNet2DConditionModel: @unchecked Sendable {
    public let config: UNetConfig

    struct DownBlock {
        var resnets: [ResnetBlock2D]
        var attentions: [Transformer2DModel]
        var downsampler: Downsample2D?
    }

    struct UpBlock {
        var resnets: [ResnetBlock2D]
        var attentions: [Transformer2DModel]
        var upsampler: Upsample2D?
    }

    let convIn: Conv2D
    let timeLinear1: Linear, timeLinear2: Linear
    let downBlocks: [DownBlock]
    let midResnets: [ResnetBlock2D]
    let midAttention: Transformer2DModel
    let upBlocks: [UpBlock]
    let convNormOut: GroupNorm
    let convOut: Conv2D
    /// Number of self-attention layers (the entropy report's layer count).
    public let selfAttentionLayerCount: Int
    /// Bound on the transformer feed-forward's per-chunk scratch (its [tokens, 8C] GEGLU input is computed in
    /// chunks of tokens), in bytes. 64 MB: 3,500 tokens at 320 channels, against 1.3 GB for the whole
    /// 2048 x 2048 canvas with guidance.
    public var feedForwardChunkBytes: Int = 64 << 20

    /// Number format of the linear layers, convolutions and attention products (`.bf16`: weights held in
    /// bfloat16 only, float32 accumulation; norms, softmax and the residual stream stay float32).
    public let precision: Precision

    /// Builds the model from diffusers-named parameters, checking every shape against `config`.
    public init(config: UNetConfig, parameters store: ParameterStore, precision: Precision = .fp32) throws {
        self.config = config
        self.precision = precision
        let s = ParameterScope(store, precision: precision)
        let channels = config.blockOutChannels
        let levels = channels.count
        guard levels >= 1, config.downBlockTypes.count == levels, config.upBlockTypes.count == levels else {
            throw AnySizeError(.unsupportedConfig,
                "\(store.source): unet config has \(levels) block_out_channels but \(config.downBlockTypes.count) down / \(config.upBlockTypes.count) up blocks")
        }
        let supportedDown: Set<String> = ["CrossAttnDownBlock2D", "DownBlock2D"]
        let supportedUp: Set<String> = ["CrossAttnUpBlock2D", "UpBlock2D"]
        for t in config.downBlockTypes + config.upBlockTypes where !supportedDown.contains(t) && !supportedUp.contains(t) {
            throw AnySizeError(.unsupportedConfig, "\(store.source): unet block type '\(t)' is not a Stable Diffusion 1.x/2.x block")
        }
        if let c = config.classEmbedType {
            throw AnySizeError(.unsupportedConfig, "\(store.source): unet class_embed_type '\(c)' is not supported (only SD 1.x/2.x text-to-image UNets)")
        }
        if let a = config.additionEmbedType {
            throw AnySizeError(.unsupportedConfig, "\(store.source): unet addition_embed_type '\(a)' (SDXL-style) is not supported; AnySize runs SD 1.x/2.x")
        }
        let groups = config.normNumGroups
        let eps = Float(config.normEps)
        let timeDim = channels[0] * 4
        let ctx = config.crossAttentionDim

        convIn = try s.conv("conv_in", in: config.inChannels, out: channels[0], kernel: 3, padding: 1)
        timeLinear1 = try s["time_embedding"].linear("linear_1", in: channels[0], out: timeDim)
        timeLinear2 = try s["time_embedding"].linear("linear_2", in: timeDim, out: timeDim)

        var selfAttentionIndex = 0
        func transformer(_ scope: ParameterScope, channels c: Int, level: Int) throws -> Transformer2DModel {
            let heads = config.heads(level: level)
            guard heads > 0, c % heads == 0 else {
                throw AnySizeError(.unsupportedConfig, "\(store.source): unet level \(level) has \(c) channels, not divisible by \(heads) heads")
            }
            let layers = config.transformerLayersPerBlock[level]
            let t = try Transformer2DModel(scope, channels: c, heads: heads, layers: layers, contextDim: ctx,
                                           groups: groups, linearProjection: config.useLinearProjection,
                                           level: level, firstSelfAttentionIndex: selfAttentionIndex)
            selfAttentionIndex += layers
            return t
        }

        var down: [DownBlock] = []
        var outChannels = channels[0]
        for level in 0 ..< levels {
            let b = s["down_blocks.\(level)"]
            let inChannels = outChannels
            outChannels = channels[level]
            let hasAttention = config.downBlockTypes[level] == "CrossAttnDownBlock2D"
            var block = DownBlock(resnets: [], attentions: [], downsampler: nil)
            for j in 0 ..< config.layersPerBlock {
                block.resnets.append(try ResnetBlock2D(b["resnets.\(j)"], inChannels: j == 0 ? inChannels : outChannels,
                                                       outChannels: outChannels, timeChannels: timeDim, groups: groups, eps: eps))
                if hasAttention {
                    block.attentions.append(try transformer(b["attentions.\(j)"], channels: outChannels, level: level))
                }
            }
            if level < levels - 1 {
                block.downsampler = try Downsample2D(b["downsamplers.0"], channels: outChannels, asymmetricPadding: false)
            }
            down.append(block)
        }
        downBlocks = down

        let deepest = channels[levels - 1]
        midResnets = try (0 ..< 2).map {
            try ResnetBlock2D(s["mid_block.resnets.\($0)"], inChannels: deepest, outChannels: deepest,
                              timeChannels: timeDim, groups: groups, eps: eps)
        }
        midAttention = try transformer(s["mid_block.attentions.0"], channels: deepest, level: levels - 1)

        var up: [UpBlock] = []
        let reversed = Array(channels.reversed())
        var output = reversed[0]
        for i in 0 ..< levels {
            let b = s["up_blocks.\(i)"]
            let level = levels - 1 - i
            let prevOutput = output
            output = reversed[i]
            let input = reversed[min(i + 1, levels - 1)]
            let hasAttention = config.upBlockTypes[i] == "CrossAttnUpBlock2D"
            var block = UpBlock(resnets: [], attentions: [], upsampler: nil)
            let layers = config.layersPerBlock + 1
            for j in 0 ..< layers {
                let skip = j == layers - 1 ? input : output
                let resIn = j == 0 ? prevOutput : output
                block.resnets.append(try ResnetBlock2D(b["resnets.\(j)"], inChannels: resIn + skip, outChannels: output,
                                                       timeChannels: timeDim, groups: groups, eps: eps))
                if hasAttention {
                    block.attentions.append(try transformer(b["attentions.\(j)"], channels: output, level: level))
                }
            }
            if i < levels - 1 { block.upsampler = try Upsample2D(b["upsamplers.0"], channels: output) }
            up.append(block)
        }
        upBlocks = up
        selfAttentionLayerCount = selfAttentionIndex
        convNormOut = try s.groupNorm("conv_norm_out", groups: groups, channels: channels[0], eps: eps)
        convOut = try s.conv("conv_out", in: channels[0], out: config.outChannels, kernel: 3, padding: 1)
    }

    /// diffusers `get_timestep_embedding` (max_period 10000, scale 1) for one timestep per batch element.
    func timestepEmbedding(_ timesteps: [Float]) -> Tensor {
        let dim = config.blockOutChannels[0]
        let half = dim / 2
        let out = Tensor(zeros: [timesteps.count, dim])
        let shift = Float(config.freqShift)
        for (b, t) in timesteps.enumerated() {
            let row = out.pointer + b * dim
            for i in 0 ..< half {
                // freq_i = exp(-ln(10000) * i / (half - freq_shift)), float32 as in torch
                let freq = Foundation.exp(-Float(log(10000.0)) * Float(i) / (Float(half) - shift))
                let arg = t * freq
                let sinIndex = config.flipSinToCos ? half + i : i
                let cosIndex = config.flipSinToCos ? i : half + i
                row[sinIndex] = Foundation.sin(arg)
                row[cosIndex] = Foundation.cos(arg)
            }
        }
        return out
    }

    /// Kohya Deep Shrink's downscale (ComfyUI `PatchModelAddDownscale`, applied after the skip of input block 3,
    /// i.e. after down block 0's downsampler output is stored): bicubic to round(side * (1 / f)), Python rounding.
    func deepShrink(_ h: Tensor, factor f: Double) -> Tensor {
        Elementwise.resizeBicubic(h, height: Conv2D.pythonRound(Double(h.dim(2)) * (1 / f)),
                                  width: Conv2D.pythonRound(Double(h.dim(3)) * (1 / f)))
    }

    /// Predicts noise (or v) for `sample` [B, 4, h, w] at `timesteps` (one per batch element) given text
    /// embeddings `context` [B, M, cross_attention_dim]. h, w >= 8. `composition` re-dilates convolutions
    /// or shrinks the inner levels for this call (`UNetCallComposition`; `.none` runs the model as trained):
    /// - re-dilation: conv1 and conv2 of every resnet outside level 0 (down blocks 1-3, mid, up blocks 0-2);
    /// - Deep Shrink: after down block 0 has stored its downsampler output as a skip, the hidden state is resized
    ///   by 1 / f (bicubic) and levels 1-3 run on that grid; on the way up, before each skip concatenation whose
    ///   skip has another size (only the level-0 downsampler's), it is resized to the skip's size (bicubic), as
    ///   ComfyUI's output-block patch does.
    public func callAsFunction(_ sample: Tensor, timesteps: [Float], context: Tensor,
                               attention: AttentionContext, composition: UNetCallComposition = .none) -> Tensor {
        precondition(sample.rank == 4 && timesteps.count == sample.dim(0) && context.dim(0) == sample.dim(0),
                     "unet: sample \(sample.shape), \(timesteps.count) timesteps, context \(context.shape)")
        var temb = timeLinear1(timestepEmbedding(timesteps))   // [B, 4*C0]
        Activation.siluInPlace(temb)
        temb = timeLinear2(temb)
        Activation.siluInPlace(temb)                           // every resnet applies silu(temb) first

        let ff = feedForwardChunkBytes
        // Re-dilation (ScaleCrafter) applies to the resnets of every level but 0: down blocks 1-3, mid, up blocks 0-2.
        let dilation = composition.redilates ? composition.dilation : 1
        var h = convIn(sample)                                 // [B, C0, h, w]
        var skips: [Tensor] = [h]
        for (level, block) in downBlocks.enumerated() {
            for (j, resnet) in block.resnets.enumerated() {
                h = resnet(h, tembActivated: temb, dilation: level == 0 ? 1 : dilation)
                if j < block.attentions.count {
                    h = block.attentions[j](h, context: context, attention: attention, feedForwardChunkBytes: ff)
                }
                skips.append(h)
            }
            if let downsampler = block.downsampler {
                h = downsampler(h)                             // [B, C, ceil(h/2), ceil(w/2)]
                skips.append(h)
            }
            if level == 0 && composition.shrinks {
                h = deepShrink(h, factor: composition.deepShrinkFactor)  // [B, C, round(h/2f), round(w/2f)]
            }
        }
        h = midResnets[0](h, tembActivated: temb, dilation: dilation)
        h = midAttention(h, context: context, attention: attention, feedForwardChunkBytes: ff)
        h = midResnets[1](h, tembActivated: temb, dilation: dilation)

        for (i, block) in upBlocks.enumerated() {
            let level = upBlocks.count - 1 - i
            for (j, resnet) in block.resnets.enumerated() {
                if composition.shrinks, let skip = skips.last, h.shape[2...] != skip.shape[2...] {
                    h = Elementwise.resizeBicubic(h, height: skip.dim(2), width: skip.dim(3))  // Deep Shrink: back
                }
                h = Elementwise.concatChannels(h, skips.removeLast())  // [B, C + Cskip, h, w]; frees both inputs
                h = resnet(h, tembActivated: temb, dilation: level == 0 ? 1 : dilation)
                if j < block.attentions.count {
                    h = block.attentions[j](h, context: context, attention: attention, feedForwardChunkBytes: ff)
                }
            }
            if let upsampler = block.upsampler, let next = skips.last {
                h = upsampler(h, size: (next.dim(2), next.dim(3)))  // resized to the next skip's grid
            }
        }
        h = convOut(convNormOut(h, silu: true))               // [B, out, h, w]
        return h
    }
}
