import AnySizeKernels
import CAnySizeBF16
import XCTest

/// Winograd F(2x2, 3x3) with bfloat16 products (`BFloat16WinogradConvolution`) against a float64 convolution.
///
/// Bound: with U' = U (1 + δ), V' = V (1 + ε) after bfloat16 rounding (|δ|, |ε| <= u = 2^-8, plus float32 slack
/// for the transforms, the sums over I input channels and the output transform), each output pixel p obeys
///     |y - y_exact| <= (2u + u^2 + (I + 12) e) * sum_ξ |A A^T|[p, ξ] sum_i |G||g_i||G^T|[ξ] |B^T||d_i||B|[ξ] + 2 e |bias|
/// (e = 2^-24): the magnitudes use the transforms with every coefficient and value made positive, so they bound
/// |U| |V| and every float32 partial sum. A wrong position, sign or tile shows as an error of the size of y itself.
final class BFloat16WinogradTests: XCTestCase {
    let u = BFloat16Tests.u, e = BFloat16Tests.e
    var paths: [BFloat16Path] { BFloat16.hardwareSupport ? [.avx512bf16, .widened] : [.widened] }

    static let bt: [[Double]] = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    static let g: [[Double]] = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
    static let at: [[Double]] = [[1, 1, 1, 0], [0, 1, -1, -1]]

    /// M (rows x n) = L x R (n x ...), float64.
    static func product(_ l: [[Double]], _ r: [[Double]]) -> [[Double]] {
        l.map { row in (0 ..< r[0].count).map { j in zip(row, r).reduce(0) { $0 + $1.0 * $1.1[j] } } }
    }

    static func transposed(_ m: [[Double]]) -> [[Double]] { (0 ..< m[0].count).map { j in m.map { $0[j] } } }

    /// L X L'^T with every entry of L, X and L' made positive when `absolute`.
    static func sandwich(_ l: [[Double]], _ x: [[Double]], absolute: Bool) -> [[Double]] {
        let f: (Double) -> Double = absolute ? { abs($0) } : { $0 }
        let la = l.map { $0.map(f) }, xa = x.map { $0.map(f) }
        return product(product(la, xa), transposed(la))
    }

