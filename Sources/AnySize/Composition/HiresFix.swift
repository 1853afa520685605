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
        guard !request.img2img else {
            throw AnySizeError(.invalidArgument,
                "--compose hires starts from noise and cannot use --init-image; use --compose none (or auto) for img2img")
        }
        let first = CompositionGeometry.trainedAreaCanvas(width: request.width, height: request.height,
                                                          trainedWidth: request.trainedWidth, trainedHeight: request.trainedHeight)
        let s = request.options.hiresStrength
        let passes = [CompositionPass(width: first.width, height: first.height),
                      CompositionPass(width: request.width, height: request.height, strength: s)]
        let f = request.latentFactor
        let target = CompositionGeometry.unetWork(request, latentHeight: request.latentHeight, latentWidth: request.latentWidth)
        let pass1 = CompositionGeometry.unetWork(request, latentHeight: first.height / f, latentWidth: first.width / f)
        let secondSteps = CompositionGeometry.img2imgSteps(steps: request.steps, strength: s)
        let cost = (pass1 * Double(request.steps) + target * Double(secondSteps)) / (target * Double(request.steps))
        let strength = CompositionGeometry.factor(s)
        var metadata: [(key: String, value: String)] = []
        let sx = Double(request.width) / Double(first.width), sy = Double(request.height) / Double(first.height)
        if abs(sx - sy) < 1e-9 {
            metadata.append(("Hires upscale", CompositionGeometry.factor(sx)))
        } else {
            metadata.append(("Hires resize", "\(request.width)x\(request.height)"))
        }
        metadata.append(("Hires upscaler", "Latent (bicubic)"))
        metadata.append(("Denoising strength", strength))
        return CompositionPlan(requested: mode, method: mode, request: request, passes: passes, relativeCost: cost,
                               detail: "\(first.width)x\(first.height), then \(request.width)x\(request.height) at strength \(strength)",
                               metadata: metadata)
    }
}
