import AnySizeKernels
import Foundation
import XCTest

/// Linear layers, convolutions and attention in bfloat16 against float64 references, on both paths, with the
/// bounds of `BFloat16Tests` (bfloat16 rounding of both factors, float32 sums): per output
///     |y - y_exact| <= (2u + u^2 + (K + 3) e) * sum |x||w| + 2 e |bias|,   u = 2^-8, e = 2^-24,
/// K the reduction length (inputs for a linear layer, k*k*I taps for a convolution).
final class BFloat16LayerTests: XCTestCase {
    let u = BFloat16Tests.u, e = BFloat16Tests.e
    var paths: [BFloat16Path] { BFloat16.hardwareSupport ? [.avx512bf16, .widened] : [.widened] }

    override func tearDown() { BFloat16.override = nil }

    /// Worst |actual - reference| / bound over all outputs (<= 1 passes).
    func worstRatio(_ actual: Tensor, _ reference: [Double], magnitude: [Double], bias: [Double], k: Int) -> Double {
        var worst = 0.0
        for i in 0 ..< actual.count {
            let bound = (2 * u + u * u + Double(k + 3) * e) * magnitude[i] + 2 * e * abs(bias[i]) + 1e-30
            let error = abs(Double(actual.pointer[i]) - reference[i])
            worst = max(worst, error.isNaN ? .infinity : error / bound)
        }
        return worst
    }

    func testLinear() {
        var rng = TestRandom(seed: 21)
        for (rows, inputs, outputs) in [(1, 3, 5), (37, 77, 50), (300, 320, 64), (2, 1280, 20)] {
            let x = rng.tensor([rows, inputs]), w = rng.tensor([outputs, inputs]), b = rng.tensor([outputs])
            let packed = BFloat16Panels(w.pointer, k: inputs, n: outputs, kStride: 1, nStride: inputs)
            var reference = [Double](), magnitude = [Double](), bias = [Double]()
            for r in 0 ..< rows {
                for o in 0 ..< outputs {
                    var s = Double(b.pointer[o]), m = 0.0
                    for i in 0 ..< inputs {
                        let p = Double(x.pointer[r * inputs + i]) * Double(w.pointer[o * inputs + i])
                        s += p
                        m += abs(p)
                    }
                    reference.append(s)
                    magnitude.append(m)
                    bias.append(Double(b.pointer[o]))
                }
            }
            for path in paths {
                for withBias in [true, false] {
                    let y = MatMul.linear(x, weight: packed, bias: withBias ? b : nil, path: path)
                    XCTAssertEqual(y.shape, [rows, outputs])
                    let expected = withBias ? reference : zip(reference, bias).map { $0 - $1 }
                    let ratio = worstRatio(y, expected, magnitude: magnitude, bias: withBias ? bias : magnitude.map { _ in 0 },
                                           k: inputs)
                    XCTAssertLessThanOrEqual(ratio, 1, "\(path.rawValue) linear \(rows)x\(inputs)->\(outputs) bias \(withBias)")
                }
            }
        }
    }

