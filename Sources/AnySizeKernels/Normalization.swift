/// Normalization layers (PyTorch semantics: biased variance, eps inside the square root).
public enum Normalization {
    /// PyTorch `nn.GroupNorm` over x [B, C, *]: the C channels are split into `groups` groups of
    /// C / groups channels; each (batch, group) block is normalised by its own mean and variance,
    /// then scaled and shifted per channel by weight [C] and bias [C]. With `silu`, applies
    /// x * sigmoid(x) to the result (the GroupNorm + SiLU pair of every UNet / VAE ResNet block).
    ///
    /// Statistics are accumulated in Double (two passes) and the mean is subtracted before scaling,
    /// so large blocks such as 2 x 128 x 128 values far from zero stay accurate to float rounding.
    public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor, bias: Tensor, eps: Float,
                                 silu: Bool = false) -> Tensor {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.normalization, profileStart) }
        precondition(x.rank >= 2, "groupNorm needs [B, C, ...], got \(x.shape)")
        let batch = x.shape[0], channels = x.shape[1]
        precondition(groups > 0 && channels % groups == 0, "groupNorm: \(channels) channels in \(groups) groups")
        precondition(weight.count == channels && bias.count == channels,
                     "groupNorm: weight \(weight.shape) / bias \(bias.shape) for \(channels) channels")
        let spatial = x.count / max(batch * channels, 1)
        let perGroup = channels / groups
        let blockSize = perGroup * spatial
        let out = Tensor(zeros: x.shape)
        let src = x.pointer, dst = out.pointer, w = weight.pointer, b = bias.pointer
        Parallel.forEach(batch * groups) { block in
            let g = block % groups
            let start = block * blockSize
            let (mean, variance) = moments(src + start, blockSize)
            let rstd = Float(1 / (variance + Double(eps)).squareRoot())
            // The mean as hi + lo floats: x - hi is exact for x near the mean, so offsets cost no precision.
            let meanHi = Float(mean), meanLo = Float(mean - Double(meanHi))
            for cg in 0 ..< perGroup {
                // y = (x - mean) * scale + b[c], scale = rstd * w[c]
                let c = g * perGroup + cg
                let scale = rstd * w[c], shift = b[c]
                let s = src + start + cg * spatial, d = dst + start + cg * spatial
                if silu {
                    for i in 0 ..< spatial {
                        let v = (s[i] - meanHi - meanLo) * scale + shift
                        d[i] = v / (1 + FastMath.exp(-v))
                    }
                } else {
                    for i in 0 ..< spatial { d[i] = (s[i] - meanHi - meanLo) * scale + shift }
                }
            }
        }
        return out
    }

    /// PyTorch `nn.LayerNorm` over the last axis of x [..., D] with weight [D] and bias [D].
    public static func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float) -> Tensor {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.normalization, profileStart) }
        let d = x.shape.last ?? 0
        precondition(d > 0 && weight.count == d && bias.count == d,
                     "layerNorm: input \(x.shape), weight \(weight.shape), bias \(bias.shape)")
        let rows = x.count / d
        let out = Tensor(zeros: x.shape)
        let src = x.pointer, dst = out.pointer, w = weight.pointer, b = bias.pointer
        Parallel.forRanges(rows, minimumPerThread: max(1, (1 << 14) / d)) { range in
            for r in range {
                let s = src + r * d, o = dst + r * d
                let (mean, variance) = moments(s, d)
                let rstd = Float(1 / (variance + Double(eps)).squareRoot())
                let meanHi = Float(mean), meanLo = Float(mean - Double(meanHi))
                // y = (x - mean) * rstd * w + b
                for i in 0 ..< d { o[i] = (s[i] - meanHi - meanLo) * rstd * w[i] + b[i] }
            }
        }
        return out
    }

    /// Mean and biased variance of n values, two passes accumulated in Double.
    static func moments(_ p: UnsafePointer<Float>, _ n: Int) -> (mean: Double, variance: Double) {
        guard n > 0 else { return (0, 0) }
        var a0: Double = 0, a1: Double = 0, a2: Double = 0, a3: Double = 0
        var i = 0
        while i + 4 <= n {
            a0 += Double(p[i]); a1 += Double(p[i + 1]); a2 += Double(p[i + 2]); a3 += Double(p[i + 3])
            i += 4
        }
        while i < n { a0 += Double(p[i]); i += 1 }
        let mean = ((a0 + a1) + (a2 + a3)) / Double(n)
        a0 = 0; a1 = 0; a2 = 0; a3 = 0
        i = 0
        while i + 4 <= n {
            let d0 = Double(p[i]) - mean, d1 = Double(p[i + 1]) - mean
            let d2 = Double(p[i + 2]) - mean, d3 = Double(p[i + 3]) - mean
            a0 += d0 * d0; a1 += d1 * d1; a2 += d2 * d2; a3 += d3 * d3
            i += 4
        }
        while i < n { let d0 = Double(p[i]) - mean; a0 += d0 * d0; i += 1 }
        return (mean, ((a0 + a1) + (a2 + a3)) / Double(n))
    }
}
