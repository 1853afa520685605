import Foundation

/// One sampling pass of a composition plan.
public struct CompositionPass: Sendable {
    /// Canvas of this pass in pixels.
    public var width: Int, height: Int
    /// nil: the pass starts from noise (or from the request's init image); otherwise it is an img2img pass at this
    /// strength from the previous pass's latents, resized bicubically (align_corners false) to this canvas.
    public var strength: Double?
    /// What the UNet does at a model call of this pass, from the call's timestep (0 ... 999).
    public var unetCall: @Sendable (_ timestep: Double) -> UNetCallComposition

    public init(width: Int, height: Int, strength: Double? = nil,
                unetCall: @escaping @Sendable (_ timestep: Double) -> UNetCallComposition = { _ in .none }) {
        self.width = width
        self.height = height
        self.strength = strength
        self.unetCall = unetCall
    }
}

/// How the last pass becomes the output.
public enum CompositionOutput: Sendable, Equatable {
    /// The last pass ran at the target canvas: its latents are the result.
    case latents
    /// The last pass ran on a larger canvas: the image is VAE-decoded there and area-averaged (box filter) down
    /// to the target; the result's latents are the last pass's latents area-averaged to the target's latent grid.
    case areaAveragedImage
}

/// A resolved composition: the passes and their sizes, the per-call UNet composition, the cost, a summary.
public struct CompositionPlan: Sendable {
    /// What the user asked for, and the method that runs (differs for `auto`).
    public var requested: CompositionMode
    public var method: CompositionMode
    /// Target canvas and trained canvas (pixels).
    public var width: Int, height: Int
    public var trainedWidth: Int, trainedHeight: Int
    public var passes: [CompositionPass]
    public var output: CompositionOutput
    /// Estimated UNet work relative to a direct run at the target canvas (FLOPs x model calls).
    public var relativeCost: Double
    /// What the method does, e.g. "512x512, then 1024x1024 at strength 0.7".
    public var detail: String
    /// A1111-style PNG `parameters` fields this method adds (e.g. "Hires upscale", "Denoising strength").
    public var metadata: [(key: String, value: String)]

    public init(requested: CompositionMode, method: CompositionMode, request: CompositionRequest,
                passes: [CompositionPass], output: CompositionOutput = .latents, relativeCost: Double,
                detail: String, metadata: [(key: String, value: String)] = []) {
        self.requested = requested
        self.method = method
        width = request.width
        height = request.height
        trainedWidth = request.trainedWidth
        trainedHeight = request.trainedHeight
        self.passes = passes
        self.output = output
        self.relativeCost = relativeCost
        self.detail = detail
        self.metadata = metadata
    }

    /// The method and what it does, e.g. "hires: 512x512, then 1024x1024 at strength 0.7".
    public var methodSummary: String { detail.isEmpty ? method.rawValue : "\(method.rawValue): \(detail)" }

    /// One line for the terminal, e.g. "auto: 1024x1024 on a 512x512 model -> hires: 512x512, then 1024x1024 at
    /// strength 0.7; about 0.95x the cost of a direct run".
    public var summary: String {
        let cost = String(format: "about %.2fx the cost of a direct run", relativeCost)
        let head = requested == .auto ? "auto: \(width)x\(height) on a \(trainedWidth)x\(trainedHeight) model -> " : ""
        return head + methodSummary + "; " + cost
    }

    /// The value of the PNG `Compose` field: "hires: ..." or "auto -> hires: ...".
    public var metadataSummary: String { (requested == .auto ? "auto -> " : "") + methodSummary }

    /// The attention formulation a pass runs for the requested one: `auto` means `standard` whenever a
    /// composition method (not `none`) handles the canvas, so the method's measured behaviour is what runs;
    /// an explicit formulation is kept.
    public func attentionMode(for requested: AttentionMode) -> AttentionMode {
        requested == .auto && method != .none ? .standard : requested
    }

    /// The largest pass canvas by area (what the memory estimate must cover).
    public var largestPass: (width: Int, height: Int) {
        let p = passes.max { $0.width * $0.height < $1.width * $1.height }
        return (p?.width ?? width, p?.height ?? height)
    }

    /// Resolves `options` for a canvas: the registry's method for `options.mode` plans `request`.
    public static func resolve(_ request: CompositionRequest) throws -> CompositionPlan {
        try request.options.validate()
        return try request.options.mode.method.plan(request)
    }
}

/// Canvas arithmetic shared by the methods.
public enum CompositionGeometry {
    /// Pass canvases are rounded to multiples of this many pixels: one latent pixel of SD's VAE, AnySize's size rule
    /// and the granularity A1111 and diffusers accept.
    public static let sideMultiple = 8

    /// The canvas with the trained area and the target's aspect: exact sides w = sqrt(Wt Ht W / H) and
    /// h = sqrt(Wt Ht H / W) (double precision), each rounded to the nearest multiple of 8 px, halves up
    /// (8 * floor(x / 8 + 1/2)), and at least 8. 1024x1024 on 512x512 -> 512x512; 1024x512 -> 728x360;
    /// 256x384 -> 416x624; 256x128 on 128x128 -> 184x88.
    public static func trainedAreaCanvas(width: Int, height: Int, trainedWidth: Int, trainedHeight: Int) -> (width: Int, height: Int) {
        let area = Double(trainedWidth) * Double(trainedHeight)
        let w = (area * Double(width) / Double(height)).squareRoot()
        let h = (area * Double(height) / Double(width)).squareRoot()
        let m = Double(sideMultiple)
        func round(_ x: Double) -> Int { sideMultiple * max(1, Int((x / m + 0.5).rounded(.down))) }
        return (round(w), round(h))
    }

    /// Model calls of an img2img pass at `strength` over `steps` (diffusers: int(steps * strength), at most steps).
    public static func img2imgSteps(steps: Int, strength: Double) -> Int {
        min(Int(Double(steps) * strength), steps)
    }

    /// FLOPs of one UNet call on a latent grid, or its area when no config is known (`grids`: level grids to use
    /// instead of the ceil-halved ones, for methods that resize inner levels).
    static func unetWork(_ request: CompositionRequest, latentHeight: Int, latentWidth: Int,
                         grids: [(height: Int, width: Int)]? = nil) -> Double {
        if let unet = request.unet {
            return FLOPCount.unet(unet, latentHeight: latentHeight, latentWidth: latentWidth, batch: 1, levelGrids: grids)
        }
        return Double(latentHeight * latentWidth)
    }

    /// "%.2g"-style factor text: 2 -> "2", 1.5 -> "1.5", 1.375 -> "1.38".
    static func factor(_ x: Double) -> String {
        let rounded = (x * 100).rounded() / 100
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(format: "%g", rounded)
    }
}
