import CBLAS

/// Matrix products. This is the only file that calls CBLAS.
public enum MatMul {
    /// C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C, row-major, with leading dimensions.
    /// `transA`/`transB` select op(X) = X^T (A stored as [k, m], B stored as [n, k]).
    @inline(__always)
    public static func gemm(transA: Bool = false, transB: Bool = false,
                            m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0,
                            c: UnsafeMutablePointer<Float>, ldc: Int) {
        precondition(m >= 0 && n >= 0 && k >= 0)
        if m == 0 || n == 0 { return }
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Batched C_i = op(A_i) op(B_i) for tensors [batch, ., .]; returns [batch, m, n].
    public static func batched(_ a: Tensor, _ b: Tensor, transA: Bool = false, transB: Bool = false,
                               alpha: Float = 1) -> Tensor {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.linear, profileStart) }
        precondition(a.rank == 3 && b.rank == 3 && a.shape[0] == b.shape[0], "batched matmul needs [B, ., .] pairs")
        let batch = a.shape[0]
        let m = transA ? a.shape[2] : a.shape[1], k = transA ? a.shape[1] : a.shape[2]
        let kb = transB ? b.shape[2] : b.shape[1], n = transB ? b.shape[1] : b.shape[2]
        precondition(k == kb, "batched matmul inner dimensions \(a.shape) x \(b.shape)")
        let out = Tensor(uninitialized: [batch, m, n])  // beta 0: GEMM writes C
        for i in 0 ..< batch {
            gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                 a: a.pointer + i * a.shape[1] * a.shape[2], lda: a.shape[2],
                 b: b.pointer + i * b.shape[1] * b.shape[2], ldb: b.shape[2],
                 c: out.pointer + i * m * n, ldc: n)
        }
        return out
    }

    /// y = x W^T + b for x [..., in], weight [out, in] (PyTorch `nn.Linear` layout), bias [out].
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.linear, profileStart) }
        let inFeatures = x.shape.last ?? 0
        precondition(weight.rank == 2 && weight.shape[1] == inFeatures,
                     "linear: input \(x.shape) does not fit weight \(weight.shape)")
        let outFeatures = weight.shape[0]
        let rows = x.count / max(inFeatures, 1)
        var outShape = x.shape
        outShape[outShape.count - 1] = outFeatures
        let out = Tensor(uninitialized: outShape)  // bias rows or beta 0
        if let bias {
            precondition(bias.count == outFeatures, "linear: bias \(bias.shape) for \(outFeatures) outputs")
            for r in 0 ..< rows { (out.pointer + r * outFeatures).update(from: bias.pointer, count: outFeatures) }
        }
        gemm(transB: true, m: rows, n: outFeatures, k: inFeatures,
             a: x.pointer, lda: inFeatures, b: weight.pointer, ldb: inFeatures,
             beta: bias == nil ? 0 : 1, c: out.pointer, ldc: outFeatures)
        return out
    }
}

extension MatMul {
    /// Runs `body` with BLAS limited to one thread, restoring the previous thread count afterwards.
    ///
    /// For parallel regions whose workers each call `gemm` on their own slice of work: OpenBLAS is itself
    /// multithreaded, and several threads calling a multithreaded sgemm at once oversubscribe the cores or
    /// serialise on its thread pool. Not reentrant across threads: call it from the thread that starts the
    /// parallel region, not from inside one.
    public static func withSingleThreadedBLAS<R>(_ body: () throws -> R) rethrows -> R {
        let previous = openblas_get_num_threads()
        if previous <= 1 { return try body() }
        openblas_set_num_threads(1)
        defer { openblas_set_num_threads(previous) }
        return try body()
    }
}

extension MatMul {
    /// The kernel family OpenBLAS chose at load time (`openblas_get_corename`, e.g. "Haswell", "SkylakeX").
    public static var blasCoreName: String { String(cString: openblas_get_corename()) }

    /// OpenBLAS's build description (`openblas_get_config`); contains "DYNAMIC_ARCH" when the kernel family is
    /// chosen at load time (and `OPENBLAS_CORETYPE` can override it).
    public static var blasConfiguration: String { String(cString: openblas_get_config()) }
}
