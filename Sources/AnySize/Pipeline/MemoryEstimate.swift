import Foundation
import AnySizeKernels

/// The peak resident memory of one generation, estimated from the model's configs before any weights load.
///
/// The pipeline runs in phases that never overlap, so the peak is
/// `overhead + max(weights, weights - text encoder + max(img2img encode, sampling, decode))`:
/// - weights: every parameter as float32 (the UNet's as bfloat16 with `precision` bf16); the text encoder's are dropped once the prompts are encoded
///   (`StableDiffusionPipeline.releasesTextEncoderAfterEncoding`), its own activations are negligible;
/// - sampling: the UNet's live activations for the whole batch (doubled by classifier-free guidance) at their
///   largest (skip tensors of the down path plus the working set of the current block, traced block by block as
///   `UNet2DConditionModel` runs), plus the attention kernel's scratch (`attentionMemory`, or less when the
///   whole problem is smaller);
/// - decode: the VAE decoder's working set for one image (or one tile), including its mid-block attention
///   scratch, plus the decoded batch;
/// - encode (img2img): the same for the encoder.
/// Working sets count a layer's input, its temporaries and its output as alive together. `overhead` covers the
/// process, the tokenizer, OpenBLAS buffers, convolution column buffers and the feed-forward chunk.
/// Measured against `/usr/bin/time -v` in docs/PERFORMANCE.md.
public struct MemoryEstimate: Sendable {
    public let weights: Int
    /// The text encoder's share of `weights`, not resident after encoding.
    public let textEncoderWeights: Int
    public let unetActivations: Int
    public let attentionScratch: Int
    /// Largest VAE phase: the decode, or the img2img encode when larger.
    public let vae: Int
    public let overhead: Int

    /// Fixed cost besides weights and activations (bytes).
    public static let baseOverhead = 400 << 20

    /// Bytes at the peak.
    public var peak: Int {
        let working = max(Saturating.add(unetActivations, attentionScratch), vae)
        return Saturating.add(overhead, max(weights, Saturating.add(weights - textEncoderWeights, working)))
    }

    /// Estimate for `options` (size, batch, guidance, `attentionMemory`, `vaeTiling`) on `model`, with `workers`
    /// attention threads; `img2img` (default: whether `options.initImage` is set) adds the VAE encode.
    public init(model: ModelFootprint, options: GenerationOptions, img2img: Bool? = nil,
                workers: Int = Parallel.threadCount) {
        let f = 1 << max(0, model.vae.blockOutChannels.count - 1)
        let canvas = Self.largestCanvas(model: model, options: options, img2img: img2img ?? (options.initImage != nil))
        let dilation = Self.largestDilation(model: model, options: options, img2img: img2img ?? (options.initImage != nil))
        let h = canvas.height / f, w = canvas.width / f
        // Batch-dependent terms saturate at Int.max instead of overflowing (a batch of 10^12 is refused, not a crash).
        let batch = options.batchCount
        let rows = Saturating.multiply(batch, options.cfgScale > 1 ? 2 : 1)
        weights = model.weightBytes(precision: options.precision)
        textEncoderWeights = model.textEncoderWeightBytes
        // Latents, scaled input, guided input, output, guidance result and scheduler history: a few latents.
        let sampler = Saturating.multiply(rows, 8 * model.unet.inChannels * h * w)
        unetActivations = Saturating.multiply(4, Saturating.add(
            Saturating.multiply(rows, Self.unetFloats(model.unet, height: h, width: w, dilation: dilation)), sampler))
        attentionScratch = Self.attentionScratch(tokens: h * w, budget: options.attentionMemory, workers: workers)
        let tile = options.vaeTiling.tileSize(width: canvas.width, height: canvas.height).map { max(1, $0 / f) }
        let th = min(tile ?? h, h), tw = min(tile ?? w, w)
        let tiled = th < h || tw < w
        let pixels = canvas.height * canvas.width
        // Per image (or tile), then the decoded batch (parts and their concatenation) and the tile accumulator.
        let decoded = Saturating.multiply(batch, 8 * model.vae.outChannels * pixels)
        let decode = Saturating.add(4 * Self.decoderFloats(model.vae, height: th, width: tw)
            + Self.attentionScratch(tokens: th * tw, budget: options.attentionMemory, workers: workers)
            + 4 * (tiled ? pixels : 0), decoded)
        var encode = 0
        if img2img ?? (options.initImage != nil) {
            let latents = Saturating.multiply(Saturating.add(batch, 2), 8 * model.vae.latentChannels * h * w)
            encode = Saturating.add(4 * Self.encoderFloats(model.vae, height: th * f, width: tw * f)
                + Self.attentionScratch(tokens: th * tw, budget: options.attentionMemory, workers: workers)
                + 4 * model.vae.inChannels * pixels, latents)
        }
        vae = max(decode, encode)
        // + im2col columns + feed-forward chunk (+ re-dilation's sub-grid groups, `DilatedConvolution`)
        overhead = Self.baseOverhead + (64 << 20) + (64 << 20) + (dilation > 1 ? DilatedConvolution().maxScratchBytes : 0)
    }

