/// Where one UNet self-attention layer sits: its index among self-attention layers, its level and token
/// grid, and the grid the model was trained with at that level (METHODS.md, "Token grids per UNet level").
public struct AttentionSite: Sendable, Equatable {
    /// Index of the layer among the UNet's self-attention layers, in execution order.
    public var layer: Int
    /// UNet level (0 = full latent resolution).
    public var level: Int
    /// Token grid of this call (h_l x w_l).
    public var height: Int
    public var width: Int
    /// Trained token grid at this level (ht_l x wt_l).
    public var trainedHeight: Int
    public var trainedWidth: Int

    public init(layer: Int, level: Int, height: Int, width: Int, trainedHeight: Int, trainedWidth: Int) {
        self.layer = layer
        self.level = level
        self.height = height
        self.width = width
        self.trainedHeight = trainedHeight
        self.trainedWidth = trainedWidth
    }

    public var tokens: Int { height * width }
    public var trainedTokens: Int { trainedHeight * trainedWidth }
}

/// How UNet self-attention turns logits into probabilities. Cross-attention never changes.
/// Implementations are values selected by configuration (one file each in this folder).
public protocol AttentionFormulation: Sendable {
    /// The name used on the command line and in PNG metadata (`standard`, `scaled`, ...).
    var name: String { get }
    /// The logit modifier for one self-attention call; `nil` means plain softmax(Q K^T / sqrt(d)).
    /// `sigma` is the noise level of the current model call (METHODS.md).
    func modifier(site: AttentionSite, sigma: Double) -> (any AttentionLogitModifier)?
}

/// softmax(Q K^T / sqrt(d)) V: what diffusers' `AttnProcessor2_0` computes.
public struct StandardAttention: AttentionFormulation {
    public init() {}
    public var name: String { "standard" }
    public func modifier(site: AttentionSite, sigma: Double) -> (any AttentionLogitModifier)? { nil }
}

/// One entropy measurement: mean -sum p ln p of one self-attention layer in one model call.
public struct AttentionEntropySample: Sendable, Equatable {
    public var site: AttentionSite
    public var entropy: Double
}

/// Everything the attention layers of one model call need beyond their weights: the formulation, the
/// trained grid, the call's noise level, the scratch-memory bound, and an optional entropy sink.
public final class AttentionContext: @unchecked Sendable {
    public var formulation: any AttentionFormulation
    /// Trained latent grid (level 0), e.g. 64 x 64 for SD1.5.
    public var trainedLatentHeight: Int
    public var trainedLatentWidth: Int
    /// Noise level (k-diffusion sigma) of the current model call.
    public var sigma: Double = 0
    /// Upper bound for the attention kernel's scratch memory, in bytes.
    public var memoryBudget: Int
    /// When non-nil, every self-attention layer appends its mean attention entropy here.
    public var entropySamples: [AttentionEntropySample]? = nil

    public init(formulation: any AttentionFormulation = StandardAttention(),
                trainedLatentHeight: Int = 64, trainedLatentWidth: Int = 64,
                memoryBudget: Int = 512 << 20) {
        self.formulation = formulation
        self.trainedLatentHeight = trainedLatentHeight
        self.trainedLatentWidth = trainedLatentWidth
        self.memoryBudget = memoryBudget
    }

    /// Trained grid at UNet level `level` (ceil halving, as the stride-2 convolutions do).
    public func trainedGrid(level: Int) -> (height: Int, width: Int) {
        (UNetGeometry.grid(trainedLatentHeight, level: level), UNetGeometry.grid(trainedLatentWidth, level: level))
    }
}

/// Grid sizes of the UNet levels: each downsample is a 3x3 stride-2 padding-1 convolution.
public enum UNetGeometry {
    /// ceil(size / 2^level).
    public static func grid(_ size: Int, level: Int) -> Int {
        var s = size
        for _ in 0 ..< level { s = (s + 1) / 2 }
        return s
    }
}
