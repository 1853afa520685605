import AnySizeKernels
import Foundation
import XCTest

final class VectorExpTests: XCTestCase {
    func testMatchesDoubleExpWithinTwoULP() {
        // 2^20 points over [-87, 88], eight per call; error measured in units of the result's float spacing.
        var worstULP = 0.0
        let count = 1 << 20
        for start in stride(from: 0, to: count, by: 8) {
            var x = SIMD8<Float>()
            for lane in 0 ..< 8 { x[lane] = -87 + 175 * Float(start + lane) / Float(count) }
            let y = VectorExp.exp(x)
            for lane in 0 ..< 8 {
                let exact = Foundation.exp(Double(x[lane]))
                let ulp = Double(Float(exact).ulp)
                worstULP = max(worstULP, abs(Double(y[lane]) - exact) / ulp)
            }
        }
        print(String(format: "VectorExpTests: worst error %.2f ulp on [-87, 88]", worstULP))
        XCTAssertLessThan(worstULP, 2)
    }

    func testSpecialValues() {
        let x = SIMD8<Float>(-.infinity, -1000, -88, 0, 1, -1, .leastNonzeroMagnitude, 0.5)
        let y = VectorExp.exp(x)
        XCTAssertEqual(y[0], 0)
        XCTAssertEqual(y[1], 0)
        XCTAssertEqual(y[2], 0)
        XCTAssertEqual(y[3], 1)
        XCTAssertEqual(y[4], Float(M_E), accuracy: Float(M_E).ulp)
        XCTAssertEqual(y[5], Float(1 / M_E), accuracy: Float(1 / M_E).ulp)
        XCTAssertEqual(y[6], 1)
        XCTAssertEqual(y[7], Float(Foundation.exp(0.5)), accuracy: 2 * Float(Foundation.exp(0.5)).ulp)
    }

    /// The softmax exponential (x <= 0, 16 lanes) against Double exp on [-87.3, 0], and its special values.
    func testNonPositiveExpWithinTwoULP() {
        var worstULP = 0.0
        let count = 1 << 20
        for start in stride(from: 0, to: count, by: 16) {
            var x = SIMD16<Float>()
            for lane in 0 ..< 16 { x[lane] = -87.3 * Float(start + lane) / Float(count - 1) }
            let y = VectorExp.expNonPositive(x)
            for lane in 0 ..< 16 {
                let exact = Foundation.exp(Double(x[lane]))
                worstULP = max(worstULP, abs(Double(y[lane]) - exact) / Double(Float(exact).ulp))
            }
        }
        print(String(format: "VectorExpTests: expNonPositive worst error %.2f ulp on [-87.3, 0]", worstULP))
        XCTAssertLessThan(worstULP, 2)
        var special = SIMD16<Float>(repeating: 0)
        special[1] = -.infinity
        special[2] = -88
        special[3] = -1e30
        special[4] = -.leastNonzeroMagnitude
        let y = VectorExp.expNonPositive(special)
        XCTAssertEqual(y[0], 1)
        XCTAssertEqual(y[1], 0)
        XCTAssertEqual(y[2], 0)
        XCTAssertEqual(y[3], 0)
        XCTAssertEqual(y[4], 1)
    }
}