    /// The largest canvas any pass of the options' composition samples and decodes (the target for `none`; the
    /// render for `resize`); the target when the composition cannot be planned (the generation reports why).
    public static func largestCanvas(model: ModelFootprint, options: GenerationOptions, img2img: Bool) -> (width: Int, height: Int) {
        let f = 1 << max(0, model.vae.blockOutChannels.count - 1)
        let trained = options.trainedSize ?? model.trainedSize
        let request = CompositionRequest(width: options.width, height: options.height, trainedWidth: trained.width,
                                         trainedHeight: trained.height, latentFactor: f, steps: options.steps,
                                         img2img: img2img, options: options.composition, unet: model.unet)
        guard let plan = try? CompositionPlan.resolve(request) else { return (options.width, options.height) }
        let largest = plan.largestPass
        return largest.width * largest.height > options.width * options.height ? largest : (options.width, options.height)
    }

    /// The largest re-dilation factor of any model call of the options' composition (1: none; `redilate` on a
    /// canvas above the trained one, and `auto` when it picks re-dilation).
    public static func largestDilation(model: ModelFootprint, options: GenerationOptions, img2img: Bool) -> Double {
        let f = 1 << max(0, model.vae.blockOutChannels.count - 1)
        let trained = options.trainedSize ?? model.trainedSize
        let request = CompositionRequest(width: options.width, height: options.height, trainedWidth: trained.width,
                                         trainedHeight: trained.height, latentFactor: f, steps: options.steps,
                                         img2img: img2img, options: options.composition, unet: model.unet)
        guard let plan = try? CompositionPlan.resolve(request) else { return 1 }
        return plan.passes.map { pass in request.callTimesteps.map { pass.unetCall($0).dilation }.max() ?? 1 }.max() ?? 1
    }

    /// One line for `--verbose`.
    public var summary: String {
        "estimated peak memory \(Self.gigabytes(peak)) (weights \(Self.gigabytes(weights)), UNet activations "
            + "\(Self.gigabytes(unetActivations)), attention scratch \(Self.gigabytes(attentionScratch)), "
            + "VAE \(Self.gigabytes(vae)), other \(Self.gigabytes(overhead)))"
    }

    /// "5.42 GB" (10^9 bytes).
    public static func gigabytes(_ bytes: Int) -> String { String(format: "%.2f GB", Double(bytes) / 1e9) }

