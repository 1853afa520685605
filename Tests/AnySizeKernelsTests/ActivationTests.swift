import AnySizeKernels
import Foundation
import XCTest

final class ActivationTests: XCTestCase {
    /// Random values in [-12, 12] plus a few near zero.
    func inputs(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = TestRandom(seed: seed)
        let x = rng.tensor(shape, -12, 12)
        let edges: [Float] = [0, -0.0, 1e-6, -1e-6, 1e-30, -1e-30]
        for (i, v) in edges.enumerated() where i < x.count { x.pointer[i] = v }
        return x
    }

    /// Large magnitudes, where e^-x over- or underflows.
    let extremes: [Float] = [30, -30, 88.5, -88.5, 100, -100, 1e4, -1e4, 3e38, -3e38]

    func geluReference(_ v: Double) -> Double { 0.5 * v * (1 + erf(v / 2.0.squareRoot())) }

    func testFastExpAndErf() {
        var worstExp = 0.0
        var v: Float = -87
        while v < 88.5 {
            let exact = Foundation.exp(Double(v))
            worstExp = max(worstExp, abs(Double(FastMath.exp(v)) - exact) / exact)
            v += 0.0137
        }
        print("FastMath.exp on [-87, 88.5]: max relative error \(worstExp)")
        XCTAssertLessThan(worstExp, 3e-7)
        XCTAssertEqual(FastMath.exp(-100), 0)
        XCTAssertEqual(FastMath.exp(-.infinity), 0)
        XCTAssertEqual(FastMath.exp(100), .infinity)
        XCTAssertEqual(FastMath.exp(0), 1)
        XCTAssertTrue(FastMath.exp(.nan).isNaN, "NaN must propagate")
        XCTAssertTrue(FastMath.erf(.nan).isNaN, "NaN must propagate")

        var worstErf = 0.0
        v = -6
        while v < 6 {
            worstErf = max(worstErf, abs(Double(FastMath.erf(v)) - Foundation.erf(Double(v))))
            v += 0.001
        }
        print("FastMath.erf on [-6, 6]: max abs error \(worstErf)")
        XCTAssertEqual(FastMath.erf(.infinity), 1)
        XCTAssertEqual(FastMath.erf(-.infinity), -1)
        XCTAssertLessThan(worstErf, 6e-7)   // 1.5e-7 approximation + float rounding near |erf| = 1
    }

    func testSiLU() {
        let x = inputs([2, 7, 13, 7], seed: 31)
        let reference = x.doubles.map { $0 / (1 + exp(-$0)) }
        Activation.siluInPlace(x)
        assertClose(x, reference, tolerance: 1e-5, "silu [2, 7, 13, 7]")
    }

    func testGELU() {
        let x = inputs([3, 5, 33], seed: 32)
        let reference = x.doubles.map(geluReference)
        Activation.geluInPlace(x)
        assertClose(x, reference, tolerance: 1e-5, "gelu [3, 5, 33]")
    }

    func testQuickGELU() {
        let x = inputs([2, 77, 19], seed: 33)
        let reference = x.doubles.map { $0 / (1 + exp(-1.702 * $0)) }
        Activation.quickGELUInPlace(x)
        assertClose(x, reference, tolerance: 1e-5, "quickGELU [2, 77, 19]")
    }

    func testGEGLU() {
        let d = 11
        let x = inputs([2, 5, 2 * d], seed: 34)
        let y = Activation.geglu(x)
        XCTAssertEqual(y.shape, [2, 5, d])
        let xv = x.doubles
        var reference = [Double]()
        for r in 0 ..< 10 {
            for j in 0 ..< d { reference.append(xv[r * 2 * d + j] * geluReference(xv[r * 2 * d + d + j])) }
        }
        assertClose(y, reference, tolerance: 1e-5, "geglu [2, 5, 22] -> [2, 5, 11]")
    }

    /// At large |x| every activation is x or 0 (to float rounding) and stays finite.
    func testExtremeInputs() {
        let cases: [(String, (Tensor) -> Void, (Double) -> Double)] = [
            ("silu", Activation.siluInPlace, { $0 > 0 ? $0 : 0 }),
            ("gelu", Activation.geluInPlace, { $0 > 0 ? $0 : 0 }),
            ("quickGELU", Activation.quickGELUInPlace, { $0 > 0 ? $0 : 0 }),
        ]
        for (name, op, limit) in cases {
            let x = Tensor(shape: [extremes.count], values: extremes)
            op(x)
            let nan = Tensor(shape: [1], values: [.nan])
            op(nan)
            XCTAssertTrue(nan.pointer[0].isNaN, "\(name)(NaN) must be NaN")
            for (v, y) in zip(extremes, x.buffer) {
                XCTAssertTrue(y.isFinite, "\(name)(\(v)) = \(y)")
                XCTAssertEqual(Double(y), limit(Double(v)), accuracy: 1e-6 * Double(abs(v)), "\(name)(\(v))")
            }
        }
    }
}
