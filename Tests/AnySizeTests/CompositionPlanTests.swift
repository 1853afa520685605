import Foundation
import AnySize
import XCTest

/// Composition plans without a model: sizes, passes, per-call gates, costs, `auto`'s rule, validation.
final class CompositionPlanTests: XCTestCase {
    func request(_ w: Int, _ h: Int, _ mode: CompositionMode, trained: Int = 512, steps: Int = 20,
                 img2img: Bool = false) -> CompositionRequest {
        CompositionRequest(width: w, height: h, trainedWidth: trained, trainedHeight: trained, steps: steps,
                           img2img: img2img, options: CompositionOptions(mode: mode))
    }

    func testTrainedAreaCanvasRoundsSidesToMultiplesOf8() {
        // 1024x512: sqrt(2) * 512 = 724.08 -> 728, 362.04 -> 360; 256x384: 418.05 -> 416, 627.07 -> 624.
        let cases: [((Int, Int), (Int, Int))] = [((1024, 1024), (512, 512)), ((1024, 512), (728, 360)),
                                                  ((256, 384), (416, 624)), ((768, 768), (512, 512)),
                                                  ((256, 256), (512, 512)), ((4096, 64), (4096, 64))]
        for (target, expected) in cases {
            let c = CompositionGeometry.trainedAreaCanvas(width: target.0, height: target.1, trainedWidth: 512, trainedHeight: 512)
            XCTAssertEqual([c.width, c.height], [expected.0, expected.1], "\(target)")
        }
        // The toy model's one-sided canvas (docs/OOD.md): 181.02 -> 184, 90.51 -> 88 (2.09:1; multiples of 64 gave 192x64).
        let toy = CompositionGeometry.trainedAreaCanvas(width: 256, height: 128, trainedWidth: 128, trainedHeight: 128)
        XCTAssertEqual([toy.width, toy.height], [184, 88])
        // Halves round up: 20 = 8 * 2.5 -> 24.
        XCTAssertEqual(CompositionGeometry.trainedAreaCanvas(width: 20, height: 20, trainedWidth: 20, trainedHeight: 20).width, 24)
    }

    /// auto's rule (docs/OOD.md): a table of canvases -> the method and its first pass.
    func testAutoPicksByCanvas() throws {
        // (width, height, trained side, img2img, method, passes)
        let table: [(Int, Int, Int, Bool, CompositionMode, [[Int]])] = [
            (128, 128, 128, false, .none, [[128, 128]]),                   // trained size
            (64, 64, 128, false, .resize, [[128, 128]]),                   // 0.5x
            (128, 64, 128, false, .resize, [[184, 88]]),                   // smaller, other aspect: trained area
            (192, 192, 128, false, .hires, [[128, 128], [192, 192]]),      // 1.5x
            (256, 256, 128, false, .hires, [[128, 128], [256, 256]]),      // 2x
            (384, 384, 128, false, .cascade, [[128, 128], [256, 256], [384, 384]]),  // 3x: a middle pass
            (264, 264, 128, false, .cascade, [[128, 128], [256, 256], [264, 264]]),  // just above 2x
            (512, 256, 128, false, .cascade, [[184, 88], [368, 176], [512, 256]]),   // 4x wide, 2x tall
            (256, 128, 128, false, .hires, [[184, 88], [256, 128]]),       // 2x wide, 1x tall
            (128, 256, 128, false, .hires, [[88, 184], [128, 256]]),       // 1x wide, 2x tall
            (136, 128, 128, false, .hires, [[128, 128], [136, 128]]),      // one side 8 px larger
            (512, 512, 512, false, .none, [[512, 512]]),
            (512, 384, 512, false, .resize, [[592, 440]]),
            (1024, 1024, 512, false, .hires, [[512, 512], [1024, 1024]]),
            (1024, 512, 512, false, .hires, [[728, 360], [1024, 512]]),
            (1536, 1536, 512, false, .cascade, [[512, 512], [1024, 1024], [1536, 1536]]),
            (1024, 1024, 512, true, .none, [[1024, 1024]]),                // img2img: the init image composes
        ]
        for (w, h, trained, img2img, method, passes) in table {
            let plan = try CompositionPlan.resolve(request(w, h, .auto, trained: trained, img2img: img2img))
            XCTAssertEqual(plan.method, method, "\(w)x\(h) on \(trained)")
            XCTAssertEqual(plan.requested, .auto)
            XCTAssertEqual(plan.passes.map { [$0.width, $0.height] }, passes, "\(w)x\(h) on \(trained)")
            XCTAssertEqual(AutoComposition.choose(request(w, h, .auto, trained: trained, img2img: img2img)), method)
        }
    }

