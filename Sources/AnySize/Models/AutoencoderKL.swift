/// diffusers `UNetMidBlock2D` of the VAE: resnet, single-head spatial self-attention (with its own
/// GroupNorm and residual), resnet. The attention is never modified by formulations.
struct VAEMidBlock {
    let resnet0: ResnetBlock2D, resnet1: ResnetBlock2D
    let attentionNorm: GroupNorm?
    let attention: AttentionLayer?

    init(_ s: ParameterScope, channels: Int, groups: Int, addAttention: Bool) throws {
        resnet0 = try ResnetBlock2D(s["resnets.0"], inChannels: channels, outChannels: channels, timeChannels: nil, groups: groups, eps: 1e-6)
        resnet1 = try ResnetBlock2D(s["resnets.1"], inChannels: channels, outChannels: channels, timeChannels: nil, groups: groups, eps: 1e-6)
        if addAttention {
            attentionNorm = try s["attentions.0"].groupNorm("group_norm", groups: groups, channels: channels, eps: 1e-6)
            attention = try AttentionLayer(s["attentions.0"], queryDim: channels, contextDim: nil, heads: 1, headDim: channels, bias: true)
        } else {
            attentionNorm = nil
            attention = nil
        }
    }

    func callAsFunction(_ x: Tensor, memoryBudget: Int) -> Tensor {
        var h = resnet0(x, tembActivated: nil)
        if let attention, let attentionNorm {
            let height = h.dim(2), width = h.dim(3)
            let tokens = Elementwise.imageToTokens(attentionNorm(h))                        // [B, HW, C]
            let a = Elementwise.tokensToImage(attention(tokens, memoryBudget: memoryBudget),
                                              height: height, width: width)                 // [B, C, H, W]
            Elementwise.addInPlace(a, h)
            h = a
        }
        return resnet1(h, tembActivated: nil)
    }
}

/// diffusers `AutoencoderKL` (the SD VAE): `Encoder` + `quant_conv`, `post_quant_conv` + `Decoder`.
public final class AutoencoderKL: @unchecked Sendable {
    public let config: VAEConfig

    let encConvIn: Conv2D
    let encDown: [(resnets: [ResnetBlock2D], downsampler: Downsample2D?)]
    let encMid: VAEMidBlock
    let encNormOut: GroupNorm, encConvOut: Conv2D
    let quantConv: Conv2D?

    let postQuantConv: Conv2D?
    let decConvIn: Conv2D
    let decMid: VAEMidBlock
    let decUp: [(resnets: [ResnetBlock2D], upsampler: Upsample2D?)]
    let decNormOut: GroupNorm, decConvOut: Conv2D

    /// Scratch-memory bound for the mid-block attention, in bytes.
    public var attentionMemoryBudget: Int = 512 << 20

    /// Builds the model from diffusers-named parameters, checking every shape against `config`. `precision` .bf16
    /// holds the linear and convolution weights in bfloat16 and runs their products in bfloat16 (for measurements:
    /// `anysize bench --component vae-decode --precision bf16`; generation keeps the VAE in float32).
    public init(config: VAEConfig, parameters store: ParameterStore, precision: Precision = .fp32) throws {
        self.config = config
        let s = ParameterScope(store, precision: precision)
        let ch = config.blockOutChannels
        let groups = config.normNumGroups
        let latent = config.latentChannels
        let levels = ch.count

        let e = s["encoder"]
        encConvIn = try e.conv("conv_in", in: config.inChannels, out: ch[0], kernel: 3, padding: 1)
        var down: [(resnets: [ResnetBlock2D], downsampler: Downsample2D?)] = []
        var output = ch[0]
        for i in 0 ..< levels {
            let b = e["down_blocks.\(i)"]
            let input = output
            output = ch[i]
            let resnets = try (0 ..< config.layersPerBlock).map {
                try ResnetBlock2D(b["resnets.\($0)"], inChannels: $0 == 0 ? input : output, outChannels: output,
                                  timeChannels: nil, groups: groups, eps: 1e-6)
            }
            let downsampler = i < levels - 1 ? try Downsample2D(b["downsamplers.0"], channels: output, asymmetricPadding: true) : nil
            down.append((resnets, downsampler))
        }
        encDown = down
        encMid = try VAEMidBlock(e["mid_block"], channels: ch[levels - 1], groups: groups, addAttention: config.midBlockAddAttention)
        encNormOut = try e.groupNorm("conv_norm_out", groups: groups, channels: ch[levels - 1], eps: 1e-6)
        encConvOut = try e.conv("conv_out", in: ch[levels - 1], out: 2 * latent, kernel: 3, padding: 1)
        quantConv = config.useQuantConv ? try s.conv("quant_conv", in: 2 * latent, out: 2 * latent, kernel: 1) : nil

        postQuantConv = config.usePostQuantConv ? try s.conv("post_quant_conv", in: latent, out: latent, kernel: 1) : nil
        let d = s["decoder"]
        let reversed = Array(ch.reversed())
        decConvIn = try d.conv("conv_in", in: latent, out: reversed[0], kernel: 3, padding: 1)
        decMid = try VAEMidBlock(d["mid_block"], channels: reversed[0], groups: groups, addAttention: config.midBlockAddAttention)
        var up: [(resnets: [ResnetBlock2D], upsampler: Upsample2D?)] = []
        output = reversed[0]
        for i in 0 ..< levels {
            let b = d["up_blocks.\(i)"]
            let prev = output
            output = reversed[i]
            let resnets = try (0 ..< config.layersPerBlock + 1).map {
                try ResnetBlock2D(b["resnets.\($0)"], inChannels: $0 == 0 ? prev : output, outChannels: output,
                                  timeChannels: nil, groups: groups, eps: 1e-6)
            }
            let upsampler = i < levels - 1 ? try Upsample2D(b["upsamplers.0"], channels: output) : nil
            up.append((resnets, upsampler))
        }
        decUp = up
        decNormOut = try d.groupNorm("conv_norm_out", groups: groups, channels: ch[0], eps: 1e-6)
        decConvOut = try d.conv("conv_out", in: ch[0], out: config.outChannels, kernel: 3, padding: 1)
    }

