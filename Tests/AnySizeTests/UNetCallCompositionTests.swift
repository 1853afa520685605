import AnySize
import XCTest

/// The per-call gates of the in-UNet composition methods (METHODS.md, "Composition methods", items 1 and 3).
final class UNetCallCompositionTests: XCTestCase {
    func redilation(_ h: Int, _ w: Int, t: Double, until: Double = 400) -> UNetCallComposition {
        .redilation(latentHeight: h, latentWidth: w, trainedLatentHeight: 64, trainedLatentWidth: 64, timestep: t,
                    until: until)
    }

    func deepShrink(_ h: Int, _ w: Int, t: Double, end: Double = 0.35) -> UNetCallComposition {
        .deepShrink(latentHeight: h, latentWidth: w, trainedLatentHeight: 64, trainedLatentWidth: 64, timestep: t,
                    end: end)
    }

    func testRedilationUsesTheSmallerSideRatioWhileTheTimestepIsAtLeastTau() {
        XCTAssertEqual(redilation(128, 128, t: 999), UNetCallComposition(dilation: 2))
        XCTAssertEqual(redilation(96, 160, t: 400), UNetCallComposition(dilation: 1.5))   // min(1.5, 2.5), t = tau
        XCTAssertEqual(redilation(128, 128, t: 399.5), .none)                              // below tau
        XCTAssertEqual(redilation(64, 128, t: 999), .none)                                 // one side at 1x: d = 1
        XCTAssertEqual(redilation(32, 48, t: 999), .none)                                  // smaller: d < 1
        XCTAssertEqual(redilation(192, 192, t: 999, until: 0).dilation, 3)
        XCTAssertTrue(redilation(128, 128, t: 999).redilates)
        XCTAssertFalse(redilation(128, 128, t: 999).shrinks)
    }

    func testDeepShrinkUsesTheLargerSideRatioWhileTheTimestepIsAtLeastTheStart() {
        XCTAssertEqual(deepShrink(128, 128, t: 999), UNetCallComposition(deepShrinkFactor: 2))
        XCTAssertEqual(deepShrink(64, 160, t: 650), UNetCallComposition(deepShrinkFactor: 2.5))  // (1 - 0.35) * 1000
        XCTAssertEqual(deepShrink(128, 128, t: 649), .none)
        XCTAssertEqual(deepShrink(128, 128, t: 499, end: 0.5).deepShrinkFactor, 1)
        XCTAssertEqual(deepShrink(128, 128, t: 500, end: 0.5).deepShrinkFactor, 2)
        XCTAssertEqual(deepShrink(32, 64, t: 999), .none)                                  // f = max(.., 1) = 1
        XCTAssertTrue(deepShrink(128, 96, t: 999).shrinks)
        XCTAssertTrue(UNetCallComposition.none.isNone)
        XCTAssertFalse(UNetCallComposition(dilation: 1.5, deepShrinkFactor: 2).isNone)
    }
}