    /// The per-pixel error magnitude of the bound above, [B, O, H, W] flattened.
    func magnitudes(_ x: Tensor, _ w: Tensor) -> [Double] {
        let batch = x.shape[0], inC = x.shape[1], h = x.shape[2], wd = x.shape[3], outC = w.shape[0]
        let xs = x.scalars, ws = w.scalars
        // |G||g||G^T| per (o, i), |B^T||d||B| per (b, i, tile).
        let absU: [[[Double]]] = (0 ..< outC * inC).map { oi in
            let kernel = (0 ..< 3).map { ky in (0 ..< 3).map { kx in Double(ws[oi * 9 + ky * 3 + kx]) } }
            return Self.sandwich(Self.g, kernel, absolute: true)
        }
        let tileRows = (h + 1) / 2, tileColumns = (wd + 1) / 2
        var out = [Double](repeating: 0, count: batch * outC * h * wd)
        let aat = (0 ..< 2).map { py in (0 ..< 2).map { px in
            (0 ..< 4).map { yy in (0 ..< 4).map { xx in abs(Self.at[py][yy] * Self.at[px][xx]) } } } }
        for b in 0 ..< batch {
            for ty in 0 ..< tileRows {
                for tx in 0 ..< tileColumns {
                    let absV: [[[Double]]] = (0 ..< inC).map { i in
                        let patch = (0 ..< 4).map { r in (0 ..< 4).map { c -> Double in
                            let y = 2 * ty - 1 + r, xx = 2 * tx - 1 + c
                            return y >= 0 && y < h && xx >= 0 && xx < wd ? Double(xs[((b * inC + i) * h + y) * wd + xx]) : 0
                        } }
                        return Self.sandwich(Self.bt, patch, absolute: true)
                    }
                    for o in 0 ..< outC {
                        var m = [[Double]](repeating: [Double](repeating: 0, count: 4), count: 4)
                        for i in 0 ..< inC {
                            for yy in 0 ..< 4 { for xx in 0 ..< 4 { m[yy][xx] += absU[o * inC + i][yy][xx] * absV[i][yy][xx] } }
                        }
                        for py in 0 ..< 2 where 2 * ty + py < h {
                            for px in 0 ..< 2 where 2 * tx + px < wd {
                                var s = 0.0
                                for yy in 0 ..< 4 { for xx in 0 ..< 4 { s += aat[py][px][yy][xx] * m[yy][xx] } }
                                out[((b * outC + o) * h + 2 * ty + py) * wd + 2 * tx + px] = s
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    func testConvolutionAgainstFloat64() {
        var rng = TestRandom(seed: 31)
        // (batch, in, out, height, width): odd sizes (a half tile at the edge), odd channel counts, rows of tiles
        // that are not whole 16-lane groups, and a block of tiles spanning several rows and images.
        let cases = [(2, 5, 7, 9, 11), (1, 48, 9, 12, 40), (2, 33, 16, 7, 5), (1, 64, 24, 34, 34), (3, 3, 2, 1, 1)]
        for (batch, inC, outC, height, width) in cases {
            let x = rng.tensor([batch, inC, height, width]), w = rng.tensor([outC, inC, 3, 3]), b = rng.tensor([outC])
            let layer = Conv2D(bfloat16Weight: w, bias: b, padding: 1)
            let rounded = Tensor(shape: w.shape, values: w.scalars.map(BFloat16.rounded))
            let reference = naiveConvolution(x, rounded, b, stride: 1, padding: 1)
            let magnitude = magnitudes(x, rounded)
            let pixels = height * width
            let label = "b\(batch) \(inC)->\(outC) \(height)x\(width)"
            for path in paths {
                for tilesPerBlock in [16, 96] {
                    let y = BFloat16WinogradConvolution(tilesPerBlock: tilesPerBlock).forward(x, layer: layer, path: path)
                    XCTAssertEqual(y.shape, reference.shape, label)
                    var worst = 0.0
                    for p in 0 ..< y.count {
                        let bias = Double(b.pointer[(p / pixels) % outC])
                        let bound = (2 * u + u * u + Double(inC + 12) * e) * magnitude[p] + 2 * e * abs(bias) + 1e-30
                        let error = abs(Double(y.pointer[p]) - reference.values[p])
                        worst = max(worst, error.isNaN ? .infinity : error / bound)
                    }
                    XCTAssertLessThanOrEqual(worst, 1, "\(path.rawValue) blocks of \(tilesPerBlock), \(label)")
                }
            }
        }
    }

    /// Positions where two equally long arrays differ.
    func mismatches<T: Equatable>(_ a: [T], _ b: [T]) -> Int {
        XCTAssertEqual(a.count, b.count)
        return zip(a, b).filter { $0 != $1 }.count
    }

    /// The AVX-512 transforms give exactly the scalar ones' values (bit for bit), for tile ranges that start and
    /// end inside tile rows and cross images.
    func testTransformsMatchScalar() throws {
        try XCTSkipUnless(BFloat16.hardwareSupport, "no AVX512-BF16 on this CPU: only the scalar transforms run")
        var rng = TestRandom(seed: 32)
        for (batch, channels, height, width) in [(2, 5, 9, 11), (1, 34, 40, 3), (3, 2, 6, 37)] {
            let x = rng.tensor([batch, channels, height, width])
            let tiles = batch * ((height + 1) / 2) * ((width + 1) / 2)
            for (first, count) in [(0, tiles), (3, min(21, tiles - 3)), (tiles - 1, 1)] {
                let plane = Int(anysize_bf16_panel_elements(channels, count))
                var fast = [UInt16](repeating: 0xFFFF, count: 16 * plane), slow = fast
                anysize_bf16_winograd2_input(x.pointer, channels, height, width, first, count, &fast, plane)
                anysize_bf16_winograd2_input_scalar(x.pointer, channels, height, width, first, count, &slow, plane)
                XCTAssertEqual(mismatches(fast, slow), 0, "input \(x.shape) tiles \(first) + \(count)")

                let rows = 3, ld = (count + 15) / 16 * 16 + 5
                let m = rng.tensor([16, rows, ld]), bias = rng.tensor([rows])
                let outFast = Tensor(zeros: [batch, rows, height, width]), outSlow = Tensor(zeros: [batch, rows, height, width])
                anysize_winograd2_output(m.pointer, ld, rows * ld, rows, bias.pointer, outFast.pointer, rows * height * width,
                                         height, width, first, count)
                anysize_winograd2_output_scalar(m.pointer, ld, rows * ld, rows, bias.pointer, outSlow.pointer,
                                                rows * height * width, height, width, first, count)
                XCTAssertEqual(mismatches(outFast.scalars, outSlow.scalars), 0, "output \(x.shape) tiles \(first) + \(count)")
                // Only the tiles' pixels were written.
                XCTAssertNotEqual(outSlow.scalars.filter { $0 != 0 }.count, 0)
            }
        }
        for (rows, channels) in [(3, 5), (9, 40), (1, 17)] {
            let w = BFloat16Rows(rng.tensor([rows, 9 * channels]).pointer, rows: rows, columns: 9 * channels,
                                 sourceStride: 9 * channels)
            let lda = (channels + 1) / 2 * 2 + 2, plane = rows * lda
            var fast = [UInt16](repeating: 0xFFFF, count: 16 * plane), slow = fast
            anysize_bf16_winograd2_weights(w.storage.pointer, w.rowStride, channels, rows, &fast, lda, plane)
            anysize_bf16_winograd2_weights_scalar(w.storage.pointer, w.rowStride, channels, rows, &slow, lda, plane)
            XCTAssertEqual(mismatches(fast, slow), 0, "weights \(rows) x \(channels)")
        }
    }

    /// `BFloat16Convolution` hands large 3x3 grids to the Winograd algorithm and keeps im2col below the threshold.
    func testDispatch() {
        var rng = TestRandom(seed: 33)
        let x = rng.tensor([1, 48, 10, 10]), w = rng.tensor([8, 48, 3, 3]), b = rng.tensor([8])
        let layer = Conv2D(bfloat16Weight: w, bias: b, padding: 1)
        let winograd = BFloat16WinogradConvolution().forward(x, layer: layer)
        let im2col = BFloat16Convolution(winogradTiles: nil).forward(x, layer: layer)
        XCTAssertEqual(BFloat16Convolution(winogradTiles: 25).forward(x, layer: layer).scalars, winograd.scalars)
        XCTAssertEqual(BFloat16Convolution(winogradTiles: 26).forward(x, layer: layer).scalars, im2col.scalars)
        XCTAssertNotEqual(winograd.scalars, im2col.scalars)  // (different roundings: the dispatch is visible)
    }
}
