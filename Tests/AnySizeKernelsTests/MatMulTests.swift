import AnySizeKernels
import XCTest

final class MatMulTests: XCTestCase {
    func testLinearMatchesNaive() {
        let x = Tensor(shape: [2, 3, 4], values: (0 ..< 24).map { Float($0) * 0.1 - 1 })
        let w = Tensor(shape: [5, 4], values: (0 ..< 20).map { sin(Float($0)) })
        let b = Tensor(shape: [5], values: [1, 2, 3, 4, 5])
        let y = MatMul.linear(x, weight: w, bias: b)
        XCTAssertEqual(y.shape, [2, 3, 5])
        for r in 0 ..< 6 {
            for o in 0 ..< 5 {
                var s = b.pointer[o]
                for i in 0 ..< 4 { s += x.pointer[r * 4 + i] * w.pointer[o * 4 + i] }
                XCTAssertEqual(y.pointer[r * 5 + o], s, accuracy: 1e-5)
            }
        }
    }
}
