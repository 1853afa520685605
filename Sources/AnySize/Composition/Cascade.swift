/// `cascade` (Self-Cascade, arXiv 2402.10491: hires through passes that double the side each time): pass 1 at the
/// trained area with the target's aspect (the same first pass as `hires`); each next pass doubles the previous
/// pass's sides while both stay below the target's; the last pass is the target. Between passes, as `hires`: the
/// latents resized bicubically, img2img at strength s (`hiresStrength`, default 0.7), the noise drawn from the
/// same generator in pass order. Up to 2x the plan equals `hires` (two passes); 3x: 128, 256, 384 on a 128 model;
/// 4x: 128, 256, 512. Cost: pass 1 plus each later pass's area x s, over a direct run. txt2img only.
public struct Cascade: CompositionMethod {
    public init() {}
    public var mode: CompositionMode { .cascade }

    /// The pass canvases for `request` (the last one is the target).
    public static func canvases(_ request: CompositionRequest) throws -> [(width: Int, height: Int)] {
        var canvases = [try HiresFix.firstPass(request, mode: .cascade)]
        while let last = canvases.last, 2 * last.width < request.width, 2 * last.height < request.height {
            canvases.append((2 * last.width, 2 * last.height))
        }
        canvases.append((request.width, request.height))
        return canvases
    }

    public func plan(_ request: CompositionRequest) throws -> CompositionPlan {
        HiresFix.chainedPlan(request, mode: mode, canvases: try Self.canvases(request))
    }
}
