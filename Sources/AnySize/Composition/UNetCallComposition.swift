/// Per-call changes to the UNet's receptive field (composition methods acting inside the UNet).
///
/// METHODS.md, "Composition methods", items 1 (`redilate`, ScaleCrafter) and 3 (`deep-shrink`, Kohya Deep
/// Shrink). The pipeline computes one value per model call with `redilation(...)` or `deepShrink(...)` and
/// passes it to `UNet2DConditionModel.callAsFunction(_:timesteps:context:attention:composition:)`.
public struct UNetCallComposition: Sendable, Equatable {
    /// ScaleCrafter re-dilation factor d for the resnets' 3x3 convolutions of down blocks 1-3, the mid block
    /// and up blocks 0-2 (1 = off). Integer d: dilation d, padding d. Fractional d: k = ceil(d), the conv
    /// input is resized by k / d (bilinear), convolved with dilation k, and resized back (bilinear).
    public var dilation: Double = 1
    /// Kohya Deep Shrink factor f: the hidden state is resized by 1/f after down block 0 (1 = off).
    public var deepShrinkFactor: Double = 1

    public init(dilation: Double = 1, deepShrinkFactor: Double = 1) {
        self.dilation = dilation
        self.deepShrinkFactor = deepShrinkFactor
    }

    /// No change: the UNet as trained.
    public static let none = UNetCallComposition()

    /// True when the call runs the UNet unchanged.
    public var isNone: Bool { !redilates && !shrinks }
    /// True when the listed resnet convolutions are dilated.
    public var redilates: Bool { dilation > 1 }
    /// True when levels 1-3 run on a shrunken grid.
    public var shrinks: Bool { deepShrinkFactor > 1 }

    /// `redilate` for one model call: d = min(h/h_t, w/w_t) while timestep >= until, else none
    /// (d <= 1 -> none). h, w: this call's latent grid; h_t, w_t: the trained latent grid.
    public static func redilation(latentHeight: Int, latentWidth: Int, trainedLatentHeight: Int,
                                  trainedLatentWidth: Int, timestep: Double, until: Double) -> UNetCallComposition {
        guard timestep >= until, trainedLatentHeight > 0, trainedLatentWidth > 0 else { return .none }
        let d = min(Double(latentHeight) / Double(trainedLatentHeight),
                    Double(latentWidth) / Double(trainedLatentWidth))
        return d > 1 ? UNetCallComposition(dilation: d) : .none
    }

    /// `deep-shrink` for one model call: f = max(h/h_t, w/w_t, 1) while timestep >= (1 - end) * 1000,
    /// else none. h, w: this call's latent grid; h_t, w_t: the trained latent grid.
    public static func deepShrink(latentHeight: Int, latentWidth: Int, trainedLatentHeight: Int,
                                  trainedLatentWidth: Int, timestep: Double, end: Double) -> UNetCallComposition {
        guard timestep >= (1 - end) * 1000, trainedLatentHeight > 0, trainedLatentWidth > 0 else { return .none }
        let f = max(Double(latentHeight) / Double(trainedLatentHeight),
                    Double(latentWidth) / Double(trainedLatentWidth), 1)
        return f > 1 ? UNetCallComposition(deepShrinkFactor: f) : .none
    }
}
