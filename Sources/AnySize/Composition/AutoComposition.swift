/// `auto` (the CLI's default), per image: the trained canvas -> `none`; no side larger than trained -> `resize`;
/// any side larger -> `largerCanvas(_:)`. img2img -> `none` (the init image fixes the composition).
public struct AutoComposition: CompositionMethod {
    public init() {}
    public var mode: CompositionMode { .auto }

    /// The method for canvases with a side larger than trained: the one place the rule lives. `cascade` where its
    /// plan has a middle pass (the doubled trained-area pass still below the target on both sides: more than 2x
    /// the trained side on a square canvas), else `hires` (the same two passes `cascade` would run). From the
    /// quality harness on the toy model (docs/OOD.md "Measured with --compose", 32 images per row; share of images
    /// with one well-formed object, objects per image):
    /// - 3x: cascade (128, 256, 384) 0.19 / 2.8, hires 0.06 / 3.3, none 0.00 / 7.2 (same colour drift, 2.18);
    /// - 2x: hires 0.34 / 1.9, none 0.06 / 3.5, re-dilation 0.09 / 4.2, Deep Shrink 0.12 / 3.2;
    /// - 2x wide, 1x tall: hires 0.59 / 1.3 (first pass 184x88), none 0.22 / 2.4, Deep Shrink 0.28 / 2.7
    ///   (re-dilation = none there: d = 1);
    /// - 1.5x: hires 0.59 / 1.4, none 0.16 / 2.5, re-dilation 0.12 / 4.8, Deep Shrink 0.19 / 2.5.
    /// Re-dilation and Deep Shrink never beat hires on that model, so no factor or aspect switches to them.
    public static func largerCanvas(_ request: CompositionRequest) -> CompositionMode {
        let passes = (try? Cascade.canvases(request).count) ?? 2
        return passes > 2 ? .cascade : .hires
    }

    /// The concrete method `auto` picks for `request`.
    public static func choose(_ request: CompositionRequest) -> CompositionMode {
        if request.img2img || request.isTrainedSize { return .none }
        if request.fitsTrained { return .resize }
        return largerCanvas(request)
    }

    public func plan(_ request: CompositionRequest) throws -> CompositionPlan {
        let chosen = Self.choose(request)
        precondition(chosen != .auto, "auto must pick a concrete method")
        var plan = try chosen.method.plan(request)
        plan.requested = .auto
        return plan
    }
}
