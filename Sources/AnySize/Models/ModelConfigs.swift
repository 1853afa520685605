import Foundation

/// An Int-or-[Int] config value (diffusers allows both for per-level settings).
public struct PerLevel: Decodable, Sendable, Equatable {
    public var values: [Int]
    public var isScalar: Bool
    public init(_ value: Int) { values = [value]; isScalar = true }
    public init(_ values: [Int]) { self.values = values; isScalar = false }
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Int.self) { self.init(v) } else { self.init(try c.decode([Int].self)) }
    }
    /// Value for level `i` (a scalar applies to every level).
    public subscript(i: Int) -> Int { isScalar ? values[0] : values[i] }
}

/// `UNet2DConditionModel` config (diffusers `unet/config.json`); only the SD 1.x/2.x subset.
public struct UNetConfig: Decodable, Sendable {
    public var sampleSize: Int = 64
    public var inChannels: Int = 4
    public var outChannels: Int = 4
    public var blockOutChannels: [Int] = [320, 640, 1280, 1280]
    public var layersPerBlock: Int = 2
    public var downBlockTypes: [String] = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
    public var upBlockTypes: [String] = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
    public var crossAttentionDim: Int = 768
    /// diffusers' historical naming: for SD this is the number of heads per level.
    public var attentionHeadDim: PerLevel = PerLevel(8)
    public var numAttentionHeads: PerLevel? = nil
    public var transformerLayersPerBlock: PerLevel = PerLevel(1)
    public var useLinearProjection: Bool = false
    public var upcastAttention: Bool = false
    public var normNumGroups: Int = 32
    public var normEps: Double = 1e-5
    public var flipSinToCos: Bool = true
    public var freqShift: Int = 0
    public var actFn: String = "silu"
    public var midBlockType: String? = "UNetMidBlock2DCrossAttn"
    public var classEmbedType: String? = nil
    public var additionEmbedType: String? = nil

    /// Heads of the transformer blocks at `level` (diffusers: `num_attention_heads or attention_head_dim`).
    public func heads(level: Int) -> Int { (numAttentionHeads ?? attentionHeadDim)[level] }

    enum CodingKeys: String, CodingKey {
        case sampleSize = "sample_size", inChannels = "in_channels", outChannels = "out_channels"
        case blockOutChannels = "block_out_channels", layersPerBlock = "layers_per_block"
        case downBlockTypes = "down_block_types", upBlockTypes = "up_block_types"
        case crossAttentionDim = "cross_attention_dim", attentionHeadDim = "attention_head_dim"
        case numAttentionHeads = "num_attention_heads", transformerLayersPerBlock = "transformer_layers_per_block"
        case useLinearProjection = "use_linear_projection", upcastAttention = "upcast_attention"
        case normNumGroups = "norm_num_groups", normEps = "norm_eps", flipSinToCos = "flip_sin_to_cos"
        case freqShift = "freq_shift", actFn = "act_fn", midBlockType = "mid_block_type"
        case classEmbedType = "class_embed_type", additionEmbedType = "addition_embed_type"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func get<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
            try c.decodeIfPresent(T.self, forKey: key) ?? fallback
        }
        self.init()
        sampleSize = try get(.sampleSize, sampleSize)
        inChannels = try get(.inChannels, inChannels)
        outChannels = try get(.outChannels, outChannels)
        blockOutChannels = try get(.blockOutChannels, blockOutChannels)
        layersPerBlock = try get(.layersPerBlock, layersPerBlock)
        downBlockTypes = try get(.downBlockTypes, downBlockTypes)
        upBlockTypes = try get(.upBlockTypes, upBlockTypes)
        crossAttentionDim = try get(.crossAttentionDim, crossAttentionDim)
        attentionHeadDim = try get(.attentionHeadDim, attentionHeadDim)
        numAttentionHeads = try c.decodeIfPresent(PerLevel.self, forKey: .numAttentionHeads)
        transformerLayersPerBlock = try get(.transformerLayersPerBlock, transformerLayersPerBlock)
        useLinearProjection = try get(.useLinearProjection, useLinearProjection)
        upcastAttention = try get(.upcastAttention, upcastAttention)
        normNumGroups = try get(.normNumGroups, normNumGroups)
        normEps = try get(.normEps, normEps)
        flipSinToCos = try get(.flipSinToCos, flipSinToCos)
        freqShift = try get(.freqShift, freqShift)
        actFn = try get(.actFn, actFn)
        midBlockType = try c.decodeIfPresent(String.self, forKey: .midBlockType) ?? "UNetMidBlock2DCrossAttn"
        classEmbedType = try c.decodeIfPresent(String.self, forKey: .classEmbedType)
        additionEmbedType = try c.decodeIfPresent(String.self, forKey: .additionEmbedType)
    }
}

