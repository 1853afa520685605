/// Branch-free float32 transcendental functions that the compiler can vectorize inside kernel loops
/// (the C library's `expf`/`erff` are opaque calls that keep loops scalar).
public enum FastMath {
    /// e^x with about 2 ulp error on [-87.3, 88.7]; 0 below that range, +inf above.
    ///
    /// Cephes `expf`: x = n ln2 + r with |r| <= ln2 / 2, e^r by a degree-7 polynomial,
    /// 2^n assembled in the exponent bits. Rounding to n uses the 1.5 * 2^23 trick, so every step
    /// is plain float/integer arithmetic.
    @inlinable @inline(__always)
    public static func exp(_ x: Float) -> Float {
        let xc = Swift.min(Swift.max(x, -87.336_54), 88.722_83)
        // t = 1.5 * 2^23 + round(x / ln2); its low mantissa bits hold the integer n.
        let t = xc * 1.442_695_04 + 12_582_912
        let n = t - 12_582_912
        let r = xc - n * 0.693_359_375 + n * 2.121_944_4e-4
        let r2 = r * r
        var p: Float = 1.987_569_15e-4
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_59e-2
        p = p * r + 1.666_666_55e-1
        p = p * r + 5.000_000_12e-1
        let er = p * r2 + r + 1
        // 2^n as (n + 127) << 23; n = -126 ... 128, the extreme ends split in two factors.
        let bits = Int32(bitPattern: t.bitPattern) &- 0x4B40_0000
        let half = bits >> 1
        let s1 = Float(bitPattern: UInt32(bitPattern: (half &+ 127) << 23))
        let s2 = Float(bitPattern: UInt32(bitPattern: (bits &- half &+ 127) << 23))
        let y = er * s1 * s2
        return x < -87.336_54 ? 0 : (x > 88.722_83 ? .infinity : y)
    }

    /// Logistic sigmoid 1 / (1 + e^-x).
    @inlinable @inline(__always)
    public static func sigmoid(_ x: Float) -> Float {
        1 / (1 + exp(-x))
    }

    /// Error function, Abramowitz & Stegun 7.1.26 (max abs error 1.5e-7), the same approximation
    /// PyTorch's vectorized CPU `erf` (and so its CPU `gelu`) uses:
    /// erf(x) = sign(x) (1 - t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) e^(-x^2)), t = 1 / (1 + p |x|).
    @inlinable @inline(__always)
    public static func erf(_ x: Float) -> Float {
        let ax = Swift.abs(x)
        let t = 1 / (1 + 0.327_591_1 * ax)
        var q: Float = 1.061_405_429
        q = q * t - 1.453_152_027
        q = q * t + 1.421_413_741
        q = q * t - 0.284_496_736
        q = q * t + 0.254_829_592
        let e = 1 - q * t * exp(-ax * ax)
        return x < 0 ? -e : e
    }
}