    /// The error for a run whose estimate exceeds `physicalMemory`, naming the estimate and the flags that
    /// lower it (each with its estimate); nil when the run fits.
    public static func refusal(model: ModelFootprint, options: GenerationOptions, img2img: Bool? = nil,
                               physicalMemory: UInt64 = ProcessInfo.processInfo.physicalMemory,
                               workers: Int = Parallel.threadCount) -> AnySizeError? {
        let physical = Int(clamping: physicalMemory)
        let estimate = MemoryEstimate(model: model, options: options, img2img: img2img, workers: workers)
        guard estimate.peak > physical else { return nil }
        func peak(_ change: (inout GenerationOptions) -> Void) -> Int {
            var o = options
            change(&o)
            return MemoryEstimate(model: model, options: o, img2img: img2img, workers: workers).peak
        }
        let smallTile = 256, smallAttention = 256 << 20
        var remedies: [(flag: String, peak: Int)] = []
        var tiledPeak = estimate.peak
        for size in [VAETiling.automaticTileSize, smallTile] {
            let current = options.vaeTiling.tileSize(width: options.width, height: options.height)
            guard current.map({ $0 > size }) ?? true else { continue }
            let p = peak { $0.vaeTiling = .tiles(size) }
            if p < tiledPeak { remedies.append(("--vae-tile \(size)", p)) }  // a smaller tile only if it helps more
            tiledPeak = min(tiledPeak, p)
        }
        if options.attentionMemory > smallAttention {
            remedies.append(("--attention-memory \(smallAttention >> 20)", peak { $0.attentionMemory = smallAttention }))
        }
        if options.batchSize > 1 { remedies.append(("--batch-size 1", peak { $0.batchSize = 1 })) }
        let helpful = remedies.filter { $0.peak < estimate.peak }
        let all = peak {
            $0.vaeTiling = .tiles(smallTile)
            $0.attentionMemory = min($0.attentionMemory, smallAttention)
            $0.batchSize = 1
        }
        var message = "\(options.width)x\(options.height)" + (options.batchSize > 1 ? " with batch size \(options.batchSize)" : "")
            + " needs about \(gigabytes(estimate.peak)) (weights \(gigabytes(estimate.weights)), UNet activations "
            + "\(gigabytes(estimate.unetActivations)), attention scratch \(gigabytes(estimate.attentionScratch)), "
            + "VAE \(gigabytes(estimate.vae))) but this machine has \(gigabytes(physical))"
        if !helpful.isEmpty {
            message += "; these lower it: " + helpful.map { "\($0.flag) (about \(gigabytes($0.peak)))" }.joined(separator: ", ")
        }
        if all > physical {
            message += "; even --vae-tile \(smallTile) --attention-memory \(smallAttention >> 20) --batch-size 1 needs about "
                + "\(gigabytes(all)): use a smaller --width/--height"
        }
        return AnySizeError(.outOfMemory, message)
    }

    // MARK: - Working sets (floats)

    /// Attention kernel scratch: the budget, or the whole logits matrix per worker when that is smaller.
    static func attentionScratch(tokens: Int, budget: Int, workers: Int) -> Int {
        min(budget, max(1, workers) * AttentionChunking.scratchBytesPerWorker(queryChunk: tokens, keyChunk: tokens))
    }

    /// Peak live floats of one batch row of the UNet on an `height` x `width` latent, traced block by block.
    /// `dilation` > 1 (re-dilation of the resnets outside level 0): a fractional factor convolves a copy of each
    /// conv input resized by r = ceil(d) / d per side and resizes the result back (`Conv2D.redilated`), so the
    /// resized input and output (r^2 times their size) are alive with the block's tensors.
    static func unetFloats(_ c: UNetConfig, height: Int, width: Int, dilation: Double = 1) -> Int {
        let ch = c.blockOutChannels, levels = ch.count
        func n(_ level: Int) -> Int { UNetGeometry.grid(height, level: level) * UNetGeometry.grid(width, level: level) }
        var skips: [(channels: Int, level: Int)] = []
        var peak = 0
        func note(_ working: Int) { peak = max(peak, skips.reduce(0) { $0 + $1.channels * n($1.level) } + working) }
        // ResnetBlock2D: x, norm1(x), conv1 -> then x, h, norm2(h), conv2 (and the shortcut).
        let r = dilation > 1 ? dilation.rounded(.up) / dilation : 1
        func resized(_ floats: Int) -> Int { Int((Double(floats) * r * r).rounded(.up)) }
        func resnet(_ cin: Int, _ cout: Int, _ level: Int) {
            note(max(2 * cin + cout, cin + 3 * cout) * n(level))
            guard level > 0, r > 1 else { return }
            // conv1: x, norm1(x), its resized copy, the dilated output there, the output resized back;
            // conv2: x, h, norm2(h), its resized copy, the dilated output there, the output resized back.
            note((2 * cin + cout) * n(level) + resized((cin + cout) * n(level)))
            note((cin + 3 * cout) * n(level) + resized(2 * cout * n(level)))
        }
        // Transformer2DModel: input, tokens, norm1, q, k, v, attention output, to_out.
        func transformer(_ channels: Int, _ level: Int) { note(8 * channels * n(level)) }

        var current = ch[0]
        note(c.inChannels * n(0) + current * n(0))
        skips.append((current, 0))
        for level in 0 ..< levels {
            for _ in 0 ..< c.layersPerBlock {
                resnet(current, ch[level], level)
                current = ch[level]
                if c.downBlockTypes[level] == "CrossAttnDownBlock2D" { transformer(current, level) }
                skips.append((current, level))
            }
            if level < levels - 1 {
                note(current * (n(level) + n(level + 1)))
                skips.append((current, level + 1))
            }
        }
        resnet(current, current, levels - 1)
        transformer(current, levels - 1)
        resnet(current, current, levels - 1)
        for i in 0 ..< levels {
            let level = levels - 1 - i, output = ch[level]
            for _ in 0 ... c.layersPerBlock {
                let skip = skips.removeLast()
                note((current + skip.channels) * n(level) * 2)         // h, skip and their concatenation
                resnet(current + skip.channels, output, level)
                current = output
                if c.upBlockTypes[i] == "CrossAttnUpBlock2D" { transformer(current, level) }
            }
            if level > 0 { note(current * (n(level) + 2 * n(level - 1))) }  // upsampled input and its conv
        }
        return peak
    }