    func testAutoSummaryNamesPassesAndCost() throws {
        let plan = try CompositionPlan.resolve(request(1024, 1024, .auto))
        XCTAssertEqual(plan.summary,
                       "auto: 1024x1024 on a 512x512 model -> hires: 512x512, then 1024x1024 at strength 0.7; about 0.95x the cost of a direct run")
        XCTAssertEqual(plan.metadataSummary, "auto -> hires: 512x512, then 1024x1024 at strength 0.7")
        XCTAssertEqual(plan.passes.map(\.strength), [nil, 0.7])
        XCTAssertTrue(plan.metadata.contains { $0.key == "Hires upscale" && $0.value == "2" })
        XCTAssertTrue(plan.metadata.contains { $0.key == "Denoising strength" && $0.value == "0.7" })
        XCTAssertEqual(plan.attentionMode(for: .auto), .standard)
        XCTAssertEqual(plan.attentionMode(for: .local), .local)
    }

    /// `cascade`: the trained-area pass, doubled while both sides stay below the target's, then the target; up to
    /// 2x the same plan as `hires`.
    func testCascadeDoublesTheSideUntilTheTarget() throws {
        // (width, height, trained side, passes)
        let table: [(Int, Int, Int, [[Int]])] = [
            (192, 192, 128, [[128, 128], [192, 192]]),                        // 1.5x
            (256, 256, 128, [[128, 128], [256, 256]]),                        // 2x: 256 is not below 256
            (384, 384, 128, [[128, 128], [256, 256], [384, 384]]),            // 3x
            (512, 512, 128, [[128, 128], [256, 256], [512, 512]]),            // 4x
            (640, 640, 128, [[128, 128], [256, 256], [512, 512], [640, 640]]),  // 5x
            (256, 128, 128, [[184, 88], [256, 128]]),                         // 2x wide, 1x tall: 368 > 256
            (256, 128, 64, [[88, 48], [176, 96], [256, 128]]),                // 4x wide, 2x tall on 64
            (1024, 512, 512, [[728, 360], [1024, 512]]),
            (2048, 1024, 512, [[728, 360], [1456, 720], [2048, 1024]]),
        ]
        for (w, h, trained, passes) in table {
            let plan = try CompositionPlan.resolve(request(w, h, .cascade, trained: trained))
            XCTAssertEqual(plan.method, .cascade)
            XCTAssertEqual(plan.passes.map { [$0.width, $0.height] }, passes, "\(w)x\(h) on \(trained)")
            XCTAssertEqual(plan.passes.map(\.strength), [nil] + Array(repeating: 0.7, count: passes.count - 1))
            XCTAssertEqual(plan.largestPass.width, w)
            let hires = try CompositionPlan.resolve(request(w, h, .hires, trained: trained))
            if passes.count == 2 {
                XCTAssertEqual(plan.passes.map { [$0.width, $0.height] }, hires.passes.map { [$0.width, $0.height] })
                XCTAssertEqual(plan.detail, hires.detail)
                XCTAssertEqual(plan.relativeCost, hires.relativeCost, accuracy: 1e-12)
            } else {
                XCTAssertGreaterThan(plan.relativeCost, hires.relativeCost, "\(w)x\(h): the middle passes cost extra")
            }
        }
        // 3x on 128 with 20 steps, area costs: (16^2 * 20 + (32^2 + 48^2) * int(20 * 0.7)) / (48^2 * 20) = 1.122.
        let plan = try CompositionPlan.resolve(request(384, 384, .cascade, trained: 128))
        XCTAssertEqual(plan.relativeCost, Double(256 * 20 + (1024 + 2304) * 14) / Double(2304 * 20), accuracy: 1e-12)
        XCTAssertEqual(plan.summary, "cascade: 128x128, 256x256, then 384x384 at strength 0.7; about 1.12x the cost of a direct run")
        XCTAssertTrue(plan.metadata.contains { $0.key == "Hires upscale" && $0.value == "3" })
        XCTAssertThrowsError(try CompositionPlan.resolve(request(1024, 1024, .cascade, img2img: true))) { error in
            XCTAssertTrue("\(error)".contains("--compose cascade"), "\(error)")
        }
    }

