/// Analytic floating-point operation counts of one forward pass, from a model config and input size.
///
/// Counts the products that dominate the work, a multiply-add as 2 operations:
/// - convolution: 2 * Cout * Cin * k * k * Ho * Wo * B
/// - linear: 2 * in * out * rows
/// - attention: 4 * N * M * D * heads * B (Q K^T and P V; N queries, M keys)
/// Normalizations, activations, softmax and adds are left out (well under 1% of the total for SD).
/// The counts do not depend on how AnySize or diffusers compute the ops, so FLOP / s compares the two.
public enum FLOPCount {
    /// 2 * Cout * Cin * k * k * Ho * Wo * B.
    public static func convolution(inChannels: Int, outChannels: Int, kernel: Int, outHeight: Int, outWidth: Int,
                                   batch: Int) -> Double {
        2 * Double(outChannels) * Double(inChannels) * Double(kernel * kernel) * Double(outHeight * outWidth) * Double(batch)
    }

    /// 2 * in * out * rows.
    public static func linear(inFeatures: Int, outFeatures: Int, rows: Int) -> Double {
        2 * Double(inFeatures) * Double(outFeatures) * Double(rows)
    }

    /// 4 * N * M * D * heads * B, with `channels` = D * heads.
    public static func attention(queries: Int, keys: Int, channels: Int, batch: Int) -> Double {
        4 * Double(queries) * Double(keys) * Double(channels) * Double(batch)
    }

    /// One `UNet2DConditionModel` call on latents [batch, in, latentHeight, latentWidth] with a text context
    /// of `contextLength` tokens. `levelGrids` (one per level) replaces the ceil-halved grids of the levels, for
    /// compositions that resize the inner levels (Deep Shrink).
    public static func unet(_ config: UNetConfig, latentHeight: Int, latentWidth: Int, batch: Int,
                            contextLength: Int = 77, levelGrids: [(height: Int, width: Int)]? = nil) -> Double {
        let ch = config.blockOutChannels, levels = ch.count
        let timeDim = ch[0] * 4
        var total = linear(inFeatures: ch[0], outFeatures: timeDim, rows: batch)
            + linear(inFeatures: timeDim, outFeatures: timeDim, rows: batch)
        func resnet(_ cin: Int, _ cout: Int, _ h: Int, _ w: Int) -> Double {
            var f = convolution(inChannels: cin, outChannels: cout, kernel: 3, outHeight: h, outWidth: w, batch: batch)
                + convolution(inChannels: cout, outChannels: cout, kernel: 3, outHeight: h, outWidth: w, batch: batch)
                + linear(inFeatures: timeDim, outFeatures: cout, rows: batch)
            if cin != cout { f += convolution(inChannels: cin, outChannels: cout, kernel: 1, outHeight: h, outWidth: w, batch: batch) }
            return f
        }
        func transformer(_ c: Int, _ h: Int, _ w: Int, level: Int) -> Double {
            let n = h * w, rows = n * batch, m = contextLength
            var f = 2 * linear(inFeatures: c, outFeatures: c, rows: rows)                 // proj_in, proj_out
            let block = 4 * linear(inFeatures: c, outFeatures: c, rows: rows)             // attn1 q, k, v, out
                + attention(queries: n, keys: n, channels: c, batch: batch)
                + 2 * linear(inFeatures: c, outFeatures: c, rows: rows)                   // attn2 q, out
                + 2 * linear(inFeatures: config.crossAttentionDim, outFeatures: c, rows: m * batch)  // attn2 k, v
                + attention(queries: n, keys: m, channels: c, batch: batch)
                + linear(inFeatures: c, outFeatures: 8 * c, rows: rows)                   // GEGLU projection
                + linear(inFeatures: 4 * c, outFeatures: c, rows: rows)                   // ff out
            f += Double(config.transformerLayersPerBlock[level]) * block
            return f
        }
        var grids = [(latentHeight, latentWidth)]
        for level in 1 ..< levels {
            grids.append((UNetGeometry.grid(latentHeight, level: level), UNetGeometry.grid(latentWidth, level: level)))
        }
        if let levelGrids, levelGrids.count == levels { grids = levelGrids.map { ($0.height, $0.width) } }
        let (h0, w0) = grids[0]
        total += convolution(inChannels: config.inChannels, outChannels: ch[0], kernel: 3, outHeight: h0, outWidth: w0, batch: batch)
        var skipChannels = [ch[0]]
        var current = ch[0]
        for level in 0 ..< levels {
            let (h, w) = grids[level]
            let attention = config.downBlockTypes[level] == "CrossAttnDownBlock2D"
            for _ in 0 ..< config.layersPerBlock {
                total += resnet(current, ch[level], h, w)
                current = ch[level]
                if attention { total += transformer(current, h, w, level: level) }
                skipChannels.append(current)
            }
            if level < levels - 1 {
                let (hn, wn) = grids[level + 1]
                total += convolution(inChannels: current, outChannels: current, kernel: 3, outHeight: hn, outWidth: wn, batch: batch)
                skipChannels.append(current)
            }
        }
        let (hd, wd) = grids[levels - 1]
        total += 2 * resnet(current, current, hd, wd) + transformer(current, hd, wd, level: levels - 1)
        for i in 0 ..< levels {
            let level = levels - 1 - i
            let (h, w) = grids[level]
            let attention = config.upBlockTypes[i] == "CrossAttnUpBlock2D"
            for _ in 0 ..< config.layersPerBlock + 1 {
                let skip = skipChannels.removeLast()
                total += resnet(current + skip, ch[level], h, w)
                current = ch[level]
                if attention { total += transformer(current, h, w, level: level) }
            }
            if level > 0 {
                let (hu, wu) = grids[level - 1]
                total += convolution(inChannels: current, outChannels: current, kernel: 3, outHeight: hu, outWidth: wu, batch: batch)
            }
        }
        total += convolution(inChannels: ch[0], outChannels: config.outChannels, kernel: 3, outHeight: h0, outWidth: w0, batch: batch)
        return total
    }

