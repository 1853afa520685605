import AnySizeKernels
import XCTest

final class WinogradConvolutionTests: XCTestCase {
    /// out = bias + 3x3 stride-1 padding-1 convolution, accumulated in Double.
    func directConvolution(_ x: Tensor, _ w: Tensor, _ bias: Tensor?) -> [Double] {
        naiveConvolution(x, w, bias, stride: 1, padding: 1).values
    }

    /// Max-abs error of Winograd against the direct convolution, relative to max|reference|; asserts it is at
    /// most `bound` and returns it.
    @discardableResult
    func check(input: [Int], outChannels: Int, bias: Bool, seed: UInt64,
               algorithm: ConvolutionAlgorithm = WinogradConvolution(), bound: Double = 1e-5,
               file: StaticString = #filePath, line: UInt = #line) -> Double {
        var rng = TestRandom(seed: seed)
        let x = rng.tensor(input)
        let w = rng.tensor([outChannels, input[1], 3, 3], -0.3, 0.3)
        let b = bias ? rng.tensor([outChannels]) : nil
        let conv = Conv2D(weight: w, bias: b, stride: 1, padding: 1, algorithm: algorithm)
        let y = conv(x)
        XCTAssertEqual(y.shape, [input[0], outChannels, input[2], input[3]], file: file, line: line)
        let reference = directConvolution(x, w, b)
        guard y.count == reference.count else { return .infinity }
        let (maxError, maxRef) = maxDifference(y, reference)
        let relative = maxError / max(maxRef, .leastNormalMagnitude)
        print("\(type(of: algorithm)) \(input) -> \(outChannels)\(bias ? " +bias" : ""): max-abs error \(maxError), "
              + "max|ref| \(maxRef), relative \(relative)")
        XCTAssertLessThanOrEqual(relative, bound, "Winograd \(input) -> \(outChannels) exceeds its error bound",
                                 file: file, line: line)
        return relative
    }

    func testOddSizesAgainstDirectConvolution() {
        check(input: [2, 5, 13, 7], outChannels: 7, bias: true, seed: 21)
        check(input: [1, 3, 6, 10], outChannels: 11, bias: false, seed: 22)
        // Wide enough rows for the 16-column vector paths, borders on both sides.
        check(input: [2, 9, 23, 37], outChannels: 13, bias: true, seed: 23)
        check(input: [3, 17, 9, 21], outChannels: 5, bias: true, seed: 24)
    }

    func testTinyImages() {
        check(input: [3, 7, 1, 1], outChannels: 5, bias: true, seed: 25)
        check(input: [2, 9, 2, 2], outChannels: 3, bias: true, seed: 26)
        check(input: [2, 4, 1, 6], outChannels: 6, bias: false, seed: 27)
        check(input: [1, 6, 5, 1], outChannels: 2, bias: true, seed: 28)
    }

    /// Small scratch budgets force output-channel chunks, blocks of a few tiles that cross tile rows and images,
    /// and channel splits; every blocking must stay within the bound (rounding differs between blockings, as
    /// BLAS picks other kernels for other matrix shapes).
    func testBlockingKeepsAccuracy() {
        for (bytes, tiles) in [(1 << 10, 3), (64 << 10, 5), (1 << 20, 7), (64 << 20, 1), (64 << 20, 128)] {
            check(input: [2, 19, 17, 27], outChannels: 23, bias: true, seed: 29,
                  algorithm: WinogradConvolution(maxScratchBytes: bytes, tilesPerBlock: tiles))
        }
    }

    /// Channel counts of the models' layers (one output row of tiles is enough to cover every code path).
    func testModelLikeChannels() {
        check(input: [2, 64, 9, 18], outChannels: 48, bias: true, seed: 30)
    }