/// `AutoencoderKL` config (diffusers `vae/config.json`).
public struct VAEConfig: Decodable, Sendable {
    public var inChannels: Int = 3
    public var outChannels: Int = 3
    public var latentChannels: Int = 4
    public var blockOutChannels: [Int] = [128, 256, 512, 512]
    public var layersPerBlock: Int = 2
    public var normNumGroups: Int = 32
    public var scalingFactor: Double = 0.18215
    public var sampleSize: Int = 512
    public var midBlockAddAttention: Bool = true
    public var useQuantConv: Bool = true
    public var usePostQuantConv: Bool = true

    enum CodingKeys: String, CodingKey {
        case inChannels = "in_channels", outChannels = "out_channels", latentChannels = "latent_channels"
        case blockOutChannels = "block_out_channels", layersPerBlock = "layers_per_block"
        case normNumGroups = "norm_num_groups", scalingFactor = "scaling_factor", sampleSize = "sample_size"
        case midBlockAddAttention = "mid_block_add_attention", useQuantConv = "use_quant_conv"
        case usePostQuantConv = "use_post_quant_conv"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init()
        inChannels = try c.decodeIfPresent(Int.self, forKey: .inChannels) ?? inChannels
        outChannels = try c.decodeIfPresent(Int.self, forKey: .outChannels) ?? outChannels
        latentChannels = try c.decodeIfPresent(Int.self, forKey: .latentChannels) ?? latentChannels
        blockOutChannels = try c.decodeIfPresent([Int].self, forKey: .blockOutChannels) ?? blockOutChannels
        layersPerBlock = try c.decodeIfPresent(Int.self, forKey: .layersPerBlock) ?? layersPerBlock
        normNumGroups = try c.decodeIfPresent(Int.self, forKey: .normNumGroups) ?? normNumGroups
        scalingFactor = try c.decodeIfPresent(Double.self, forKey: .scalingFactor) ?? scalingFactor
        sampleSize = (try? c.decodeIfPresent(Int.self, forKey: .sampleSize)) ?? sampleSize
        midBlockAddAttention = try c.decodeIfPresent(Bool.self, forKey: .midBlockAddAttention) ?? true
        useQuantConv = try c.decodeIfPresent(Bool.self, forKey: .useQuantConv) ?? true
        usePostQuantConv = try c.decodeIfPresent(Bool.self, forKey: .usePostQuantConv) ?? true
    }
}

/// `CLIPTextModel` config (transformers `text_encoder/config.json`).
public struct CLIPTextConfig: Decodable, Sendable {
    public var vocabSize: Int = 49408
    public var hiddenSize: Int = 768
    public var intermediateSize: Int = 3072
    public var numHiddenLayers: Int = 12
    public var numAttentionHeads: Int = 12
    public var maxPositionEmbeddings: Int = 77
    /// "quick_gelu" (SD1, OpenAI CLIP) or "gelu" (SD2, OpenCLIP).
    public var hiddenAct: String = "quick_gelu"
    public var layerNormEps: Double = 1e-5
    public var eosTokenId: Int = 49407

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case maxPositionEmbeddings = "max_position_embeddings", hiddenAct = "hidden_act"
        case layerNormEps = "layer_norm_eps", eosTokenId = "eos_token_id"
        case textConfig = "text_config"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        var c = try decoder.container(keyedBy: CodingKeys.self)
        // A full CLIPModel config nests the text settings under "text_config".
        if c.contains(.textConfig) { c = try c.nestedContainer(keyedBy: CodingKeys.self, forKey: .textConfig) }
        self.init()
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? vocabSize
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? hiddenSize
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? intermediateSize
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? numHiddenLayers
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? numAttentionHeads
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? maxPositionEmbeddings
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? hiddenAct
        layerNormEps = try c.decodeIfPresent(Double.self, forKey: .layerNormEps) ?? layerNormEps
        eosTokenId = (try? c.decodeIfPresent(Int.self, forKey: .eosTokenId)) ?? eosTokenId
    }
}
