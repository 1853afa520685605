/// Softmax along an axis.
public enum Softmax {
    /// x <- softmax(x) over the last axis, numerically stable: e^(x - max) / sum e^(x - max).
    /// Rows whose entries are all -inf become all zeros.
    public static func lastAxisInPlace(_ x: Tensor) {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.elementwise, profileStart) }
        let n = x.shape.last ?? 0
        guard n > 0 else { return }
        let rows = x.count / n
        let base = x.pointer
        Parallel.forRanges(rows, minimumPerThread: max(1, (1 << 14) / n)) { range in
            for r in range { row(base + r * n, n) }
        }
    }

    @inline(__always)
    static func row(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
        var m = -Float.infinity
        for i in 0 ..< n { m = max(m, p[i]) }
        guard m > -.infinity else {
            p.update(repeating: 0, count: n)
            return
        }
        for i in 0 ..< n { p[i] = FastMath.exp(p[i] - m) }
        // The sum in Double keeps long rows accurate; the max entry contributes 1, so it is >= 1.
        var s0: Double = 0, s1: Double = 0, s2: Double = 0, s3: Double = 0
        var i = 0
        while i + 4 <= n {
            s0 += Double(p[i]); s1 += Double(p[i + 1]); s2 += Double(p[i + 2]); s3 += Double(p[i + 3])
            i += 4
        }
        while i < n { s0 += Double(p[i]); i += 1 }
        let inv = Float(1 / ((s0 + s1) + (s2 + s3)))
        for i in 0 ..< n { p[i] *= inv }
    }
}