    /// The feed-forward's fused first half (`gegluBFloat16`) gives exactly `Activation.geglu(linear(...))` rounded
    /// to bfloat16, and the linear layer on bfloat16 rows exactly `linear` on the same (already rounded) values,
    /// for row counts across several row blocks, with and without bias, on both paths.
    func testFusedGEGLUAndRowsInputMatchUnfused() {
        var rng = TestRandom(seed: 29)
        for (rows, inputs, hidden) in [(1, 8, 6), (37, 40, 48), (301, 64, 80)] {
            let x = rng.tensor([rows, inputs], -2, 2), w = rng.tensor([2 * hidden, inputs]), b = rng.tensor([2 * hidden])
            let w2 = rng.tensor([inputs, hidden]), b2 = rng.tensor([inputs])
            let first = BFloat16Panels(w.pointer, k: inputs, n: 2 * hidden, kStride: 1, nStride: inputs)
            let second = BFloat16Panels(w2.pointer, k: hidden, n: inputs, kStride: 1, nStride: hidden)
            for path in paths {
                for withBias in [true, false] {
                    let label = "\(path.rawValue) \(rows)x\(inputs)->\(hidden) bias \(withBias)"
                    let fused = MatMul.gegluBFloat16(x, weight: first, bias: withBias ? b : nil, path: path)
                    XCTAssertEqual([fused.rows, fused.columns], [rows, hidden], label)
                    let unfused = Activation.geglu(MatMul.linear(x, weight: first, bias: withBias ? b : nil, path: path))
                    let rounded = unfused.scalars.map(BFloat16.rounded)
                    XCTAssertEqual(fused.widened().scalars, rounded, "geglu \(label)")
                    XCTAssertNotEqual(rounded.filter { $0 != 0 }.count, 0, label)

                    let y = MatMul.linear(fused, weight: second, bias: withBias ? b2 : nil, path: path)
                    let expected = MatMul.linear(Tensor(shape: [rows, hidden], values: rounded), weight: second,
                                                 bias: withBias ? b2 : nil, path: path)
                    XCTAssertEqual(y.shape, [rows, inputs], label)
                    XCTAssertEqual(y.scalars, expected.scalars, "linear on bfloat16 rows \(label)")
                }
            }
        }
    }

    func testConvolution() {
        var rng = TestRandom(seed: 22)
        // (batch, in, out, size, kernel, stride, padding, dilation): odd depths (5 * 9), strides, 1x1, dilation.
        let cases = [(2, 5, 7, 9, 3, 1, 1, 1), (1, 16, 20, 11, 3, 2, 1, 1), (2, 24, 33, 6, 1, 1, 0, 1),
                     (1, 8, 9, 13, 3, 1, 1, 2), (1, 3, 4, 5, 3, 1, 0, 1), (1, 48, 8, 12, 3, 1, 1, 1)]
        for (batch, inC, outC, size, k, stride, padding, dilation) in cases {
            let x = rng.tensor([batch, inC, size, size]), w = rng.tensor([outC, inC, k, k]), b = rng.tensor([outC])
            let layer = Conv2D(bfloat16Weight: w, bias: b, stride: stride, padding: padding)
            XCTAssertNotNil(layer.bfloat16Weight)
            // The layer keeps exactly the rounded weight (widened on request, taps-major).
            XCTAssertEqual(layer.weight.scalars, Conv2D.tapsMajor(w).scalars.map(BFloat16.rounded))
            let reference = naiveConvolution(x, w, b, stride: stride, padding: padding * dilation, dilation: dilation)
            let absX = Tensor(shape: x.shape, values: x.scalars.map(abs)), absW = Tensor(shape: w.shape, values: w.scalars.map(abs))
            let magnitude = naiveConvolution(absX, absW, nil, stride: stride, padding: padding * dilation, dilation: dilation).values
            let pixels = reference.values.count / (batch * outC)
            let bias = (0 ..< reference.values.count).map { Double(b.pointer[($0 / pixels) % outC]) }
            let label = "conv b\(batch) \(inC)->\(outC) \(size)px k\(k) s\(stride) p\(padding) d\(dilation)"
            for path in paths {
                let y = BFloat16Convolution(bandPixels: 23).forward(x, layer: layer, dilation: dilation, path: path)
                XCTAssertEqual(y.shape, reference.shape, label)
                XCTAssertLessThanOrEqual(worstRatio(y, reference.values, magnitude: magnitude, bias: bias, k: inC * k * k), 1,
                                         "\(path.rawValue) \(label)")
            }
            if dilation == 1 {
                XCTAssertLessThanOrEqual(worstRatio(layer(x), reference.values, magnitude: magnitude, bias: bias, k: inC * k * k),
                                         1, "layer call \(label)")
            } else if DilatedConvolution.supports(layer) {
                // The sub-grid method runs the layer's own (bfloat16) algorithm on each sub-grid.
                let y = DilatedConvolution().forward(x, layer: layer, dilation: dilation)
                XCTAssertLessThanOrEqual(worstRatio(y, reference.values, magnitude: magnitude, bias: bias, k: inC * k * k),
                                         1, "sub-grids \(label)")
            }
        }
    }

