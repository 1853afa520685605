/// diffusers `ResnetBlock2D` (time_embedding_norm "default", output_scale_factor 1):
/// h = conv2(silu(norm2(conv1(silu(norm1(x))) + proj(silu(temb))))); out = shortcut(x) + h.
struct ResnetBlock2D {
    let norm1: GroupNorm, conv1: Conv2D
    let timeEmbProj: Linear?
    let norm2: GroupNorm, conv2: Conv2D
    let convShortcut: Conv2D?

    init(_ s: ParameterScope, inChannels: Int, outChannels: Int, timeChannels: Int?, groups: Int, eps: Float) throws {
        norm1 = try s.groupNorm("norm1", groups: groups, channels: inChannels, eps: eps)
        conv1 = try s.conv("conv1", in: inChannels, out: outChannels, kernel: 3, padding: 1)
        timeEmbProj = try timeChannels.map { try s.linear("time_emb_proj", in: $0, out: outChannels) }
        norm2 = try s.groupNorm("norm2", groups: groups, channels: outChannels, eps: eps)
        conv2 = try s.conv("conv2", in: outChannels, out: outChannels, kernel: 3, padding: 1)
        convShortcut = inChannels == outChannels ? nil
            : try s.conv("conv_shortcut", in: inChannels, out: outChannels, kernel: 1)
    }

    /// x [B, Cin, H, W], tembActivated = silu(temb) [B, T] -> [B, Cout, H, W]. `dilation` > 1 re-dilates conv1
    /// and conv2 (ScaleCrafter, `Conv2D.redilated`); the 1x1 shortcut is unchanged.
    func callAsFunction(_ x: Tensor, tembActivated: Tensor?, dilation: Double = 1) -> Tensor {
        var h = conv1.redilated(norm1(x, silu: true), factor: dilation)  // [B, Cout, H, W]
        if let timeEmbProj, let tembActivated {
            Elementwise.addChannelBiasInPlace(h, timeEmbProj(tembActivated))
        }
        h = conv2.redilated(norm2(h, silu: true), factor: dilation)      // [B, Cout, H, W]
        let shortcut = convShortcut.map { $0(x) } ?? x
        Elementwise.addInPlace(h, shortcut)
        return h
    }
}

/// diffusers `Downsample2D` with a convolution: 3x3, stride 2. The UNet pads 1 on every side; the VAE
/// encoder pads (0, 1, 0, 1) (right and bottom only) and convolves with padding 0.
struct Downsample2D {
    let conv: Conv2D
    let asymmetricPadding: Bool

    init(_ s: ParameterScope, channels: Int, asymmetricPadding: Bool) throws {
        conv = try s.conv("conv", in: channels, out: channels, kernel: 3, stride: 2, padding: asymmetricPadding ? 0 : 1)
        self.asymmetricPadding = asymmetricPadding
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        asymmetricPadding ? conv(Elementwise.padBottomRight(x)) : conv(x)
    }
}

/// diffusers `Upsample2D` with a convolution: nearest-neighbour resize to `size` (2x when nil), then 3x3 conv.
struct Upsample2D {
    let conv: Conv2D

    init(_ s: ParameterScope, channels: Int) throws {
        conv = try s.conv("conv", in: channels, out: channels, kernel: 3, padding: 1)
    }

    func callAsFunction(_ x: Tensor, size: (height: Int, width: Int)? = nil) -> Tensor {
        let target = size ?? (x.dim(2) * 2, x.dim(3) * 2)
        return conv(Elementwise.upsampleNearest(x, height: target.height, width: target.width))
    }
}