    /// Peak live floats of the VAE decoder for one image of `height` x `width` latents.
    static func decoderFloats(_ c: VAEConfig, height: Int, width: Int) -> Int {
        let ch = Array(c.blockOutChannels.reversed()), levels = ch.count
        func n(_ k: Int) -> Int { (height << k) * (width << k) }
        var peak = (2 * c.latentChannels + ch[0]) * n(0)                  // post_quant_conv, conv_in
        func resnet(_ cin: Int, _ cout: Int, _ k: Int) { peak = max(peak, max(2 * cin + cout, cin + 3 * cout) * n(k)) }
        resnet(ch[0], ch[0], 0)
        if c.midBlockAddAttention { peak = max(peak, 8 * ch[0] * n(0)) }
        resnet(ch[0], ch[0], 0)
        var current = ch[0]
        for i in 0 ..< levels {
            for _ in 0 ... c.layersPerBlock {
                resnet(current, ch[i], i)
                current = ch[i]
            }
            if i < levels - 1 { peak = max(peak, current * (n(i) + 2 * n(i + 1))) }
        }
        return max(peak, (2 * current + c.outChannels) * n(levels - 1))  // norm_out, conv_out
    }

    /// Peak live floats of the VAE encoder for one image of `height` x `width` pixels.
    static func encoderFloats(_ c: VAEConfig, height: Int, width: Int) -> Int {
        let ch = c.blockOutChannels, levels = ch.count
        func n(_ k: Int) -> Int { UNetGeometry.grid(height, level: k) * UNetGeometry.grid(width, level: k) }
        var peak = (c.inChannels + ch[0]) * n(0)
        func resnet(_ cin: Int, _ cout: Int, _ k: Int) { peak = max(peak, max(2 * cin + cout, cin + 3 * cout) * n(k)) }
        var current = ch[0]
        for level in 0 ..< levels {
            for _ in 0 ..< c.layersPerBlock {
                resnet(current, ch[level], level)
                current = ch[level]
            }
            if level < levels - 1 { peak = max(peak, current * (2 * n(level) + n(level + 1))) }  // padded copy, conv
        }
        resnet(current, current, levels - 1)
        if c.midBlockAddAttention { peak = max(peak, 8 * current * n(levels - 1)) }
        return peak
    }
}

/// Integer arithmetic on byte counts that stops at `Int.max` instead of trapping on overflow.
enum Saturating {
    static func add(_ a: Int, _ b: Int) -> Int {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? (a < 0 ? Int.min : Int.max) : sum
    }

    static func multiply(_ a: Int, _ b: Int) -> Int {
        let (product, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? ((a < 0) != (b < 0) ? Int.min : Int.max) : product
    }
}
