import Foundation

/// `deep-shrink` (Kohya Deep Shrink; ComfyUI PatchModelAddDownscale defaults): one pass at the target; while the
/// call's timestep t >= (1 - end) * 1000 the hidden state after down block 0 is resized by 1 / f
/// (f = max(h / h_t, w / w_t), at least 1; bicubic) and resized back to each skip's size on the way up. The UNet
/// does the work (`UNetCallComposition.deepShrink`); this plan passes it each call's timestep.
/// Cost: levels 1-3 run on about the trained grid during the active calls.
public struct DeepShrink: CompositionMethod {
    public init() {}
    public var mode: CompositionMode { .deepShrink }

    /// f = max(h / h_t, w / w_t, 1) on latent grids.
    public static func factor(_ request: CompositionRequest) -> Double {
        max(1, max(Double(request.latentHeight) / Double(request.trainedLatentHeight),
                   Double(request.latentWidth) / Double(request.trainedLatentWidth)))
    }

    public func plan(_ request: CompositionRequest) throws -> CompositionPlan {
        let (h, w) = (request.latentHeight, request.latentWidth)
        let (th, tw) = (request.trainedLatentHeight, request.trainedLatentWidth)
        let end = request.options.deepShrinkEnd
        let pass = CompositionPass(width: request.width, height: request.height) { t in
            UNetCallComposition.deepShrink(latentHeight: h, latentWidth: w, trainedLatentHeight: th,
                                           trainedLatentWidth: tw, timestep: t, end: end)
        }
        let f = Self.factor(request)
        // Cost: active calls run levels 1 and deeper on the level-1 grid divided by f (rounded), halved from there.
        let calls = request.callTimesteps
        let active = Double(calls.filter { $0 >= (1 - end) * 1000 }.count)
        let levels = request.unet?.blockOutChannels.count ?? 4
        var grids = [(height: h, width: w)]
        for level in 1 ..< max(levels, 2) {
            if level == 1 {
                grids.append((max(1, Int((Double(UNetGeometry.grid(h, level: 1)) / f).rounded())),
                              max(1, Int((Double(UNetGeometry.grid(w, level: 1)) / f).rounded()))))
            } else {
                grids.append((UNetGeometry.grid(grids[level - 1].height, level: 1), UNetGeometry.grid(grids[level - 1].width, level: 1)))
            }
        }
        let full = CompositionGeometry.unetWork(request, latentHeight: h, latentWidth: w)
        let shrunk = request.unet == nil
            ? full * (0.25 + 0.75 / (f * f))  // area model: a quarter of the work at level 0
            : CompositionGeometry.unetWork(request, latentHeight: h, latentWidth: w, grids: Array(grids.prefix(levels)))
        let n = Double(max(calls.count, 1))
        let cost = (active * shrunk + (n - active) * full) / (n * full)
        let detail = f > 1
            ? "\(request.width)x\(request.height), inner levels shrunk by \(CompositionGeometry.factor(f)) while t >= \(CompositionGeometry.factor((1 - end) * 1000))"
            : "\(request.width)x\(request.height), no shrink (no side ratio above 1)"
        return CompositionPlan(requested: mode, method: mode, request: request, passes: [pass], relativeCost: cost,
                               detail: detail)
    }
}
