import AnySizeKernels
import Foundation
import XCTest

/// Bilinear and bicubic resizing against a direct Double evaluation of PyTorch's definitions
/// (align_corners false, no antialias); Tests/AnySizeTests/UNetCompositionParityTests compares with torch itself.
/// The kernels compute source coordinates and weights in float, as PyTorch does: a few 1e-7 from Double.
final class ResizeTests: XCTestCase {
    /// Keys' cubic convolution kernel with A = -0.75 at distance |x|.
    static func keys(_ x: Double) -> Double {
        let a = -0.75, x = abs(x)
        if x <= 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
        return 0
    }

    /// (index, weight) pairs of output index i: src = (i + 0.5) * in / out - 0.5.
    static func taps(_ i: Int, _ inSize: Int, _ outSize: Int, cubic: Bool) -> [(Int, Double)] {
        if !cubic && inSize == outSize { return [(i, 1)] }
        let src = (Double(i) + 0.5) * Double(inSize) / Double(outSize) - 0.5
        if cubic {
            let f = Int(src.rounded(.down))
            // Border clamping: taps outside [0, in) read the nearest edge pixel.
            return (f - 1 ... f + 2).map { (min(max($0, 0), inSize - 1), keys(src - Double($0))) }
        }
        let s = max(src, 0), f = min(Int(s), inSize - 1)
        return [(f, 1 - (s - Double(f))), (min(f + 1, inSize - 1), s - Double(f))]
    }

    static func reference(_ x: Tensor, _ outH: Int, _ outW: Int, cubic: Bool) -> [Double] {
        let planes = x.shape[0] * x.shape[1], inH = x.shape[2], inW = x.shape[3]
        let v = x.scalars
        var out = [Double]()
        for p in 0 ..< planes {
            for y in 0 ..< outH {
                for xo in 0 ..< outW {
                    var sum = 0.0
                    for (iy, wy) in taps(y, inH, outH, cubic: cubic) {
                        for (ix, wx) in taps(xo, inW, outW, cubic: cubic) {
                            sum += wy * wx * Double(v[(p * inH + iy) * inW + ix])
                        }
                    }
                    out.append(sum)
                }
            }
        }
        return out
    }

    let sizes: [((Int, Int), (Int, Int))] = [
        ((8, 8), (16, 16)), ((16, 16), (8, 8)), ((7, 5), (11, 13)), ((24, 18), (32, 24)), ((13, 9), (5, 4)),
        ((1, 3), (4, 2)), ((5, 6), (1, 1)), ((9, 7), (9, 7)), ((10, 10), (10, 15)),
    ]

    func testBilinear() {
        var rng = TestRandom(seed: 401)
        for (from, to) in sizes {
            let x = rng.tensor([2, 3, from.0, from.1])
            let y = Elementwise.resizeBilinear(x, height: to.0, width: to.1)
            XCTAssertEqual(y.shape, [2, 3, to.0, to.1])
            assertClose(y, Self.reference(x, to.0, to.1, cubic: false), tolerance: 2e-6, "bilinear \(from) -> \(to)")
        }
    }

    func testBicubic() {
        var rng = TestRandom(seed: 402)
        for (from, to) in sizes {
            let x = rng.tensor([2, 3, from.0, from.1])
            let y = Elementwise.resizeBicubic(x, height: to.0, width: to.1)
            XCTAssertEqual(y.shape, [2, 3, to.0, to.1])
            assertClose(y, Self.reference(x, to.0, to.1, cubic: true), tolerance: 5e-6, "bicubic \(from) -> \(to)")
        }
    }

    /// Equal sizes are the identity (bilinear copies; bicubic's weights are then exactly 0, 1, 0, 0).
    func testEqualSizesAreIdentity() {
        var rng = TestRandom(seed: 403)
        let x = rng.tensor([1, 4, 6, 9])
        assertClose(Elementwise.resizeBilinear(x, height: 6, width: 9), x.doubles, tolerance: 0, "bilinear identity")
        assertClose(Elementwise.resizeBicubic(x, height: 6, width: 9), x.doubles, tolerance: 0, "bicubic identity")
    }
}