    /// The blocked algorithm on the same odd and tiny shapes: tile counts below, at and above one 16- and
    /// 32-column micro-kernel call, output channels that are not a multiple of the kernel's 8 rows.
    func testBlockedOddAndTinySizes() {
        let blocked = BlockedWinogradConvolution()
        check(input: [2, 5, 13, 7], outChannels: 7, bias: true, seed: 41, algorithm: blocked)
        check(input: [1, 3, 6, 10], outChannels: 11, bias: false, seed: 42, algorithm: blocked)
        check(input: [2, 9, 23, 37], outChannels: 13, bias: true, seed: 43, algorithm: blocked)    // 120 tiles
        check(input: [3, 17, 9, 21], outChannels: 5, bias: true, seed: 44, algorithm: blocked)
        check(input: [3, 7, 1, 1], outChannels: 5, bias: true, seed: 45, algorithm: blocked)
        check(input: [2, 9, 2, 2], outChannels: 3, bias: true, seed: 46, algorithm: blocked)
        check(input: [1, 6, 5, 1], outChannels: 2, bias: true, seed: 47, algorithm: blocked)
        check(input: [2, 8, 16, 16], outChannels: 16, bias: true, seed: 48, algorithm: blocked)     // 32 tiles
        check(input: [1, 8, 20, 16], outChannels: 9, bias: false, seed: 49, algorithm: blocked)     // 20 tiles
    }

    /// Blocks smaller than the layer: several input blocks accumulate into M (including a short last block),
    /// several output blocks per worker, and a last output block with padded rows.
    func testBlockedBlockingKeepsAccuracy() {
        for (outBlock, inBlock) in [(8, 1), (8, 5), (16, 7), (24, 19), (32, 128)] {
            check(input: [2, 19, 17, 27], outChannels: 23, bias: true, seed: 50,
                  algorithm: BlockedWinogradConvolution(outBlock: outBlock, inBlock: inBlock))
        }
        check(input: [2, 64, 9, 18], outChannels: 48, bias: true, seed: 51, algorithm: BlockedWinogradConvolution())
    }

    func testAutomaticChoice() {
        var rng = TestRandom(seed: 31)
        let auto = AutomaticConvolution()
        let conv3 = Conv2D(weight: rng.tensor([8, 64, 3, 3]), bias: nil, stride: 1, padding: 1)
        let strided = Conv2D(weight: rng.tensor([8, 64, 3, 3]), bias: nil, stride: 2, padding: 1)
        let pointwise = Conv2D(weight: rng.tensor([8, 64, 1, 1]), bias: nil)
        let fewChannels = Conv2D(weight: rng.tensor([8, 4, 3, 3]), bias: nil, stride: 1, padding: 1)
        XCTAssertTrue(auto.algorithm(layer: conv3, inputShape: [2, 64, 64, 64]) is WinogradConvolution)
        XCTAssertTrue(auto.algorithm(layer: conv3, inputShape: [1, 64, 64, 64]) is WinogradConvolution)  // 256 tiles
        // Small grids: the blocked algorithm where register tiles pay off (AVX-512 builds), im2col elsewhere.
        let small = MicroKernel.registerTilesPayOff ? "BlockedWinogradConvolution" : "Im2ColConvolution"
        XCTAssertEqual("\(type(of: auto.algorithm(layer: conv3, inputShape: [2, 64, 32, 32])))", small)
        XCTAssertEqual("\(type(of: auto.algorithm(layer: conv3, inputShape: [1, 64, 16, 16])))", small)
        XCTAssertFalse(auto.usesWinograd(layer: conv3, inputShape: [2, 64, 8, 8]))      // 8 tiles
        XCTAssertFalse(auto.usesWinograd(layer: strided, inputShape: [2, 64, 64, 64]))
        XCTAssertFalse(auto.usesWinograd(layer: pointwise, inputShape: [2, 64, 64, 64]))
        XCTAssertFalse(auto.usesWinograd(layer: fewChannels, inputShape: [2, 4, 64, 64]))
        // Every path of the default layer algorithm agrees with the direct convolution.
        let w = rng.tensor([6, 64, 3, 3], -0.1, 0.1)
        let layer = Conv2D(weight: w, bias: nil, padding: 1)
        for (shape, expected) in [([1, 64, 68, 64], "WinogradConvolution"), ([1, 64, 48, 48], small),
                                  ([1, 64, 8, 8], "Im2ColConvolution")] {
            let x = rng.tensor(shape)
            XCTAssertEqual("\(type(of: auto.algorithm(layer: layer, inputShape: shape)))", expected)
            assertClose(layer(x), directConvolution(x, w, nil), tolerance: 1e-5, "automatic (\(expected))")
        }
    }
}
