/// Causal self-attention mask for the text encoder: query i sees keys 0...i.
struct CausalMask: AttentionLogitModifier {
    func isBlockActive(queries: Range<Int>, keys: Range<Int>) -> Bool {
        keys.lowerBound <= queries.upperBound - 1
    }

    func adjust(_ logits: UnsafeMutablePointer<Float>, stride: Int, queries: Range<Int>, keys: Range<Int>) {
        for (r, q) in queries.enumerated() where keys.upperBound - 1 > q {
            let row = logits + r * stride
            for k in max(q + 1, keys.lowerBound) ..< keys.upperBound { row[k - keys.lowerBound] = -.infinity }
        }
    }
}

/// transformers `CLIPTextModel`: token + position embeddings, pre-LayerNorm transformer encoder with a
/// causal mask, final LayerNorm. SD1 uses OpenAI CLIP ViT-L/14 (quick-GELU); SD2 the OpenCLIP ViT-H
/// text tower (GELU) as diffusers' SD2 `text_encoder` folders hold it.
public final class CLIPTextModel: @unchecked Sendable {
    public let config: CLIPTextConfig

    struct EncoderLayer {
        let layerNorm1: LayerNorm, layerNorm2: LayerNorm
        let qProj: Linear, kProj: Linear, vProj: Linear, outProj: Linear
        let fc1: Linear, fc2: Linear
    }

    let tokenEmbedding: Tensor     // [vocab, D]
    let positionEmbedding: Tensor  // [positions, D]
    let layers: [EncoderLayer]
    let finalLayerNorm: LayerNorm

    /// Builds the model from transformers-named parameters (`text_model.` prefix). `precision` .bf16 holds the
    /// linear weights in bfloat16 and runs their products in bfloat16 (for measurements: `anysize bench --component
    /// text-encoder --precision bf16`; generation keeps the text encoder in float32).
    public init(config: CLIPTextConfig, parameters store: ParameterStore, precision: Precision = .fp32) throws {
        self.config = config
        let s = ParameterScope(store, prefix: "text_model", precision: precision)
        let d = config.hiddenSize, ff = config.intermediateSize
        let eps = Float(config.layerNormEps)
        guard config.numAttentionHeads > 0, d % config.numAttentionHeads == 0 else {
            throw AnySizeError(.unsupportedConfig,
                "\(store.source): text encoder hidden_size \(d) is not divisible by \(config.numAttentionHeads) heads")
        }
        guard config.hiddenAct == "quick_gelu" || config.hiddenAct == "gelu" else {
            throw AnySizeError(.unsupportedConfig,
                "\(store.source): text encoder hidden_act '\(config.hiddenAct)' is not supported (quick_gelu or gelu)")
        }
        tokenEmbedding = try s["embeddings.token_embedding"].tensor("weight", shape: [config.vocabSize, d])
        positionEmbedding = try s["embeddings.position_embedding"].tensor("weight", shape: [config.maxPositionEmbeddings, d])
        store.ignore(s.name("embeddings.position_ids"))
        layers = try (0 ..< config.numHiddenLayers).map { i in
            let l = s["encoder.layers.\(i)"]
            return EncoderLayer(
                layerNorm1: try l.layerNorm("layer_norm1", channels: d, eps: eps),
                layerNorm2: try l.layerNorm("layer_norm2", channels: d, eps: eps),
                qProj: try l["self_attn"].linear("q_proj", in: d, out: d),
                kProj: try l["self_attn"].linear("k_proj", in: d, out: d),
                vProj: try l["self_attn"].linear("v_proj", in: d, out: d),
                outProj: try l["self_attn"].linear("out_proj", in: d, out: d),
                fc1: try l["mlp"].linear("fc1", in: d, out: ff),
                fc2: try l["mlp"].linear("fc2", in: ff, out: d))
        }
        finalLayerNorm = try s.layerNorm("final_layer_norm", channels: d, eps: eps)
    }

    /// Encodes token ids [B][L] (L <= max positions) to hidden states [B, L, D].
    /// `clipSkip` follows A1111: 1 = last layer, 2 = penultimate layer; the final LayerNorm is applied either way
    /// (diffusers' `clip_skip` is this minus one).
    public func callAsFunction(_ ids: [[Int]], clipSkip: Int = 1) throws -> Tensor {
        guard let length = ids.first?.count, ids.allSatisfy({ $0.count == length }),
              length <= config.maxPositionEmbeddings else {
            throw AnySizeError(.invalidArgument, "text encoder: token windows must share one length <= \(config.maxPositionEmbeddings)")
        }
        guard clipSkip >= 1, clipSkip <= layers.count else {
            throw AnySizeError(.invalidArgument, "--clip-skip \(clipSkip) is out of range; use 1 ... \(layers.count) for this text encoder")
        }
        let d = config.hiddenSize
        var h = Tensor(zeros: [ids.count, length, d])
        for (b, row) in ids.enumerated() {
            for (p, id) in row.enumerated() {
                guard id >= 0, id < config.vocabSize else {
                    throw AnySizeError(.invalidArgument, "text encoder: token id \(id) is outside the vocabulary of \(config.vocabSize); tokenizer and text encoder do not match")
                }
                let dst = h.pointer + (b * length + p) * d
                let tok = tokenEmbedding.pointer + id * d, pos = positionEmbedding.pointer + p * d
                for c in 0 ..< d { dst[c] = tok[c] + pos[c] }
            }
        }
        let mask = CausalMask()
        for layer in layers.prefix(layers.count + 1 - clipSkip) {
            let x = layer.layerNorm1(h)                                    // [B, L, D]
            let a = ScaledDotProductAttention.compute(query: layer.qProj(x), key: layer.kProj(x), value: layer.vProj(x),
                                                      heads: config.numAttentionHeads, modifier: mask)
            let attnOut = layer.outProj(a)
            Elementwise.addInPlace(attnOut, h)
            h = attnOut
            let m = layer.fc1(layer.layerNorm2(h))                        // [B, L, FF]
            if config.hiddenAct == "quick_gelu" { Activation.quickGELUInPlace(m) } else { Activation.geluInPlace(m) }
            let mlpOut = layer.fc2(m)                                     // [B, L, D]
            Elementwise.addInPlace(mlpOut, h)
            h = mlpOut
        }
        return finalLayerNorm(h)
    }
}
