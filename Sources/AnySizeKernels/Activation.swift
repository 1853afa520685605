/// Pointwise activation functions (PyTorch semantics).
public enum Activation {
    /// Elements per worker below which an elementwise loop stays on one thread.
    static let grain = 1 << 15

    /// x <- x * sigmoid(x) (`nn.SiLU`).
    public static func siluInPlace(_ x: Tensor) {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.activation, profileStart) }
        let p = x.pointer
        Parallel.forRanges(x.count, minimumPerThread: grain) { range in
            for i in range { p[i] = p[i] / (1 + FastMath.exp(-p[i])) }
        }
    }

    /// x <- x / 2 (1 + erf(x / sqrt 2)) (`nn.GELU()`, exact erf form, torch default).
    public static func geluInPlace(_ x: Tensor) {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.activation, profileStart) }
        let p = x.pointer
        Parallel.forRanges(x.count, minimumPerThread: grain) { range in
            for i in range { p[i] = gelu(p[i]) }
        }
    }

    /// x <- x * sigmoid(1.702 x) (OpenAI CLIP `quick_gelu`).
    public static func quickGELUInPlace(_ x: Tensor) {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.activation, profileStart) }
        let p = x.pointer
        Parallel.forRanges(x.count, minimumPerThread: grain) { range in
            for i in range { p[i] = p[i] / (1 + FastMath.exp(-1.702 * p[i])) }
        }
    }

    /// diffusers `GEGLU` after its projection: `hidden, gate = x.chunk(2, dim=-1)`, returns
    /// `hidden * gelu(gate)`. [..., 2D] -> [..., D].
    public static func geglu(_ x: Tensor) -> Tensor {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.activation, profileStart) }
        let twoD = x.shape.last ?? 0
        precondition(x.rank >= 1 && twoD % 2 == 0, "geglu needs an even last axis, got \(x.shape)")
        let d = twoD / 2
        let rows = x.count / max(twoD, 1)
        var outShape = x.shape
        outShape[outShape.count - 1] = d
        let out = Tensor(uninitialized: outShape)
        let src = x.pointer, dst = out.pointer
        Parallel.forRanges(rows, minimumPerThread: max(1, grain / max(d, 1))) { range in
            for r in range {
                // out[r, j] = x[r, j] * gelu(x[r, D + j])
                let hidden = src + r * twoD, gate = hidden + d, o = dst + r * d
                for j in 0 ..< d { o[j] = hidden[j] * gelu(gate[j]) }
            }
        }
        return out
    }

    @inline(__always)
    static func gelu(_ v: Float) -> Float {
        0.5 * v * (1 + FastMath.erf(v * 0.707_106_781_186_547_5))
    }
}
