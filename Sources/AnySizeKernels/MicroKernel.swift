/// Register-blocked matrix-product kernels for products too small or too oddly shaped for BLAS to pay off
/// (BLAS re-packs both operands on every call).
///
/// One call computes an 8-row block of C = A B over `k` steps, with A read by broadcast from 8 rows (any row
/// stride, consecutive along k) and B read as 16- or 32-float rows (stride `ldb`); the 8 x 16 or 8 x 32
/// accumulators stay in vector registers for the whole loop. With `-target-cpu` set (the Makefile's native
/// build defines `FUSED_MULTIPLY_ADD`) each step is one fused multiply-add per accumulator; a portable build
/// multiplies and adds separately (no FMA instructions in baseline x86-64), which rounds differently.
public enum MicroKernel {
    typealias Lanes = SIMD16<Float>
    /// Rows of A (and C) per call.
    static let rows = 8

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> Lanes {
        UnsafeRawPointer(p).loadUnaligned(as: Lanes.self)
    }

    @inline(__always) static func store(_ v: Lanes, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: Lanes.self)
    }

    /// Whether the register-blocked kernels here and in `AttentionTiles` pay off in this build: FMA instructions
    /// (`FUSED_MULTIPLY_ADD`) and 32 registers of 16 floats (`REGISTER_TILES`; the Makefile sets both for AVX-512
    /// targets). Elsewhere their 8 x 32 and 12 x 32 tiles spill (measured: attention 0.92 s with AVX2 codegen
    /// and 2.62 s portable, against 0.62 s with BLAS), so `ScaledDotProductAttention` keeps BLAS and
    /// `AutomaticConvolution` im2col where these would run.
    public static var registerTilesPayOff: Bool {
        #if FUSED_MULTIPLY_ADD && REGISTER_TILES
        return true
        #else
        return false
        #endif
    }

    /// acc + a * b, fused where the target has FMA.
    @inline(__always) static func multiplyAdd(_ acc: Lanes, _ a: Lanes, _ b: Lanes) -> Lanes {
        #if FUSED_MULTIPLY_ADD
        return acc.addingProduct(a, b)
        #else
        return acc + a * b
        #endif
    }

    /// C[r, 0 ..< 32] (+)= sum_p A[r, p] B[p, 0 ..< 32] for r in 0 ..< 8, with A[r, p] = a[r * lda + p],
    /// B[p, j] = b[p * ldb + j], C[r, j] = c[r * ldc + j]; adds to C when `accumulate`, else overwrites it.
    static func rows8x32(k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                         c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        rows8(wide: true, k: k, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc, accumulate: accumulate)
    }

    /// As `rows8x32` for 16 columns.
    static func rows8x16(k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                         c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        rows8(wide: false, k: k, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc, accumulate: accumulate)
    }

    /// The body of both: 8 rows x 2 vectors (`wide`) or 1. Inlined with a constant `wide`, so each caller
    /// keeps only its own accumulators and no branch in the loop.
    @inline(__always)
    private static func rows8(wide: Bool, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>,
                              ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        var c00 = Lanes(), c01 = Lanes(), c10 = Lanes(), c11 = Lanes(), c20 = Lanes(), c21 = Lanes()
        var c30 = Lanes(), c31 = Lanes(), c40 = Lanes(), c41 = Lanes(), c50 = Lanes(), c51 = Lanes()
        var c60 = Lanes(), c61 = Lanes(), c70 = Lanes(), c71 = Lanes()
        if accumulate {
            @inline(__always) func row(_ r: Int) -> (Lanes, Lanes) {
                (load(c + r * ldc), wide ? load(c + r * ldc + 16) : Lanes())
            }
            (c00, c01) = row(0); (c10, c11) = row(1); (c20, c21) = row(2); (c30, c31) = row(3)
            (c40, c41) = row(4); (c50, c51) = row(5); (c60, c61) = row(6); (c70, c71) = row(7)
        }
        let a1 = a + lda, a2 = a + 2 * lda, a3 = a + 3 * lda, a4 = a + 4 * lda, a5 = a + 5 * lda
        let a6 = a + 6 * lda, a7 = a + 7 * lda
        var bp = b
        for p in 0 ..< k {
            let b0 = load(bp), b1 = wide ? load(bp + 16) : Lanes()
            bp += ldb
            @inline(__always) func step(_ x: Float, _ lo: inout Lanes, _ hi: inout Lanes) {
                let lanes = Lanes(repeating: x)
                lo = multiplyAdd(lo, lanes, b0)
                if wide { hi = multiplyAdd(hi, lanes, b1) }
            }
            step(a[p], &c00, &c01); step(a1[p], &c10, &c11); step(a2[p], &c20, &c21); step(a3[p], &c30, &c31)
            step(a4[p], &c40, &c41); step(a5[p], &c50, &c51); step(a6[p], &c60, &c61); step(a7[p], &c70, &c71)
        }
        @inline(__always) func put(_ r: Int, _ lo: Lanes, _ hi: Lanes) {
            store(lo, c + r * ldc)
            if wide { store(hi, c + r * ldc + 16) }
        }
        put(0, c00, c01); put(1, c10, c11); put(2, c20, c21); put(3, c30, c31)
        put(4, c40, c41); put(5, c50, c51); put(6, c60, c61); put(7, c70, c71)
    }
}
