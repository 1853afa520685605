/// `resize` (canvases no larger than trained): one pass at the trained area with the target's aspect
/// (`CompositionGeometry.trainedAreaCanvas`, each side at least the target's), VAE-decoded there and shrunk to the
/// target with an area-averaging (box) filter per channel, on the decoded values (gamma-agnostic). The result's
/// latents (`--save-latents`) are the pass's latents area-averaged to the target's latent grid.
/// Cost: a run at the render canvas (render area / target area of a direct run, plus the larger decode).
public struct RenderAndResize: CompositionMethod {
    public init() {}
    public var mode: CompositionMode { .resize }

    public func plan(_ request: CompositionRequest) throws -> CompositionPlan {
        guard !request.img2img else {
            throw AnySizeError(.invalidArgument,
                "--compose resize renders from noise and cannot use --init-image; use --compose none (or auto) for img2img")
        }
        guard request.fitsTrained else {
            throw AnySizeError(.invalidArgument,
                "--compose resize shrinks a trained-size render; \(request.width)x\(request.height) is larger than the trained "
                + "\(request.trainedWidth)x\(request.trainedHeight): use --compose hires (or auto) for larger canvases")
        }
        let canvas = CompositionGeometry.trainedAreaCanvas(width: request.width, height: request.height,
                                                           trainedWidth: request.trainedWidth, trainedHeight: request.trainedHeight)
        let render = (width: max(canvas.width, request.width), height: max(canvas.height, request.height))
        let f = request.latentFactor
        let target = CompositionGeometry.unetWork(request, latentHeight: request.latentHeight, latentWidth: request.latentWidth)
        let work = CompositionGeometry.unetWork(request, latentHeight: render.height / f, latentWidth: render.width / f)
        return CompositionPlan(requested: mode, method: mode, request: request,
                               passes: [CompositionPass(width: render.width, height: render.height)],
                               output: .areaAveragedImage, relativeCost: work / target,
                               detail: "\(render.width)x\(render.height), box-filtered to \(request.width)x\(request.height)",
                               metadata: [("Render size", "\(render.width)x\(render.height)")])
    }
}