    /// Pixel downsampling factor (8 for SD).
    public var downsamplingFactor: Int { 1 << (config.blockOutChannels.count - 1) }

    /// Decoder: z [B, 4, h, w] (already divided by the scaling factor) -> image [B, 3, 8h, 8w] in about [-1, 1].
    public func decode(_ z: Tensor) -> Tensor {
        var h = postQuantConv.map { $0(z) } ?? z
        h = decConvIn(h)                                     // [B, C3, h, w]
        h = decMid(h, memoryBudget: attentionMemoryBudget)
        for block in decUp {
            for resnet in block.resnets { h = resnet(h, tembActivated: nil) }
            if let upsampler = block.upsampler { h = upsampler(h) }  // [B, C, 2h, 2w]
        }
        return decConvOut(decNormOut(h, silu: true))        // [B, 3, H, W]
    }

    /// Encoder: image [B, 3, H, W] in [-1, 1] -> diagonal Gaussian (mean, logvar clamped to [-30, 20]),
    /// each [B, 4, H/8, W/8] (ceil for sizes not divisible by 8).
    public func encode(_ x: Tensor) -> (mean: Tensor, logvar: Tensor) {
        Self.splitMoments(encodeMoments(x))
    }

    /// Encoder + quant_conv: image [B, 3, H, W] -> moments [B, 2L, h, w] (mean channels, then raw logvar).
    func encodeMoments(_ x: Tensor) -> Tensor {
        var h = encConvIn(x)                                 // [B, C0, H, W]
        for block in encDown {
            for resnet in block.resnets { h = resnet(h, tembActivated: nil) }
            if let downsampler = block.downsampler { h = downsampler(h) }
        }
        h = encMid(h, memoryBudget: attentionMemoryBudget)
        h = encConvOut(encNormOut(h, silu: true))           // [B, 2L, h, w]
        if let quantConv { h = quantConv(h) }
        return h
    }

    /// moments [B, 2L, h, w] -> (mean, logvar clamped to [-30, 20]), each [B, L, h, w] (diffusers
    /// `DiagonalGaussianDistribution`).
    static func splitMoments(_ h: Tensor) -> (mean: Tensor, logvar: Tensor) {
        let b = h.dim(0), l = h.dim(1) / 2, plane = h.dim(2) * h.dim(3)
        let mean = Tensor(zeros: [b, l, h.dim(2), h.dim(3)])
        let logvar = Tensor(zeros: [b, l, h.dim(2), h.dim(3)])
        for i in 0 ..< b {
            mean.pointer.advanced(by: i * l * plane).update(from: h.pointer + (2 * i) * l * plane, count: l * plane)
            let src = h.pointer + (2 * i + 1) * l * plane, dst = logvar.pointer + i * l * plane
            for j in 0 ..< l * plane { dst[j] = min(max(src[j], -30), 20) }
        }
        return (mean, logvar)
    }
}
