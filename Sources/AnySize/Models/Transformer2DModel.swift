/// diffusers `BasicTransformerBlock` (SD): self-attention, cross-attention, GEGLU feed-forward, each
/// pre-LayerNorm with a residual.
struct BasicTransformerBlock {
    let norm1: LayerNorm, attn1: AttentionLayer
    let norm2: LayerNorm, attn2: AttentionLayer
    let norm3: LayerNorm, ffIn: Linear, ffOut: Linear
    /// Index among the UNet's self-attention layers (execution order).
    let selfAttentionIndex: Int

    init(_ s: ParameterScope, dim: Int, heads: Int, contextDim: Int, selfAttentionIndex: Int) throws {
        let headDim = dim / heads
        norm1 = try s.layerNorm("norm1", channels: dim, eps: 1e-5)
        attn1 = try AttentionLayer(s["attn1"], queryDim: dim, contextDim: nil, heads: heads, headDim: headDim)
        norm2 = try s.layerNorm("norm2", channels: dim, eps: 1e-5)
        attn2 = try AttentionLayer(s["attn2"], queryDim: dim, contextDim: contextDim, heads: heads, headDim: headDim)
        norm3 = try s.layerNorm("norm3", channels: dim, eps: 1e-5)
        ffIn = try s["ff.net.0"].linear("proj", in: dim, out: dim * 8)
        ffOut = try s["ff.net"].linear("2", in: dim * 4, out: dim)
        self.selfAttentionIndex = selfAttentionIndex
    }

    /// x [B, HW, C] on a grid of `height` x `width` tokens at UNet `level`; context [B, 77k, Cc].
    func callAsFunction(_ x: Tensor, context: Tensor, level: Int, height: Int, width: Int,
                        attention: AttentionContext, feedForwardChunkBytes: Int) -> Tensor {
        let trained = attention.trainedGrid(level: level)
        let site = AttentionSite(layer: selfAttentionIndex, level: level, height: height, width: width,
                                 trainedHeight: trained.height, trainedWidth: trained.width)
        let modifier = attention.formulation.modifier(site: site, sigma: attention.sigma)
        var entropy: Double = 0
        let h = x
        let a1: Tensor
        if attention.entropySamples != nil {
            a1 = attn1(norm1(h), modifier: modifier, memoryBudget: attention.memoryBudget, entropy: &entropy)
            attention.entropySamples?.append(AttentionEntropySample(site: site, entropy: entropy))
        } else {
            a1 = attn1(norm1(h), modifier: modifier, memoryBudget: attention.memoryBudget)
        }
        Elementwise.addInPlace(a1, h)                                                     // [B, HW, C]
        let a2 = attn2(norm2(a1), context: context, memoryBudget: attention.memoryBudget)  // [B, HW, C]
        Elementwise.addInPlace(a2, a1)
        feedForward(a2, chunkBytes: feedForwardChunkBytes)                                // [B, HW, C]
        return a2
    }

    /// x += ff(norm3(x)) for x [B, N, C], over chunks of token rows so that the [rows, 8C] GEGLU input and its
    /// companions (about 15C floats per row) stay within `chunkBytes`. LayerNorm and the linear layers act on
    /// each row alone, so chunking does not change the result.
    func feedForward(_ x: Tensor, chunkBytes: Int) {
        let channels = x.dim(-1), totalRows = x.count / max(channels, 1)
        let chunkRows = max(1, min(totalRows, chunkBytes / (15 * channels * MemoryLayout<Float>.size)))
        var start = 0
        while start < totalRows {
            let rows = min(chunkRows, totalRows - start)
            let rowsOf = x.pointer + start * channels
            let chunk = Tensor(uninitialized: [rows, channels])
            chunk.pointer.update(from: rowsOf, count: rows * channels)
            let f: Tensor                                                                  // [rows, C]
            if case .bfloat16(let inWeight) = ffIn.storedWeight, case .bfloat16(let outWeight) = ffOut.storedWeight {
                // bf16: GEGLU applied to each worker's block of the first product and rounded there (the same
                // values as geglu(ffIn(...)) rounded by ffOut, without the [rows, 8C] float32 product in memory)
                let hidden = MatMul.gegluBFloat16(norm3(chunk), weight: inWeight, bias: ffIn.bias)
                f = MatMul.linear(hidden, weight: outWeight, bias: ffOut.bias)
            } else {
                f = ffOut(Activation.geglu(ffIn(norm3(chunk))))
            }
            for i in 0 ..< rows * channels { rowsOf[i] += f.pointer[i] }
            start += rows
        }
    }
}

/// diffusers `Transformer2DModel` (continuous input): GroupNorm, `proj_in` (1x1 conv for SD1, linear for
/// SD2), transformer blocks over the tokens, `proj_out`, residual.
struct Transformer2DModel {
    let norm: GroupNorm
    let projIn: Conv2D?, projInLinear: Linear?
    let blocks: [BasicTransformerBlock]
    let projOut: Conv2D?, projOutLinear: Linear?
    let level: Int

    init(_ s: ParameterScope, channels: Int, heads: Int, layers: Int, contextDim: Int, groups: Int,
         linearProjection: Bool, level: Int, firstSelfAttentionIndex: Int) throws {
        norm = try s.groupNorm("norm", groups: groups, channels: channels, eps: 1e-6)
        if linearProjection {
            projInLinear = try s.linear("proj_in", in: channels, out: channels)
            projOutLinear = try s.linear("proj_out", in: channels, out: channels)
            projIn = nil
            projOut = nil
        } else {
            projIn = try s.conv("proj_in", in: channels, out: channels, kernel: 1)
            projOut = try s.conv("proj_out", in: channels, out: channels, kernel: 1)
            projInLinear = nil
            projOutLinear = nil
        }
        blocks = try (0 ..< layers).map {
            try BasicTransformerBlock(s["transformer_blocks.\($0)"], dim: channels, heads: heads,
                                      contextDim: contextDim, selfAttentionIndex: firstSelfAttentionIndex + $0)
        }
        self.level = level
    }

    /// x [B, C, H, W]; context [B, M, Cc] -> [B, C, H, W]
    func callAsFunction(_ x: Tensor, context: Tensor, attention: AttentionContext, feedForwardChunkBytes: Int) -> Tensor {
        let height = x.dim(2), width = x.dim(3)
        var h = norm(x)                                                  // [B, C, H, W]
        if let projIn { h = projIn(h) }
        h = Elementwise.imageToTokens(h)                                 // [B, HW, C]
        if let projInLinear { h = projInLinear(h) }
        for block in blocks {
            h = block(h, context: context, level: level, height: height, width: width, attention: attention,
                      feedForwardChunkBytes: feedForwardChunkBytes)
        }
        if let projOutLinear { h = projOutLinear(h) }
        h = Elementwise.tokensToImage(h, height: height, width: width)  // [B, C, H, W]
        if let projOut { h = projOut(h) }
        Elementwise.addInPlace(h, x)
        return h
    }
}
