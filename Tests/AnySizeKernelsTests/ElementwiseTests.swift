import AnySizeKernels
import XCTest

final class ElementwiseTests: XCTestCase {
    func testArithmetic() {
        var rng = TestRandom(seed: 51)
        let a = rng.tensor([2, 5, 13, 7]), b = rng.tensor([2, 5, 13, 7])
        let av = a.doubles, bv = b.doubles
        let sum = zip(av, bv).map { Double(Float($0) + Float($1)) }
        assertClose(Elementwise.add(a, b), sum, tolerance: 0, "add")
        Elementwise.addInPlace(a, b)
        assertClose(a, sum, tolerance: 0, "addInPlace")
        Elementwise.scaleInPlace(b, 0.18215)
        assertClose(b, bv.map { Double(Float($0) * 0.18215) }, tolerance: 0, "scaleInPlace")
    }

    func testAddChannelBias() {
        var rng = TestRandom(seed: 52)
        let x = rng.tensor([2, 3, 5, 7]), v = rng.tensor([2, 3])
        let xv = x.doubles
        let expected = (0 ..< x.count).map { Double(Float(xv[$0]) + v.pointer[$0 / 35]) }
        Elementwise.addChannelBiasInPlace(x, v)
        assertClose(x, expected, tolerance: 0, "addChannelBiasInPlace")
    }

    func testConcat() {
        var rng = TestRandom(seed: 53)
        let a = rng.tensor([2, 3, 5, 7]), b = rng.tensor([2, 6, 5, 7])
        let c = Elementwise.concatChannels(a, b)
        XCTAssertEqual(c.shape, [2, 9, 5, 7])
        var expected = [Double]()
        for n in 0 ..< 2 {
            expected += a.doubles[n * 105 ..< (n + 1) * 105]
            expected += b.doubles[n * 210 ..< (n + 1) * 210]
        }
        assertClose(c, expected, tolerance: 0, "concatChannels")

        let parts = [rng.tensor([1, 4, 3]), rng.tensor([3, 4, 3]), rng.tensor([2, 4, 3])]
        let joined = Elementwise.concatBatch(parts)
        XCTAssertEqual(joined.shape, [6, 4, 3])
        assertClose(joined, parts.flatMap(\.doubles), tolerance: 0, "concatBatch")
    }

    func testUpsampleNearest() {
        var rng = TestRandom(seed: 54)
        let cases: [(from: (Int, Int), to: (Int, Int))] = [
            ((13, 13), (25, 25)), ((13, 7), (26, 14)), ((7, 13), (16, 9)), ((25, 25), (13, 13)), ((5, 6), (5, 6)),
        ]
        for (from, to) in cases {
            let x = rng.tensor([2, 3, from.0, from.1])
            let y = Elementwise.upsampleNearest(x, height: to.0, width: to.1)
            XCTAssertEqual(y.shape, [2, 3, to.0, to.1])
            var expected = [Double]()
            for plane in 0 ..< 6 {
                for oy in 0 ..< to.0 {
                    for ox in 0 ..< to.1 {
                        // src = floor(dst * in / out), in exact integer arithmetic.
                        let sy = oy * from.0 / to.0, sx = ox * from.1 / to.1
                        expected.append(Double(x.pointer[(plane * from.0 + sy) * from.1 + sx]))
                    }
                }
            }
            assertClose(y, expected, tolerance: 0, "upsampleNearest \(from) -> \(to)")
        }
    }

    func testTokensImageRoundTrip() {
        var rng = TestRandom(seed: 55)
        for (c, h, w) in [(5, 13, 7), (37, 25, 25), (3, 1, 1)] {
            let x = rng.tensor([2, c, h, w])
            let tokens = Elementwise.imageToTokens(x)
            XCTAssertEqual(tokens.shape, [2, h * w, c])
            var expected = [Double](repeating: 0, count: x.count)
            for n in 0 ..< 2 {
                for ch in 0 ..< c {
                    for p in 0 ..< h * w {
                        expected[(n * h * w + p) * c + ch] = Double(x.pointer[(n * c + ch) * h * w + p])
                    }
                }
            }
            assertClose(tokens, expected, tolerance: 0, "imageToTokens [2, \(c), \(h), \(w)]")
            let back = Elementwise.tokensToImage(tokens, height: h, width: w)
            XCTAssertEqual(back.shape, x.shape)
            assertClose(back, x.doubles, tolerance: 0, "tokensToImage roundtrip [2, \(c), \(h), \(w)]")
        }
    }
}

final class PaddingTests: XCTestCase {
    func testPadBottomRightMatchesNaive() {
        let x = Tensor(shape: [2, 3, 5, 4], values: (0 ..< 120).map { Float($0) * 0.5 - 7 })
        let y = Elementwise.padBottomRight(x)
        XCTAssertEqual(y.shape, [2, 3, 6, 5])
        for p in 0 ..< 6 {
            for yy in 0 ..< 6 {
                for xx in 0 ..< 5 {
                    let expected: Float = (yy < 5 && xx < 4) ? x.pointer[(p * 5 + yy) * 4 + xx] : 0
                    XCTAssertEqual(y.pointer[(p * 6 + yy) * 5 + xx], expected)
                }
            }
        }
    }
}
