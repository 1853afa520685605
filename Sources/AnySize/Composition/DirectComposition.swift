/// `none`: one pass at the target canvas, the UNet unchanged (what diffusers does).
public struct DirectComposition: CompositionMethod {
    public init() {}
    public var mode: CompositionMode { .none }

    public func plan(_ request: CompositionRequest) throws -> CompositionPlan {
        CompositionPlan(requested: mode, method: mode, request: request,
                        passes: [CompositionPass(width: request.width, height: request.height)],
                        relativeCost: 1, detail: "")
    }
}