    /// Attention in bfloat16 against float64 softmax attention. With |l' - l| <= D for every logit (bound (1) on
    /// Q K^T times 1/sqrt(d)), each probability moves by a factor within [e^-2D, e^2D], so the probabilities
    /// move by at most e^2D - 1 in sum; rounding P and V to bfloat16 adds 2u + u^2 relative to sum p |v|:
    ///     |o' - o| <= max|v| (e^2D - 1 + 2u + u^2) + float32 slack 4 (keys + d + 10) e max|v|.
    func testAttention() {
        var rng = TestRandom(seed: 23)
        for (batch, heads, queries, keys, d) in [(2, 2, 50, 77, 40), (1, 3, 33, 300, 8), (1, 1, 7, 5, 80)] {
            let channels = heads * d
            let q = rng.tensor([batch, queries, channels], -2, 2), k = rng.tensor([batch, keys, channels], -2, 2)
            let v = rng.tensor([batch, keys, channels])
            let alpha = 1 / Double(d).squareRoot()
            var reference = [Double](repeating: 0, count: batch * queries * channels)
            var bound = [Double](repeating: 0, count: reference.count)
            for b in 0 ..< batch {
                for h in 0 ..< heads {
                    var maxV = 0.0
                    for j in 0 ..< keys { for c in 0 ..< d { maxV = max(maxV, abs(Double(v.pointer[(b * keys + j) * channels + h * d + c]))) } }
                    for i in 0 ..< queries {
                        var logits = [Double](repeating: 0, count: keys), worstD = 0.0
                        for j in 0 ..< keys {
                            var s = 0.0, m = 0.0
                            for c in 0 ..< d {
                                let p = Double(q.pointer[(b * queries + i) * channels + h * d + c])
                                    * Double(k.pointer[(b * keys + j) * channels + h * d + c])
                                s += p
                                m += abs(p)
                            }
                            logits[j] = alpha * s
                            worstD = max(worstD, alpha * (2 * u + u * u + Double(d + 3) * e) * m)
                        }
                        let top = logits.max() ?? 0
                        let weights = logits.map { Foundation.exp($0 - top) }, total = weights.reduce(0, +)
                        for c in 0 ..< d {
                            var o = 0.0
                            for j in 0 ..< keys { o += weights[j] * Double(v.pointer[(b * keys + j) * channels + h * d + c]) }
                            let index = (b * queries + i) * channels + h * d + c
                            reference[index] = o / total
                            bound[index] = maxV * (Foundation.exp(2 * worstD) - 1 + 2 * u + u * u + 4 * Double(keys + d + 10) * e)
                        }
                    }
                }
            }
            for path in paths {
                BFloat16.override = path
                // Whole blocks, and small chunks (the online softmax rescales across key blocks).
                for chunking in [AttentionChunking.unbounded, AttentionChunking(queryChunk: 16, keyChunk: 24)] {
                    let out = ScaledDotProductAttention.compute(query: q, key: k, value: v, heads: heads, chunking: chunking,
                                                                precision: .bf16)
                    var worst = 0.0
                    for i in 0 ..< out.count { worst = max(worst, abs(Double(out.pointer[i]) - reference[i]) / bound[i]) }
                    XCTAssertLessThanOrEqual(worst, 1, "\(path.rawValue) attention \(batch)x\(heads)x\(queries)x\(keys)x\(d) \(chunking)")
                }
            }
            BFloat16.override = nil
        }
    }
}
