import AnySizeKernels
import XCTest

final class NormalizationTests: XCTestCase {
    /// GroupNorm in Double with the textbook formula (x - mean) / sqrt(var + eps) * w + b.
    func naiveGroupNorm(_ x: Tensor, groups: Int, _ w: Tensor, _ b: Tensor, eps: Double, silu: Bool) -> [Double] {
        let batch = x.shape[0], channels = x.shape[1], spatial = x.count / (batch * channels)
        let per = channels / groups, xv = x.doubles
        var out = [Double](repeating: 0, count: x.count)
        for n in 0 ..< batch {
            for g in 0 ..< groups {
                let start = (n * channels + g * per) * spatial, end = start + per * spatial
                let mean = xv[start ..< end].reduce(0, +) / Double(end - start)
                let variance = xv[start ..< end].reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(end - start)
                for i in start ..< end {
                    let c = (i / spatial) % channels
                    var v = (xv[i] - mean) / (variance + eps).squareRoot() * Double(w.pointer[c]) + Double(b.pointer[c])
                    if silu { v = v / (1 + exp(-v)) }
                    out[i] = v
                }
            }
        }
        return out
    }

    func testGroupNormAwkwardSizes() {
        var rng = TestRandom(seed: 21)
        let x = rng.tensor([2, 12, 13, 7], -2, 3)
        let w = rng.tensor([12], 0.5, 1.5), b = rng.tensor([12])
        for silu in [false, true] {
            let y = Normalization.groupNorm(x, groups: 4, weight: w, bias: b, eps: 1e-5, silu: silu)
            XCTAssertEqual(y.shape, x.shape)
            assertClose(y, naiveGroupNorm(x, groups: 4, w, b, eps: 1e-5, silu: silu), tolerance: 1e-5,
                        "groupNorm [2, 12, 13, 7] / 4 groups silu=\(silu)")
        }
        // One channel per group, and rank 3 input [B, C, L].
        let z = rng.tensor([2, 6, 25])
        let wz = rng.tensor([6]), bz = rng.tensor([6])
        assertClose(Normalization.groupNorm(z, groups: 6, weight: wz, bias: bz, eps: 1e-6),
                    naiveGroupNorm(z, groups: 6, wz, bz, eps: 1e-6, silu: false), tolerance: 1e-5,
                    "groupNorm [2, 6, 25] / 6 groups")
    }

    /// 2 x 128 x 128 values per group around a large offset: float sums would drift.
    func testGroupNormLargeSpatial() {
        var rng = TestRandom(seed: 22)
        let x = rng.tensor([1, 64, 128, 128], 5, 7)
        let w = rng.tensor([64], 0.5, 1.5), b = rng.tensor([64])
        let y = Normalization.groupNorm(x, groups: 32, weight: w, bias: b, eps: 1e-6, silu: true)
        assertClose(y, naiveGroupNorm(x, groups: 32, w, b, eps: 1e-6, silu: true), tolerance: 1e-5,
                    "groupNorm [1, 64, 128, 128] / 32 groups + silu")
    }

    /// Values 1000 +- 1 over 8 x 40 x 41 per group (several 512-value chunks plus a tail): the chunk-centred
    /// one-sweep moments must not lose the variance to cancellation.
    func testGroupNormFarFromZero() {
        var rng = TestRandom(seed: 24)
        let x = rng.tensor([1, 16, 40, 41], 999, 1001)
        let w = rng.tensor([16], 0.5, 1.5), b = rng.tensor([16])
        let y = Normalization.groupNorm(x, groups: 2, weight: w, bias: b, eps: 1e-6)
        assertClose(y, naiveGroupNorm(x, groups: 2, w, b, eps: 1e-6, silu: false), tolerance: 1e-4,
                    "groupNorm [1, 16, 40, 41] around 1000 / 2 groups")
    }

    func testLayerNorm() {
        var rng = TestRandom(seed: 23)
        for shape in [[2, 13, 77], [3, 5, 320], [1, 1, 1]] {
            let d = shape[2]
            let x = rng.tensor(shape, 2, 4)
            let w = rng.tensor([d], 0.5, 1.5), b = rng.tensor([d])
            let y = Normalization.layerNorm(x, weight: w, bias: b, eps: 1e-5)
            XCTAssertEqual(y.shape, x.shape)
            let xv = x.doubles
            var reference = [Double](repeating: 0, count: x.count)
            for r in 0 ..< x.count / d {
                let row = xv[r * d ..< (r + 1) * d]
                let mean = row.reduce(0, +) / Double(d)
                let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(d)
                for i in 0 ..< d {
                    reference[r * d + i] = (xv[r * d + i] - mean) / (variance + 1e-5).squareRoot()
                        * Double(w.pointer[i]) + Double(b.pointer[i])
                }
            }
            assertClose(y, reference, tolerance: 1e-5, "layerNorm \(shape)")
        }
    }
}
