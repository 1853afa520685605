import AnySizeKernels
import XCTest

/// Dilated "same" convolutions (dilation d, padding p * d): im2col with dilated taps and the sub-grid method
/// (d x d interleaved sub-grids through the layer's own algorithm) against the direct Double convolution.
final class DilatedConvolutionTests: XCTestCase {
    func layer(_ rng: inout TestRandom, inChannels: Int, outChannels: Int, kernel: Int = 3, stride: Int = 1,
               bias: Bool = true, algorithm: ConvolutionAlgorithm = AutomaticConvolution()) -> (Conv2D, Tensor, Tensor?) {
        let w = rng.tensor([outChannels, inChannels, kernel, kernel], -0.3, 0.3)
        let b = bias ? rng.tensor([outChannels]) : nil
        return (Conv2D(weight: w, bias: b, stride: stride, padding: kernel / 2, algorithm: algorithm), w, b)
    }

    func testIm2ColDilatedTaps() {
        var rng = TestRandom(seed: 301)
        for (input, d, stride) in [([2, 5, 25, 25], 2, 1), ([1, 3, 13, 7], 3, 1), ([1, 4, 9, 11], 2, 2),
                                   ([1, 2, 3, 4], 5, 1)] {
            let (conv, w, b) = layer(&rng, inChannels: input[1], outChannels: 6, stride: stride)
            let x = rng.tensor(input)
            let y = Im2ColConvolution().forward(x, layer: conv, dilation: d)
            let reference = naiveConvolution(x, w, b, stride: stride, padding: d, dilation: d)
            XCTAssertEqual(y.shape, reference.shape)
            let size = conv.outputSize(height: input[2], width: input[3], dilation: d)
            XCTAssertEqual([size.height, size.width], Array(reference.shape[2...]))
            assertClose(y, reference.values, tolerance: 1e-5, "im2col \(input) d\(d) s\(stride)")
        }
    }

    /// Sizes divisible and not divisible by d, d larger than the image, each algorithm the layer may run
    /// (Winograd needs >= 48 input channels by default, so the large cases force it), and groups of sub-grids.
    func testSubGridsMatchDirectDilatedConvolution() {
        var rng = TestRandom(seed: 302)
        let cases: [(input: [Int], d: Int, algorithm: ConvolutionAlgorithm, scratch: Int)] = [
            ([2, 5, 24, 24], 2, AutomaticConvolution(), 64 << 20),
            ([1, 6, 25, 19], 2, Im2ColConvolution(), 64 << 20),
            ([2, 4, 13, 7], 3, AutomaticConvolution(), 64 << 20),
            ([1, 3, 3, 4], 5, AutomaticConvolution(), 64 << 20),
            ([2, 8, 26, 23], 3, WinogradConvolution(), 64 << 20),
            ([1, 8, 29, 30], 2, BlockedWinogradConvolution(), 64 << 20),
            ([1, 5, 33, 31], 4, AutomaticConvolution(), 4096),   // one sub-grid per group
            ([2, 5, 17, 18], 3, AutomaticConvolution(), 20_000), // a few sub-grids per group
        ]
        for c in cases {
            let (conv, w, b) = layer(&rng, inChannels: c.input[1], outChannels: 7, algorithm: c.algorithm)
            let x = rng.tensor(c.input)
            let y = DilatedConvolution(maxScratchBytes: c.scratch).forward(x, layer: conv, dilation: c.d)
            let reference = naiveConvolution(x, w, b, stride: 1, padding: c.d, dilation: c.d)
            XCTAssertEqual(y.shape, reference.shape)
            // Winograd's transforms round more than im2col (WinogradConvolutionTests: a few 1e-6).
            assertClose(y, reference.values, tolerance: 2e-5,
                        "sub-grids \(c.input) d\(c.d) \(type(of: c.algorithm)) scratch \(c.scratch)")
        }
    }

    /// Dilation 1 is the layer's own call; a 1x1 layer (padding 0) is unchanged by any dilation.
    func testDilationOneAndPointwise() {
        var rng = TestRandom(seed: 303)
        let (conv, _, _) = layer(&rng, inChannels: 4, outChannels: 3)
        let x = rng.tensor([2, 4, 9, 10])
        assertClose(DilatedConvolution().forward(x, layer: conv, dilation: 1), conv(x).doubles, tolerance: 0, "d1")
        let (pointwise, _, _) = layer(&rng, inChannels: 4, outChannels: 3, kernel: 1)
        assertClose(DilatedConvolution().forward(x, layer: pointwise, dilation: 3), pointwise(x).doubles,
                    tolerance: 1e-6, "1x1 d3")
    }

    /// At SD's channel counts the sub-grids run Winograd and stay within Winograd's error of im2col.
    func testSubGridsAtUNetWidthsUseWinograd() {
        var rng = TestRandom(seed: 304)
        let (conv, _, _) = layer(&rng, inChannels: 64, outChannels: 64)
        let x = rng.tensor([2, 64, 48, 40])
        let gridShape = [2 * 4, 64, 24, 20]
        XCTAssertTrue(AutomaticConvolution().usesWinograd(layer: conv, inputShape: gridShape))
        let y = DilatedConvolution().forward(x, layer: conv, dilation: 2)
        let reference = Im2ColConvolution().forward(x, layer: conv, dilation: 2)
        assertClose(y, reference.doubles, tolerance: 2e-5, "sub-grids vs im2col [2, 64, 48, 40] d2")
    }
}
