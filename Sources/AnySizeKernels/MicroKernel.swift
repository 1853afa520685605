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

    /// Whether this build multiplies and adds in one instruction (`FUSED_MULTIPLY_ADD`, set with the target CPU).
    /// Without it the register-blocked kernels here and in `AttentionTiles` lose to BLAS (baseline x86-64 has
    /// 16 four-lane registers: the 8 x 32 and 12 x 32 tiles spill), so their callers fall back to BLAS.
    public static var usesFusedMultiplyAdd: Bool {
        #if FUSED_MULTIPLY_ADD
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
        var c00 = Lanes(), c01 = Lanes(), c10 = Lanes(), c11 = Lanes(), c20 = Lanes(), c21 = Lanes()
        var c30 = Lanes(), c31 = Lanes(), c40 = Lanes(), c41 = Lanes(), c50 = Lanes(), c51 = Lanes()
        var c60 = Lanes(), c61 = Lanes(), c70 = Lanes(), c71 = Lanes()
        if accumulate {
            c00 = load(c); c01 = load(c + 16)
            c10 = load(c + ldc); c11 = load(c + ldc + 16)
            c20 = load(c + 2 * ldc); c21 = load(c + 2 * ldc + 16)
            c30 = load(c + 3 * ldc); c31 = load(c + 3 * ldc + 16)
            c40 = load(c + 4 * ldc); c41 = load(c + 4 * ldc + 16)
            c50 = load(c + 5 * ldc); c51 = load(c + 5 * ldc + 16)
            c60 = load(c + 6 * ldc); c61 = load(c + 6 * ldc + 16)
            c70 = load(c + 7 * ldc); c71 = load(c + 7 * ldc + 16)
        }
        let a1 = a + lda, a2 = a + 2 * lda, a3 = a + 3 * lda, a4 = a + 4 * lda, a5 = a + 5 * lda
        let a6 = a + 6 * lda, a7 = a + 7 * lda
        var bp = b
        for p in 0 ..< k {
            let b0 = load(bp), b1 = load(bp + 16)
            bp += ldb
            var x = Lanes(repeating: a[p])
            c00 = multiplyAdd(c00, x, b0); c01 = multiplyAdd(c01, x, b1)
            x = Lanes(repeating: a1[p])
            c10 = multiplyAdd(c10, x, b0); c11 = multiplyAdd(c11, x, b1)
            x = Lanes(repeating: a2[p])
            c20 = multiplyAdd(c20, x, b0); c21 = multiplyAdd(c21, x, b1)
            x = Lanes(repeating: a3[p])
            c30 = multiplyAdd(c30, x, b0); c31 = multiplyAdd(c31, x, b1)
            x = Lanes(repeating: a4[p])
            c40 = multiplyAdd(c40, x, b0); c41 = multiplyAdd(c41, x, b1)
            x = Lanes(repeating: a5[p])
            c50 = multiplyAdd(c50, x, b0); c51 = multiplyAdd(c51, x, b1)
            x = Lanes(repeating: a6[p])
            c60 = multiplyAdd(c60, x, b0); c61 = multiplyAdd(c61, x, b1)
            x = Lanes(repeating: a7[p])
            c70 = multiplyAdd(c70, x, b0); c71 = multiplyAdd(c71, x, b1)
        }
        store(c00, c); store(c01, c + 16)
        store(c10, c + ldc); store(c11, c + ldc + 16)
        store(c20, c + 2 * ldc); store(c21, c + 2 * ldc + 16)
        store(c30, c + 3 * ldc); store(c31, c + 3 * ldc + 16)
        store(c40, c + 4 * ldc); store(c41, c + 4 * ldc + 16)
        store(c50, c + 5 * ldc); store(c51, c + 5 * ldc + 16)
        store(c60, c + 6 * ldc); store(c61, c + 6 * ldc + 16)
        store(c70, c + 7 * ldc); store(c71, c + 7 * ldc + 16)
    }

    /// As `rows8x32` for 16 columns.
    static func rows8x16(k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                         c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        var c0 = Lanes(), c1 = Lanes(), c2 = Lanes(), c3 = Lanes()
        var c4 = Lanes(), c5 = Lanes(), c6 = Lanes(), c7 = Lanes()
        if accumulate {
            c0 = load(c); c1 = load(c + ldc); c2 = load(c + 2 * ldc); c3 = load(c + 3 * ldc)
            c4 = load(c + 4 * ldc); c5 = load(c + 5 * ldc); c6 = load(c + 6 * ldc); c7 = load(c + 7 * ldc)
        }
        let a1 = a + lda, a2 = a + 2 * lda, a3 = a + 3 * lda, a4 = a + 4 * lda, a5 = a + 5 * lda
        let a6 = a + 6 * lda, a7 = a + 7 * lda
        var bp = b
        for p in 0 ..< k {
            let b0 = load(bp)
            bp += ldb
            c0 = multiplyAdd(c0, Lanes(repeating: a[p]), b0)
            c1 = multiplyAdd(c1, Lanes(repeating: a1[p]), b0)
            c2 = multiplyAdd(c2, Lanes(repeating: a2[p]), b0)
            c3 = multiplyAdd(c3, Lanes(repeating: a3[p]), b0)
            c4 = multiplyAdd(c4, Lanes(repeating: a4[p]), b0)
            c5 = multiplyAdd(c5, Lanes(repeating: a5[p]), b0)
            c6 = multiplyAdd(c6, Lanes(repeating: a6[p]), b0)
            c7 = multiplyAdd(c7, Lanes(repeating: a7[p]), b0)
        }
        store(c0, c); store(c1, c + ldc); store(c2, c + 2 * ldc); store(c3, c + 3 * ldc)
        store(c4, c + 4 * ldc); store(c5, c + 5 * ldc); store(c6, c + 6 * ldc); store(c7, c + 7 * ldc)
    }
}
