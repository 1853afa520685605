/// The composition methods accepted on the command line (`--compose`), METHODS.md "Composition methods".
public enum CompositionMode: String, CaseIterable, Sendable {
    case none, redilate, hires, cascade, deepShrink = "deep-shrink", resize, auto

    /// The method that plans this mode: the registry. A new method adds a case above, its file, and one line here.
    public var method: any CompositionMethod {
        switch self {
        case .none: return DirectComposition()
        case .redilate: return Redilation()
        case .hires: return HiresFix()
        case .cascade: return Cascade()
        case .deepShrink: return DeepShrink()
        case .resize: return RenderAndResize()
        case .auto: return AutoComposition()
        }
    }
}

/// The composition method and its settings for one generation.
public struct CompositionOptions: Sendable, Equatable {
    /// Which method; the library default `none` runs the canvas directly, as diffusers does (the CLI defaults
    /// to `auto`).
    public var mode: CompositionMode
    /// `hires` and `cascade`: img2img strength of each pass after the first (`--hires-strength`), in (0, 1].
    public var hiresStrength: Double
    /// `redilate`: re-dilate while the call's timestep t >= this (`--redilate-until`), 0 ... 1000.
    public var redilateUntil: Double
    /// `deep-shrink`: shrink while t >= (1 - end) * 1000 (`--deep-shrink-end`), in [0, 1].
    public var deepShrinkEnd: Double

    public init(mode: CompositionMode = .none, hiresStrength: Double = 0.7, redilateUntil: Double = 400,
                deepShrinkEnd: Double = 0.35) {
        self.mode = mode
        self.hiresStrength = hiresStrength
        self.redilateUntil = redilateUntil
        self.deepShrinkEnd = deepShrinkEnd
    }

    /// The values `validate()` accepts: `hiresStrength` in (lower, upper] (the lower bound itself refused),
    /// `redilateUntil` and `deepShrinkEnd` in their closed ranges.
    public static let hiresStrengthRange: ClosedRange<Double> = 0 ... 1
    public static let redilateUntilRange: ClosedRange<Double> = 0 ... 1000
    public static let deepShrinkEndRange: ClosedRange<Double> = 0 ... 1

    /// One-line errors naming the flag, the value and the range.
    public func validate() throws {
        let hires = Self.hiresStrengthRange
        guard hiresStrength.isFinite, hiresStrength > hires.lowerBound, hiresStrength <= hires.upperBound else {
            throw AnySizeError(.invalidArgument,
                "--hires-strength \(hiresStrength) is outside (0, 1]; e.g. 0.7 re-draws 70% of the schedule at the target size")
        }
        guard redilateUntil.isFinite, Self.redilateUntilRange.contains(redilateUntil) else {
            throw AnySizeError(.invalidArgument,
                "--redilate-until \(redilateUntil) is outside 0 ... 1000; it is a timestep, e.g. 400 re-dilates while t >= 400")
        }
        guard deepShrinkEnd.isFinite, Self.deepShrinkEndRange.contains(deepShrinkEnd) else {
            throw AnySizeError(.invalidArgument,
                "--deep-shrink-end \(deepShrinkEnd) is outside [0, 1]; e.g. 0.35 shrinks during the first 35% of the timesteps")
        }
    }
}

/// What a composition method is asked to plan: one generation's canvas, the model's trained canvas, the schedule.
public struct CompositionRequest: Sendable {
    /// Target canvas and trained canvas, in pixels.
    public var width: Int, height: Int
    public var trainedWidth: Int, trainedHeight: Int
    /// Pixels per latent (the VAE's downsampling factor, 8 for SD).
    public var latentFactor: Int
    /// Inference steps of a direct run.
    public var steps: Int
    /// The generation starts from an init image (img2img).
    public var img2img: Bool
    public var options: CompositionOptions
    /// The UNet's config, for FLOP-based costs (nil: costs proportional to area).
    public var unet: UNetConfig?
    /// The timestep of each model call of a direct run (for costs of timestep-gated methods; nil: spread evenly
    /// over 999 ... 0).
    public var timesteps: [Double]?

    public init(width: Int, height: Int, trainedWidth: Int, trainedHeight: Int, latentFactor: Int = 8, steps: Int,
                img2img: Bool = false, options: CompositionOptions, unet: UNetConfig? = nil, timesteps: [Double]? = nil) {
        self.width = width
        self.height = height
        self.trainedWidth = trainedWidth
        self.trainedHeight = trainedHeight
        self.latentFactor = latentFactor
        self.steps = steps
        self.img2img = img2img
        self.options = options
        self.unet = unet
        self.timesteps = timesteps
    }

    /// The direct run's call timesteps (`timesteps`, or `steps` values evenly spaced from 999 down to 0).
    public var callTimesteps: [Double] {
        timesteps ?? (0 ..< steps).map { steps > 1 ? 999 * Double(steps - 1 - $0) / Double(steps - 1) : 999 }
    }

    public var isTrainedSize: Bool { width == trainedWidth && height == trainedHeight }
    /// No side larger than the trained side.
    public var fitsTrained: Bool { width <= trainedWidth && height <= trainedHeight }
    public var latentHeight: Int { height / latentFactor }
    public var latentWidth: Int { width / latentFactor }
    public var trainedLatentHeight: Int { trainedHeight / latentFactor }
    public var trainedLatentWidth: Int { trainedWidth / latentFactor }
}

/// A composition method: turns a request into the passes the pipeline runs and what the UNet does per call.
/// Implementations are values, one file each in this folder, found through `CompositionMode.method`.
public protocol CompositionMethod: Sendable {
    /// The mode this method implements.
    var mode: CompositionMode { get }
    /// The plan for `request`; throws `invalidArgument` when the method cannot serve it (e.g. `hires` on img2img).
    func plan(_ request: CompositionRequest) throws -> CompositionPlan
}
