import AnySize
import XCTest

/// `MemoryEstimate` on the real SD1.5 configs (the config types' defaults) and the up-front refusal.
final class MemoryEstimateTests: XCTestCase {
    /// SD1.5: UNet 859,520,964 + VAE 83,653,863 + CLIP text 123,060,480 parameters (4.26 GB as float32).
    static let sd15 = ModelFootprint(unet: UNetConfig(), vae: VAEConfig(), parameterCount: 1_066_235_307)

    private func options(_ size: Int, batch: Int = 1, tiling: VAETiling = .off, attention: Int = 384 << 20) -> GenerationOptions {
        var o = GenerationOptions(prompt: "a cat", width: size, height: size, seed: 1)
        o.batchSize = batch
        o.vaeTiling = tiling
        o.attentionMemory = attention
        return o
    }

    private func estimate(_ o: GenerationOptions, img2img: Bool = false) -> MemoryEstimate {
        MemoryEstimate(model: Self.sd15, options: o, img2img: img2img, workers: 2)
    }

    func testWeightsAreFourBytesPerParameter() {
        XCTAssertEqual(estimate(options(512)).weights, 4 * 1_066_235_307)
    }

    /// `--precision bf16` holds the UNet's 859,520,964 parameters in 2 bytes; the VAE and text encoder stay float32.
    func testBFloat16HalvesTheUNetWeights() {
        var model = Self.sd15
        model.unetParameterCount = 859_520_964
        var o = options(512)
        XCTAssertEqual(MemoryEstimate(model: model, options: o, workers: 2).weights, 4 * 1_066_235_307)
        o.precision = .bf16
        let bf16 = MemoryEstimate(model: model, options: o, workers: 2)
        XCTAssertEqual(bf16.weights, 4 * 1_066_235_307 - 2 * 859_520_964)
        XCTAssertLessThan(bf16.peak, estimate(options(512)).peak)
    }

    func testGrowsWithCanvasSizeAndBatch() {
        var previous = 0
        for size in stride(from: 256, through: 2048, by: 128) {
            let peak = estimate(options(size)).peak
            XCTAssertGreaterThan(peak, previous, "\(size)x\(size)")
            previous = peak
        }
        for tiling in [VAETiling.off, .tiles(512)] {
            let one = estimate(options(1024, tiling: tiling)), two = estimate(options(1024, batch: 2, tiling: tiling))
            XCTAssertGreaterThan(two.unetActivations, one.unetActivations)
            XCTAssertGreaterThan(two.peak, one.peak)
        }
        // A wide canvas needs more than a square one of the same height.
        XCTAssertGreaterThan(estimate(options(1024)).peak, estimate(GenerationOptions(prompt: "", width: 512, height: 1024, seed: 1)).peak)
    }

    func testGuidanceDoublesTheUNetBatch() {
        var unguided = options(1024)
        unguided.cfgScale = 1
        let ratio = Double(estimate(options(1024)).unetActivations) / Double(estimate(unguided).unetActivations)
        XCTAssertEqual(ratio, 2, accuracy: 0.01)
    }

    func testTilingLowersTheVAEPhase() {
        for size in [1024, 1536, 2048] {
            let untiled = estimate(options(size)), tiled = estimate(options(size, tiling: .tiles(512)))
            XCTAssertLessThan(tiled.vae, untiled.vae, "\(size)")
            XCTAssertLessThan(tiled.peak, untiled.peak, "\(size)")
            XCTAssertLessThan(estimate(options(size, tiling: .tiles(256))).vae, tiled.vae)
            let encodeTiled = estimate(options(size, tiling: .tiles(512)), img2img: true)
            XCTAssertLessThan(encodeTiled.vae, estimate(options(size), img2img: true).vae)
        }
        // One tile covering the canvas is an untiled decode.
        XCTAssertEqual(estimate(options(512, tiling: .tiles(512))).vae, estimate(options(512)).vae)
        // The untiled SD decoder needs about 2.5 KB per pixel: 10.7 GB at 2048 x 2048.
        XCTAssertEqual(Double(estimate(options(2048)).vae) / 1e9, 10.9, accuracy: 0.5)
    }

