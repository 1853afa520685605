/// `hires` (A1111 hires fix in latent space; Self-Cascade's pivot): pass 1 at the trained area with the target's
/// aspect (`CompositionGeometry.trainedAreaCanvas`), all steps; its latents resized to the target (bicubic,
/// align_corners false, as torch `interpolate`); pass 2 = img2img at the target with strength s
/// (`hiresStrength`, default 0.7): diffusers' img2img schedule (the last int(steps * s) of `steps`), its noise
/// drawn from the same generator after pass 1. Cost: about (pass-1 area / target area) + s of a direct run.
/// txt2img only (an init image already fixes the composition).
public struct HiresFix: CompositionMethod {
    public init() {}
    public var mode: CompositionMode { .hires }

    public func plan(_ request: CompositionRequest) throws -> CompositionPlan {
        let first = try Self.firstPass(request, mode: mode)
        return Self.chainedPlan(request, mode: mode, canvases: [first, (request.width, request.height)])
    }

    /// The trained-area first pass of a hires-style plan; refuses img2img (naming `mode`).
    static func firstPass(_ request: CompositionRequest, mode: CompositionMode) throws -> (width: Int, height: Int) {
        guard !request.img2img else {
            throw AnySizeError(.invalidArgument,
                "--compose \(mode.rawValue) starts from noise and cannot use --init-image; use --compose none (or auto) for img2img")
        }
        return CompositionGeometry.trainedAreaCanvas(width: request.width, height: request.height,
                                                     trainedWidth: request.trainedWidth, trainedHeight: request.trainedHeight)
    }

    /// The pass machinery of `hires` and `cascade`: the first canvas from noise with all steps, each next canvas
    /// an img2img pass at strength s from the previous pass's latents (resized bicubically by the pipeline), the
    /// last canvas being the target. Cost: each pass's UNet work x its model calls, over a direct run's; detail
    /// "128x128, 256x256, then 384x384 at strength 0.7"; A1111's hires keys for the first-to-target upscale.
    static func chainedPlan(_ request: CompositionRequest, mode: CompositionMode,
                            canvases: [(width: Int, height: Int)]) -> CompositionPlan {
        let s = request.options.hiresStrength
        let passes = canvases.enumerated().map { index, canvas in
            CompositionPass(width: canvas.width, height: canvas.height, strength: index == 0 ? nil : s)
        }
        let f = request.latentFactor
        let target = CompositionGeometry.unetWork(request, latentHeight: request.latentHeight, latentWidth: request.latentWidth)
        let laterSteps = Double(CompositionGeometry.img2imgSteps(steps: request.steps, strength: s))
        let work = canvases.enumerated().reduce(0.0) { sum, item in
            let calls = item.offset == 0 ? Double(request.steps) : laterSteps
            return sum + calls * CompositionGeometry.unetWork(request, latentHeight: item.element.height / f,
                                                               latentWidth: item.element.width / f)
        }
        let cost = work / (target * Double(request.steps))
        let strength = CompositionGeometry.factor(s)
        let first = canvases[0]
        var metadata: [(key: String, value: String)] = []
        let sx = Double(request.width) / Double(first.width), sy = Double(request.height) / Double(first.height)
        if abs(sx - sy) < 1e-9 {
            metadata.append(("Hires upscale", CompositionGeometry.factor(sx)))
        } else {
            metadata.append(("Hires resize", "\(request.width)x\(request.height)"))
        }
        metadata.append(("Hires upscaler", "Latent (bicubic)"))
        metadata.append(("Denoising strength", strength))
        let sizes = canvases.map { "\($0.width)x\($0.height)" }
        let detail = sizes.dropLast().joined(separator: ", ") + ", then \(sizes[sizes.count - 1]) at strength \(strength)"
        return CompositionPlan(requested: mode, method: mode, request: request, passes: passes, relativeCost: cost,
                               detail: detail, metadata: metadata)
    }
}
