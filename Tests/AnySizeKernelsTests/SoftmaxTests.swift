import AnySizeKernels
import Foundation
import XCTest

final class SoftmaxTests: XCTestCase {
    func reference(_ x: Tensor) -> [Double] {
        let n = x.shape.last ?? 1, xv = x.doubles
        var out = [Double]()
        for r in 0 ..< x.count / n {
            let row = xv[r * n ..< (r + 1) * n]
            let m = row.max() ?? 0
            let e = row.map { exp($0 - m) }
            let s = e.reduce(0, +)
            out += e.map { $0 / s }
        }
        return out
    }

    func testRandomRows() {
        var rng = TestRandom(seed: 41)
        for shape in [[3, 7, 33], [2, 1], [5, 4096]] {
            let x = rng.tensor(shape, -8, 8)
            let expected = reference(x)
            Softmax.lastAxisInPlace(x)
            assertClose(x, expected, tolerance: 1e-5, "softmax \(shape)")
        }
    }

    func testLargeLogitsDoNotOverflow() {
        var rng = TestRandom(seed: 42)
        let x = rng.tensor([4, 50], -1000, 1000)
        for i in 0 ..< 50 { x.pointer[50 + i] = 1e30 + Float(i) * 1e24 }   // one row of huge, distinct values
        x.pointer[100] = 3e38
        let expected = reference(x)
        Softmax.lastAxisInPlace(x)
        XCTAssertTrue(x.buffer.allSatisfy(\.isFinite))
        assertClose(x, expected, tolerance: 1e-5, "softmax [4, 50] logits up to 3e38")
        for r in 0 ..< 4 {
            let sum = (0 ..< 50).reduce(0.0) { $0 + Double(x.pointer[r * 50 + $1]) }
            XCTAssertEqual(sum, 1, accuracy: 1e-5)
        }
    }

    func testNaNPropagates() {
        let x = Tensor(shape: [2, 3], values: [1, .nan, 2, 0, 1, 2])
        Softmax.lastAxisInPlace(x)
        XCTAssertTrue(x.pointer[0].isNaN && x.pointer[2].isNaN, "a NaN logit must poison its row")
        XCTAssertTrue(x.buffer[3 ..< 6].allSatisfy(\.isFinite), "other rows stay finite")
    }

    func testMaskedEntries() {
        let x = Tensor(shape: [2, 4], values: [1, -.infinity, 2, -.infinity,
                                               -.infinity, -.infinity, -.infinity, -.infinity])
        Softmax.lastAxisInPlace(x)
        let e = Foundation.exp(-1.0)
        assertClose(x, [e / (1 + e), 0, 1 / (1 + e), 0, 0, 0, 0, 0], tolerance: 1e-6, "softmax with -inf entries")
    }
}
