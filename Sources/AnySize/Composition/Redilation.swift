/// `redilate` (ScaleCrafter, arXiv 2310.07702): one pass at the target; while the call's timestep t >= tau
/// (`redilateUntil`, default 400) the 3x3 convolutions inside the resnets of down blocks 1-3, the mid block and
/// up blocks 0-2 are dilated by d = min(h / h_t, w / w_t) (fractional d: k = ceil(d), input resized by k / d,
/// bilinear). The UNet does the work (`UNetCallComposition.redilation`); this plan passes it each call's timestep.
/// Cost: the same FLOPs as a direct run (the fractional resizes are not counted).
public struct Redilation: CompositionMethod {
    public init() {}
    public var mode: CompositionMode { .redilate }

    /// d = min(h / h_t, w / w_t) on latent grids.
    public static func dilation(_ request: CompositionRequest) -> Double {
        min(Double(request.latentHeight) / Double(request.trainedLatentHeight),
            Double(request.latentWidth) / Double(request.trainedLatentWidth))
    }

    public func plan(_ request: CompositionRequest) throws -> CompositionPlan {
        let (h, w) = (request.latentHeight, request.latentWidth)
        let (th, tw) = (request.trainedLatentHeight, request.trainedLatentWidth)
        let until = request.options.redilateUntil
        let pass = CompositionPass(width: request.width, height: request.height) { t in
            UNetCallComposition.redilation(latentHeight: h, latentWidth: w, trainedLatentHeight: th,
                                           trainedLatentWidth: tw, timestep: t, until: until)
        }
        let d = Self.dilation(request)
        let detail = d > 1
            ? "\(request.width)x\(request.height), dilation \(CompositionGeometry.factor(d)) while t >= \(CompositionGeometry.factor(until))"
            : "\(request.width)x\(request.height), no re-dilation (no side ratio above 1)"
        return CompositionPlan(requested: mode, method: mode, request: request, passes: [pass], relativeCost: 1,
                               detail: detail)
    }
}