    /// `AutoencoderKL.decode` of latents [batch, latent, latentHeight, latentWidth].
    public static func vaeDecoder(_ config: VAEConfig, latentHeight: Int, latentWidth: Int, batch: Int) -> Double {
        let ch = Array(config.blockOutChannels.reversed()), levels = ch.count
        func resnet(_ cin: Int, _ cout: Int, _ h: Int, _ w: Int) -> Double {
            var f = convolution(inChannels: cin, outChannels: cout, kernel: 3, outHeight: h, outWidth: w, batch: batch)
                + convolution(inChannels: cout, outChannels: cout, kernel: 3, outHeight: h, outWidth: w, batch: batch)
            if cin != cout { f += convolution(inChannels: cin, outChannels: cout, kernel: 1, outHeight: h, outWidth: w, batch: batch) }
            return f
        }
        var h = latentHeight, w = latentWidth
        let latent = config.latentChannels
        var total = 0.0
        if config.usePostQuantConv {
            total += convolution(inChannels: latent, outChannels: latent, kernel: 1, outHeight: h, outWidth: w, batch: batch)
        }
        total += convolution(inChannels: latent, outChannels: ch[0], kernel: 3, outHeight: h, outWidth: w, batch: batch)
        total += 2 * resnet(ch[0], ch[0], h, w)
        if config.midBlockAddAttention {
            let n = h * w
            total += 4 * linear(inFeatures: ch[0], outFeatures: ch[0], rows: n * batch)
                + attention(queries: n, keys: n, channels: ch[0], batch: batch)
        }
        var current = ch[0]
        for i in 0 ..< levels {
            for _ in 0 ..< config.layersPerBlock + 1 {
                total += resnet(current, ch[i], h, w)
                current = ch[i]
            }
            if i < levels - 1 {
                h *= 2
                w *= 2
                total += convolution(inChannels: current, outChannels: current, kernel: 3, outHeight: h, outWidth: w, batch: batch)
            }
        }
        total += convolution(inChannels: current, outChannels: config.outChannels, kernel: 3, outHeight: h, outWidth: w, batch: batch)
        return total
    }

    /// `CLIPTextModel` on `batch` windows of `tokens` tokens (all layers, clip skip 1).
    public static func textEncoder(_ config: CLIPTextConfig, tokens: Int, batch: Int) -> Double {
        let d = config.hiddenSize, rows = tokens * batch
        let layer = 4 * linear(inFeatures: d, outFeatures: d, rows: rows)
            + attention(queries: tokens, keys: tokens, channels: d, batch: batch)
            + linear(inFeatures: d, outFeatures: config.intermediateSize, rows: rows)
            + linear(inFeatures: config.intermediateSize, outFeatures: d, rows: rows)
        return Double(config.numHiddenLayers) * layer
    }
}
