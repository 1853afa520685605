import AnySizeKernels
import XCTest

final class ConvolutionTests: XCTestCase {
    /// The layer keeps its weight taps-major: weight[o, ky, kx, i] = PyTorch's weight[o, i, ky, kx].
    func testWeightIsKeptTapsMajor() {
        var rng = TestRandom(seed: 61)
        for (o, i, k) in [(3, 5, 3), (2, 7, 1), (4, 1, 3), (2, 3, 4)] {
            let w = rng.tensor([o, i, k, k])
            let conv = Conv2D(weight: w, bias: nil, padding: k / 2)
            XCTAssertEqual(conv.weight.shape, [o, k, k, i])
            let original = w.scalars, kept = conv.weight.scalars
            for c in 0 ..< o {
                for j in 0 ..< i {
                    for t in 0 ..< k * k {
                        XCTAssertEqual(kept[(c * k * k + t) * i + j], original[(c * i + j) * k * k + t],
                                       "o \(c) i \(j) tap \(t) of [\(o), \(i), \(k), \(k)]")
                    }
                }
            }
        }
    }

    func check(input: [Int], outChannels: Int, kernel: Int, stride: Int, padding: Int, bias: Bool,
               seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        var rng = TestRandom(seed: seed)
        let x = rng.tensor(input)
        let w = rng.tensor([outChannels, input[1], kernel, kernel], -0.3, 0.3)
        let b = bias ? rng.tensor([outChannels]) : nil
        let conv = Conv2D(weight: w, bias: b, stride: stride, padding: padding)
        let y = conv(x)
        let reference = naiveConvolution(x, w, b, stride: stride, padding: padding)
        XCTAssertEqual(y.shape, reference.shape, file: file, line: line)
        let size = conv.outputSize(height: input[2], width: input[3])
        XCTAssertEqual([size.height, size.width], Array(reference.shape[2...]), file: file, line: line)
        assertClose(y, reference.values, tolerance: 1e-4,
                    "conv \(input) k\(kernel) s\(stride) p\(padding) -> \(y.shape)\(bias ? " +bias" : "")",
                    file: file, line: line)
    }

    func test3x3Stride1Pad1() {
        check(input: [2, 5, 25, 25], outChannels: 7, kernel: 3, stride: 1, padding: 1, bias: true, seed: 1)
        check(input: [1, 3, 13, 7], outChannels: 6, kernel: 3, stride: 1, padding: 1, bias: false, seed: 2)
    }

    func test3x3Stride2Pad1OddSizes() {
        check(input: [2, 6, 25, 25], outChannels: 5, kernel: 3, stride: 2, padding: 1, bias: true, seed: 3)
        check(input: [2, 3, 13, 7], outChannels: 9, kernel: 3, stride: 2, padding: 1, bias: false, seed: 4)
        check(input: [1, 2, 1, 1], outChannels: 3, kernel: 3, stride: 2, padding: 1, bias: true, seed: 5)
    }

    func test1x1() {
        check(input: [2, 10, 13, 7], outChannels: 3, kernel: 1, stride: 1, padding: 0, bias: true, seed: 6)
        check(input: [3, 7, 5, 9], outChannels: 11, kernel: 1, stride: 1, padding: 0, bias: false, seed: 7)
        // Enough pixels to be cut into pixel slices, and enough channels for channel slices.
        check(input: [1, 6, 23, 29], outChannels: 5, kernel: 1, stride: 1, padding: 0, bias: true, seed: 13)
        check(input: [2, 9, 3, 5], outChannels: 70, kernel: 1, stride: 1, padding: 0, bias: true, seed: 14)
        // 1x1 outside the direct path: strided and padded.
        check(input: [1, 4, 9, 6], outChannels: 2, kernel: 1, stride: 2, padding: 1, bias: true, seed: 8)
    }

    func testOtherGeometries() {
        check(input: [2, 3, 11, 10], outChannels: 4, kernel: 3, stride: 1, padding: 0, bias: true, seed: 9)
        check(input: [1, 2, 12, 9], outChannels: 3, kernel: 5, stride: 2, padding: 1, bias: true, seed: 10)
        check(input: [1, 2, 4, 3], outChannels: 3, kernel: 3, stride: 1, padding: 2, bias: false, seed: 11)
    }

    /// Packing a few output rows at a time gives the numbers of one band for the whole image
    /// (to float rounding: OpenBLAS picks a different kernel for small products).
    func testRowBandsMatchSingleBand() {
        var rng = TestRandom(seed: 12)
        let x = rng.tensor([2, 9, 31, 23])
        let w = rng.tensor([13, 9, 3, 3], -0.3, 0.3)
        let b = rng.tensor([13])
        for stride in [1, 2] {
            let whole = Conv2D(weight: w, bias: b, stride: stride, padding: 1)(x)
            let depth = 9 * 3 * 3, outW = whole.shape[3]
            for rows in [1, 3] {
                let banded = Conv2D(weight: w, bias: b, stride: stride, padding: 1,
                                    algorithm: Im2ColConvolution(
                                        maxColumnBytes: rows * depth * outW * 4 * Parallel.threadCount))(x)
                XCTAssertEqual(banded.shape, whole.shape)
                assertClose(banded, whole.doubles, tolerance: 1e-5,
                            "conv stride \(stride) in bands of \(rows) rows vs one band")
            }
        }
    }
}
