import AnySize
import XCTest

/// Composition plans without a model: sizes, passes, per-call gates, costs, `auto`'s rule, validation.
final class CompositionPlanTests: XCTestCase {
    func request(_ w: Int, _ h: Int, _ mode: CompositionMode, trained: Int = 512, steps: Int = 20,
                 img2img: Bool = false) -> CompositionRequest {
        CompositionRequest(width: w, height: h, trainedWidth: trained, trainedHeight: trained, steps: steps,
                           img2img: img2img, options: CompositionOptions(mode: mode))
    }

    func testTrainedAreaCanvasRoundsSidesToMultiplesOf64() {
        let cases: [((Int, Int), (Int, Int))] = [((1024, 1024), (512, 512)), ((1024, 512), (704, 384)),
                                                  ((256, 384), (448, 640)), ((768, 768), (512, 512)),
                                                  ((256, 256), (512, 512)), ((4096, 64), (4096, 64))]
        for (target, expected) in cases {
            let c = CompositionGeometry.trainedAreaCanvas(width: target.0, height: target.1, trainedWidth: 512, trainedHeight: 512)
            XCTAssertEqual([c.width, c.height], [expected.0, expected.1], "\(target)")
        }
    }

    func testAutoPicksByCanvas() throws {
        XCTAssertEqual(try CompositionPlan.resolve(request(512, 512, .auto)).method, CompositionMode.none)
        XCTAssertEqual(try CompositionPlan.resolve(request(256, 256, .auto)).method, .resize)
        XCTAssertEqual(try CompositionPlan.resolve(request(512, 384, .auto)).method, .resize)
        XCTAssertEqual(try CompositionPlan.resolve(request(1024, 1024, .auto)).method, .hires)
        XCTAssertEqual(try CompositionPlan.resolve(request(1024, 512, .auto)).method, .hires)
        XCTAssertEqual(try CompositionPlan.resolve(request(1024, 1024, .auto, img2img: true)).method, CompositionMode.none)
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

    func testResizeRendersAtTheTrainedAreaAndRefusesLargerCanvases() throws {
        let plan = try CompositionPlan.resolve(request(256, 384, .resize))
        XCTAssertEqual(plan.passes.map { [$0.width, $0.height] }, [[448, 640]])
        XCTAssertEqual(plan.output, .areaAveragedImage)
        XCTAssertEqual(plan.relativeCost, Double(448 * 640) / Double(256 * 384), accuracy: 1e-9)
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
        XCTAssertEqual(CompositionMode.allCases.map(\.rawValue), ["none", "redilate", "hires", "deep-shrink", "resize", "auto"])
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
}
