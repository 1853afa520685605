import AnySizeKernels
import XCTest

/// Deterministic SplitMix64 source of test inputs.
struct TestRandom {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [low, high).
    mutating func uniform(_ low: Float = -1, _ high: Float = 1) -> Float {
        low + (high - low) * Float(next() >> 40) / Float(1 << 24)
    }

    mutating func tensor(_ shape: [Int], _ low: Float = -1, _ high: Float = 1) -> Tensor {
        let count = shape.reduce(1, *)
        return Tensor(shape: shape, values: (0 ..< count).map { _ in uniform(low, high) })
    }
}

/// Max-abs difference of `actual` (same count) against a Double reference, and max|reference|; a NaN in
/// `actual` counts as an infinite difference.
func maxDifference(_ actual: Tensor, _ reference: [Double]) -> (maxError: Double, maxRef: Double) {
    var maxError = 0.0, maxRef = 0.0
    for (a, r) in zip(actual.buffer, reference) {
        let e = abs(Double(a) - r)
        // NaN never compares greater, so count it explicitly.
        maxError = e.isNaN ? .infinity : max(maxError, e)
        maxRef = max(maxRef, abs(r))
    }
    return (maxError, maxRef)
}

/// Max-abs difference of `actual` against a Double reference, checked against
/// `tolerance * max(1, max|reference|)`; prints the measurement.
@discardableResult
func assertClose(_ actual: Tensor, _ reference: [Double], tolerance: Double, _ label: String,
                 file: StaticString = #filePath, line: UInt = #line) -> Double {
    XCTAssertEqual(actual.count, reference.count, "\(label): element count", file: file, line: line)
    guard actual.count == reference.count else { return .infinity }
    let (maxError, maxRef) = maxDifference(actual, reference)
    let bound = tolerance * max(1, maxRef)
    print("\(label): max-abs error \(maxError) (max|ref| \(maxRef), bound \(bound))")
    XCTAssertLessThanOrEqual(maxError, bound, "\(label) exceeds its error bound", file: file, line: line)
    return maxError
}

/// Direct 7-loop convolution in Double (PyTorch-layout weight [O, I, k, k], taps `dilation` pixels apart): the
/// reference of the convolution tests.
func naiveConvolution(_ x: Tensor, _ w: Tensor, _ bias: Tensor?, stride s: Int, padding p: Int,
                      dilation dl: Int = 1) -> (shape: [Int], values: [Double]) {
    let batch = x.shape[0], inC = x.shape[1], h = x.shape[2], wd = x.shape[3]
    let outC = w.shape[0], k = w.shape[2]
    let outH = (h + 2 * p - dl * (k - 1) - 1) / s + 1, outW = (wd + 2 * p - dl * (k - 1) - 1) / s + 1
    let xv = x.scalars, wv = w.scalars, bv = bias?.scalars
    var out = [Double](repeating: 0, count: batch * outC * outH * outW)
    for b in 0 ..< batch {
        for o in 0 ..< outC {
            for y in 0 ..< outH {
                for xo in 0 ..< outW {
                    var sum = Double(bv?[o] ?? 0)
                    for i in 0 ..< inC {
                        for ky in 0 ..< k {
                            let iy = y * s + ky * dl - p
                            if iy < 0 || iy >= h { continue }
                            for kx in 0 ..< k {
                                let ix = xo * s + kx * dl - p
                                if ix < 0 || ix >= wd { continue }
                                sum += Double(xv[((b * inC + i) * h + iy) * wd + ix])
                                    * Double(wv[((o * inC + i) * k + ky) * k + kx])
                            }
                        }
                    }
                    out[((b * outC + o) * outH + y) * outW + xo] = sum
                }
            }
        }
    }
    return ([batch, outC, outH, outW], out)
}

extension Tensor {
    /// Values widened to Double for reference computations.
    var doubles: [Double] { buffer.map(Double.init) }
}
