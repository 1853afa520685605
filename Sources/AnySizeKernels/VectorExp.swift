/// Vectorised float32 exponential for kernels whose cost is dominated by exp (attention softmax).
///
/// Cephes `expf` scheme: n = round(x log2 e), r = x - n ln 2 (two-part ln 2), exp(r) by a degree-5
/// polynomial, 2^n built in the exponent bits. Relative error about 1 ulp on [-87.3, 88]; inputs below
/// -87.3 (including -infinity) give exactly 0, inputs above 88 saturate at e^88. NaN is not propagated.
public enum VectorExp {
    /// e^x lane by lane.
    @inlinable @inline(__always)
    public static func exp(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let low = SIMD8<Float>(repeating: -87.33654), high = SIMD8<Float>(repeating: 88)
        // Clamp with compare-and-select: `clamped(lowerBound:upperBound:)` compiles to out-of-line calls.
        let clamped = x.replacing(with: low, where: x .< low).replacing(with: high, where: x .> high)
        // Adding 1.5 * 2^23 rounds x log2 e to an integer n held in the low mantissa bits of `shifted`.
        let shifter = SIMD8<Float>(repeating: 12_582_912)
        let shifted = clamped * 1.442_695_040_888_963_4 + shifter
        let n = shifted - shifter
        let r = clamped - n * 0.693_359_375 + n * 2.121_944_4e-4  // ln 2 = 0.693359375 - 2.12194440e-4
        var p = r * 1.987_569_150_0e-4 + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        p = p * (r * r) + r + 1
        // 2^n: exponent field n + 127; `shifted` bits are 0x4B400000 + n.
        let bits = unsafeBitCast(shifted, to: SIMD8<UInt32>.self) &+ SIMD8(repeating: 127 &- 0x4B40_0000)
        let twoToN = unsafeBitCast(bits &<< 23, to: SIMD8<Float>.self)
        return (p * twoToN).replacing(with: 0, where: x .< low)
    }
}

// `expNonPositive` repeats `exp`'s polynomial on purpose: one generic body over `SIMD` (bit casts through
// `MaskStorage`) was measured 1.5x slower on the level-0 attention benchmark (0.61 s vs 0.42 s, native build),
// because the generic integer-vector operations are not fully specialised.
extension VectorExp {
    /// e^x for x <= 0 (softmax after subtracting the row maximum), 16 lanes: the same Cephes scheme as `exp`
    /// without the upper clamp, so about 1 ulp on [-87.3, 0]; inputs below -87.3 (including -infinity) give
    /// exactly 0. Positive inputs are outside the contract (results above 1 are still close for x < 88).
    @inlinable @inline(__always)
    public static func expNonPositive(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let low = SIMD16<Float>(repeating: -87.33654)
        let underflow = x .< low
        let clamped = x.replacing(with: low, where: underflow)
        let shifter = SIMD16<Float>(repeating: 12_582_912)
        let shifted = clamped * 1.442_695_040_888_963_4 + shifter
        let n = shifted - shifter
        let r = clamped - n * 0.693_359_375 + n * 2.121_944_4e-4
        var p = r * 1.987_569_150_0e-4 + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        p = p * (r * r) + r + 1
        let bits = unsafeBitCast(shifted, to: SIMD16<UInt32>.self) &+ SIMD16(repeating: 127 &- 0x4B40_0000)
        let twoToN = unsafeBitCast(bits &<< 23, to: SIMD16<Float>.self)
        return (p * twoToN).replacing(with: 0, where: underflow)
    }
}
