/// `auto` (the CLI's default), per image: the trained canvas -> `none`; no side larger than trained -> `resize`;
/// any side larger -> `largerCanvas(_:)`. img2img -> `none` (the init image fixes the composition).
public struct AutoComposition: CompositionMethod {
    public init() {}
    public var mode: CompositionMode { .auto }

    /// The method for canvases with a side larger than trained: the one place the rule lives (the quality
    /// harness, docs/OOD.md, decides it; `hires` held at 1.5x, 2x, 3x and one-sided canvases in the table).
    public static func largerCanvas(_ request: CompositionRequest) -> CompositionMode { .hires }

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