    func testResizeRendersAtTheTrainedAreaAndRefusesLargerCanvases() throws {
        let plan = try CompositionPlan.resolve(request(256, 384, .resize))
        XCTAssertEqual(plan.passes.map { [$0.width, $0.height] }, [[416, 624]])
        XCTAssertEqual(plan.output, .areaAveragedImage)
        XCTAssertEqual(plan.relativeCost, Double(416 * 624) / Double(256 * 384), accuracy: 1e-9)
        XCTAssertThrowsError(try CompositionPlan.resolve(request(1024, 512, .resize)))
        XCTAssertThrowsError(try CompositionPlan.resolve(request(256, 256, .resize, img2img: true)))
        XCTAssertThrowsError(try CompositionPlan.resolve(request(1024, 1024, .hires, img2img: true)))
    }

    func testPerCallGatesFollowTheTimestep() throws {
        let redilate = try CompositionPlan.resolve(request(1024, 768, .redilate))
        XCTAssertEqual(redilate.passes.count, 1)
        XCTAssertEqual(redilate.passes[0].unetCall(999).dilation, 1.5, accuracy: 1e-12)  // min(2, 1.5)
        XCTAssertEqual(redilate.passes[0].unetCall(400).dilation, 1.5, accuracy: 1e-12)
        XCTAssertTrue(redilate.passes[0].unetCall(399).isNone)
        XCTAssertEqual(redilate.relativeCost, 1)
        let shrink = try CompositionPlan.resolve(request(1024, 768, .deepShrink))
        XCTAssertEqual(shrink.passes[0].unetCall(700).deepShrinkFactor, 2, accuracy: 1e-12)  // max(2, 1.5)
        XCTAssertTrue(shrink.passes[0].unetCall(600).isNone)
        XCTAssertLessThan(shrink.relativeCost, 1)
        XCTAssertTrue(try CompositionPlan.resolve(request(1024, 768, .none)).passes[0].unetCall(999).isNone)
    }

    func testOptionsAreValidatedWithTheFlagName() {
        for (options, flag) in [(CompositionOptions(hiresStrength: 0), "--hires-strength"),
                                 (CompositionOptions(hiresStrength: 1.5), "--hires-strength"),
                                 (CompositionOptions(redilateUntil: -1), "--redilate-until"),
                                 (CompositionOptions(deepShrinkEnd: 2), "--deep-shrink-end")] {
            XCTAssertThrowsError(try options.validate()) { error in
                XCTAssertTrue("\(error)".contains(flag), "\(error)")
            }
        }
        XCTAssertNoThrow(try CompositionOptions().validate())
        XCTAssertEqual(CompositionMode.allCases.map(\.rawValue), ["none", "redilate", "hires", "cascade", "deep-shrink", "resize", "auto"])
    }

    /// The area average of a constant is the constant; of a ramp shrunk by an integer factor, the block means.
    func testAreaAverageKeepsMeansAndConstants() {
        let ramp = Tensor(shape: [1, 1, 2, 6], values: (0 ..< 12).map(Float.init))
        XCTAssertEqual(AreaResize.shrink(ramp, height: 1, width: 3).scalars, [3.5, 5.5, 7.5])
        let constant = Tensor(shape: [1, 2, 7, 9], repeating: 0.25)
        for v in AreaResize.shrink(constant, height: 3, width: 4).scalars { XCTAssertEqual(v, 0.25, accuracy: 1e-6) }
        let taps = AreaResize.taps(input: 10, output: 3)
        for t in taps { XCTAssertEqual(t.reduce(0) { $0 + $1.weight }, 1, accuracy: 1e-6) }
        XCTAssertEqual(taps[1].map(\.index), [3, 4, 5, 6])  // [3.33, 6.67)
    }

