/// Normalization layers (PyTorch semantics: biased variance, eps inside the square root).
public enum Normalization {
    /// PyTorch `nn.GroupNorm` over x [B, C, *]: the C channels are split into `groups` groups of
    /// C / groups channels; each (batch, group) block is normalised by its own mean and variance,
    /// then scaled and shifted per channel by weight [C] and bias [C]. With `silu`, applies
    /// x * sigmoid(x) to the result (the GroupNorm + SiLU pair of every UNet / VAE ResNet block).
    ///
    /// Statistics take one sweep over memory (`moments`: chunk-centred float sums merged in Double) and the
    /// mean is subtracted before scaling, so large blocks such as 2 x 128 x 128 values far from zero stay
    /// accurate to float rounding; a second sweep writes the output (normalisation and the optional SiLU fused).
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
        let out = Tensor(uninitialized: x.shape)
        let src = x.pointer, dst = out.pointer, w = weight.pointer, b = bias.pointer
        Parallel.forEach(batch * groups) { block in
            let g = block % groups
            let start = block * blockSize
            let (mean, variance) = moments(src + start, blockSize)
            let rstd = Float(1 / (variance + Double(eps)).squareRoot())
            // The mean as hi + lo floats: x - hi is exact for x near the mean, so offsets cost no precision.
            let meanHi = Float(mean), meanLo = Float(mean - Double(meanHi))
            for cg in 0 ..< perGroup {
                // y = (x - mean) * scale + b[c], scale = rstd * w[c]; with silu, y / (1 + e^-y)
                let c = g * perGroup + cg
                normalizeChannel(src + start + cg * spatial, dst + start + cg * spatial, count: spatial,
                                 meanHi: meanHi, meanLo: meanLo, scale: rstd * w[c], shift: b[c], silu: silu)
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
        let out = Tensor(uninitialized: x.shape)
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

    /// d[i] = (s[i] - meanHi - meanLo) * scale + shift, then x * sigmoid(x) if `silu`; eight lanes at a time.
    @inline(__always)
    static func normalizeChannel(_ s: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, count: Int,
                                 meanHi: Float, meanLo: Float, scale: Float, shift: Float, silu: Bool) {
        let hi = SIMD8<Float>(repeating: meanHi), lo = SIMD8<Float>(repeating: meanLo)
        let a = SIMD8<Float>(repeating: scale), b = SIMD8<Float>(repeating: shift)
        var i = 0
        while i + 8 <= count {
            var v = (UnsafeRawPointer(s + i).loadUnaligned(as: SIMD8<Float>.self) - hi - lo) * a + b
            if silu { v = v / (1 + VectorExp.exp(-v)) }
            UnsafeMutableRawPointer(d + i).storeBytes(of: v, as: SIMD8<Float>.self)
            i += 8
        }
        while i < count {
            let v = (s[i] - meanHi - meanLo) * scale + shift
            d[i] = silu ? v / (1 + FastMath.exp(-v)) : v
            i += 1
        }
    }

    /// Values per chunk in `moments`: 2 KB, resident in L1 between the chunk's two passes.
    static let momentChunk = 512

    /// Mean and biased variance of n values, in one sweep over memory.
    ///
    /// Each chunk of `momentChunk` values gets its float mean c and the centred sums s1 = sum (x - c) and
    /// s2 = sum (x - c)^2 (two passes over the chunk while it is in L1, 16 float lanes); the chunk's mean
    /// c + s1 / n_c and sum of squared deviations s2 - s1^2 / n_c are merged in Double (Chan, Golub & LeVeque):
    /// M2 = M2_a + M2_b + delta^2 n_a n_b / (n_a + n_b). Centring each chunk keeps values far from zero accurate.
    static func moments(_ p: UnsafePointer<Float>, _ n: Int) -> (mean: Double, variance: Double) {
        guard n > 0 else { return (0, 0) }
        var count = 0.0, mean = 0.0, m2 = 0.0
        var start = 0
        while start < n {
            let length = min(momentChunk, n - start)
            let chunk = p + start
            let raw = UnsafeRawPointer(chunk)
            var lanes = SIMD16<Float>()
            var j = 0
            while j + 16 <= length {
                lanes += raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD16<Float>.self)
                j += 16
            }
            var total = lanes.sum()
            while j < length { total += chunk[j]; j += 1 }
            let c = total / Float(length)
            let centre = SIMD16<Float>(repeating: c)
            var first = SIMD16<Float>(), second = SIMD16<Float>()
            j = 0
            while j + 16 <= length {
                let d = raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD16<Float>.self) - centre
                first += d
                second += d * d
                j += 16
            }
            var s1 = Double(first.sum()), s2 = Double(second.sum())
            while j < length {
                let d = Double(chunk[j] - c)
                s1 += d
                s2 += d * d
                j += 1
            }
            let chunkCount = Double(length)
            let chunkMean = Double(c) + s1 / chunkCount
            let chunkM2 = max(0, s2 - s1 * s1 / chunkCount)
            // Chan et al.: merge (count, mean, m2) with the chunk's (chunkCount, chunkMean, chunkM2).
            let merged = count + chunkCount
            let delta = chunkMean - mean
            mean += delta * chunkCount / merged
            m2 += chunkM2 + delta * delta * count * chunkCount / merged
            count = merged
            start += length
        }
        return (mean, m2 / count)
    }
}