    func testAttentionScratchIsTheBudgetOrTheWholeProblem() {
        XCTAssertEqual(estimate(options(2048, attention: 256 << 20)).attentionScratch, 256 << 20)
        XCTAssertEqual(estimate(options(2048, attention: 1 << 30)).attentionScratch, 1 << 30)
        // 8 x 8 latents: 64 x 67 floats per worker, far below any budget.
        XCTAssertEqual(estimate(options(64)).attentionScratch, 2 * 4 * 64 * 67)
    }

    func testDefaultAttentionBudgetFollowsPhysicalMemory() {
        XCTAssertEqual(AttentionMemory.defaultBudget(physicalMemory: 24 << 30), 384 << 20)
        XCTAssertEqual(AttentionMemory.defaultBudget(physicalMemory: 4 << 30), 256 << 20)
        XCTAssertEqual(AttentionMemory.defaultBudget(physicalMemory: 256 << 30), 1 << 30)
    }

    func testRefusalNamesTheEstimateAndTheFlagsThatHelp() throws {
        let gb: UInt64 = 1 << 30
        XCTAssertNil(MemoryEstimate.refusal(model: Self.sd15, options: options(1024, tiling: .tiles(512)), physicalMemory: 24 * gb, workers: 2))
        // 2048 x 2048 untiled with a batch of 2 does not fit in 12 GB; tiling and a batch of 1 do.
        let o = options(2048, batch: 2, tiling: .off, attention: 1 << 30)
        let peak = estimate(o).peak
        let error = try XCTUnwrap(MemoryEstimate.refusal(model: Self.sd15, options: o, physicalMemory: 12 * gb, workers: 2))
        XCTAssertEqual(error.kind, .outOfMemory)
        XCTAssertFalse(error.message.contains("\n"))
        for part in ["2048x2048", "batch size 2", "needs about \(MemoryEstimate.gigabytes(peak))", "--vae-tile 512",
                     "--attention-memory 256", "--batch-size 1"] {
            XCTAssertTrue(error.message.contains(part), "missing '\(part)' in: \(error.message)")
        }
        XCTAssertFalse(error.message.contains("smaller --width"), error.message)
        // Below the weights themselves nothing helps but a smaller canvas.
        let hopeless = try XCTUnwrap(MemoryEstimate.refusal(model: Self.sd15, options: options(2048, tiling: .tiles(256)),
                                                            physicalMemory: 4 * gb, workers: 2))
        XCTAssertTrue(hopeless.message.contains("use a smaller --width/--height"), hopeless.message)
        XCTAssertFalse(hopeless.message.contains("--vae-tile 512 ("), hopeless.message)
    }

    func testFootprintFromHeadersMatchesTheLoadedCheckpoint() throws {
        for path in ["tiny-sd1", "tiny-sd2", "tiny-sd1.safetensors", "tiny-sd2.safetensors"] {
            let footprint = try ModelFootprint.read(path: try Fixtures.path(path))
            let loaded = ModelFootprint(try StableDiffusionCheckpoint.load(path: try Fixtures.path(path)))
            XCTAssertEqual(footprint.parameterCount, loaded.parameterCount, path)
            XCTAssertEqual(footprint.unetParameterCount, loaded.unetParameterCount, path)
            XCTAssertGreaterThan(footprint.unetParameterCount, 0, path)
            XCTAssertEqual(footprint.unet.blockOutChannels, loaded.unet.blockOutChannels, path)
            XCTAssertEqual(footprint.vae.blockOutChannels, loaded.vae.blockOutChannels, path)
        }
    }

    /// The feed-forward runs over chunks of tokens; one-token chunks give the same UNet output.
    func testChunkedFeedForwardMatchesUnchunked() throws {
        let checkpoint = try Fixtures.checkpoint("tiny-sd1")
        let unet = try UNet2DConditionModel(config: checkpoint.unetConfig, parameters: checkpoint.unet)
        let sample = TorchRandom(seed: 8).randn([2, 4, 16, 24])
        let context = TorchRandom(seed: 9).randn([2, 77, checkpoint.unetConfig.crossAttentionDim])
        let whole = unet(sample, timesteps: [500, 500], context: context, attention: AttentionContext())
        unet.feedForwardChunkBytes = 1
        let chunked = unet(sample, timesteps: [500, 500], context: context, attention: AttentionContext())
        let comparison = compare(chunked, whole, tolerance: 1e-5)
        XCTAssertTrue(comparison.passes, "\(comparison)")
    }
}