    /// PNG metadata records the composition with A1111's hires keys.
    func testMetadataRecordsTheComposition() throws {
        var options = GenerationOptions(prompt: "a cat", width: 1024, height: 1024, seed: 3)
        options.composition.mode = .auto
        let plan = try CompositionPlan.resolve(request(1024, 1024, .auto))
        let text = GenerationMetadata.parameters(options: options, modelName: "m", attention: "auto -> standard", index: 0,
                                                 composition: plan)
        XCTAssertTrue(text.contains("Compose: \"auto -> hires: 512x512, then 1024x1024 at strength 0.7\", Hires upscale: 2, "
                                    + "Hires upscaler: Latent (bicubic), Denoising strength: 0.7"), text)
        let direct = try CompositionPlan.resolve(request(512, 512, .none))
        XCTAssertFalse(GenerationMetadata.parameters(options: options, modelName: "m", attention: "standard", index: 0,
                                                     composition: direct).contains("Compose"))
    }

    /// The memory estimate covers the largest pass: `resize` renders (and decodes) at the trained area.
    func testMemoryEstimateCoversTheLargestPass() {
        let model = ModelFootprint(unet: UNetConfig(), vae: VAEConfig(), parameterCount: 1_066_235_307)
        var options = GenerationOptions(prompt: "a cat", width: 256, height: 256, seed: 3)
        let direct = MemoryEstimate(model: model, options: options)
        options.composition.mode = .auto
        XCTAssertEqual(MemoryEstimate.largestCanvas(model: model, options: options, img2img: false).width, 512)
        let composed = MemoryEstimate(model: model, options: options)
        XCTAssertGreaterThan(composed.peak, direct.peak)
        var trained = options
        trained.width = 512
        trained.height = 512
        trained.composition.mode = .none
        XCTAssertEqual(composed.peak, MemoryEstimate(model: model, options: trained).peak)
    }

    /// Re-dilation adds the sub-grid scratch, and a fractional factor the resized conv inputs and outputs.
    func testMemoryEstimateCoversReDilation() {
        let model = ModelFootprint(unet: UNetConfig(), vae: VAEConfig(), parameterCount: 1_066_235_307)
        func estimate(_ side: Int, _ mode: CompositionMode) -> MemoryEstimate {
            var options = GenerationOptions(prompt: "a cat", width: side, height: side, seed: 3)
            options.composition.mode = mode
            return MemoryEstimate(model: model, options: options)
        }
        XCTAssertEqual(MemoryEstimate.largestDilation(model: model, options: GenerationOptions(prompt: "", width: 768, height: 768, seed: 1),
                                                      img2img: false), 1)
        for side in [768, 1024] {
            let direct = estimate(side, .none), redilated = estimate(side, .redilate)
            XCTAssertEqual(redilated.overhead - direct.overhead, 64 << 20, "\(side)")
            XCTAssertGreaterThanOrEqual(redilated.unetActivations, direct.unetActivations, "\(side)")
        }
        // d = 2 (1024 on 512) keeps the activations; d = 1.5 (768) convolves level-1 copies (2 / 1.5)^2 larger.
        XCTAssertEqual(estimate(1024, .redilate).unetActivations, estimate(1024, .none).unetActivations)
        XCTAssertGreaterThan(estimate(768, .redilate).unetActivations, estimate(768, .none).unetActivations)
        XCTAssertEqual(estimate(768, .deepShrink).overhead, estimate(768, .none).overhead)
    }

    /// `bench --component sample` runs the plan's passes and reports the method and its estimated cost.
    func testBenchSampleRunsThePlan() throws {
        var options = BenchmarkOptions(component: .sample, width: 576, height: 512, repeats: 1, warmup: 0)
        options.steps = 1
        options.composition.mode = .hires
        let result = try Benchmark.run(checkpoint: try Fixtures.checkpoint("tiny-sd1"), options: options)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.jsonLine.utf8)) as? [String: Any])
        XCTAssertEqual(object["compose"] as? String, "hires: 544x480, then 576x512 at strength 0.7")
        XCTAssertNotNil(object["estimated_relative_cost"] as? Double)
        options.steps = 0
        XCTAssertThrowsError(try options.validate())
    }
}
