import AnySizeKernels
import CAnySizeBF16
import XCTest

/// The bfloat16 kernels against float64 references, on both paths (AVX512-BF16 where the CPU has it, and the
/// widened sgemm fallback).
///
/// Error bounds. bfloat16 keeps 8 significant bits, so rounding to nearest even gives x' = x (1 + d) with
/// |d| <= u = 2^-8. A product of two bfloat16 values is exact in float32 (16 <= 24 bits), so for one term
/// |a'b' - ab| <= (2u + u^2) |a||b|. The k terms are summed in float32 (unit roundoff e = 2^-24), in any order:
/// at most k roundings each of at most e times the partial sum, so |sum_fl - sum| <= k e (1 + 2u + u^2)
/// sum |a||b| (first order; the alpha scaling adds one more e). Together
///     |C_ij - sum_k a_ik b_kj| <= (2u + u^2 + (k + 2) e (1 + 2u + u^2)) * sum_k |a_ik| |b_kj|.      (1)
/// Against a reference built from the same rounded inputs only the summation term remains:
///     |C_ij - sum_k a'_ik b'_kj| <= (k + 2) e * sum_k |a'_ik| |b'_kj|.                              (2)
/// (2) is what catches a wrong kernel: a dropped tail of k, swapped pair halves, a panel layout error or
/// truncation instead of rounding each move some entry by at least one bfloat16 ulp of a term, 2^7 times
/// more than (2) allows at these sizes. (1) alone would let a truncating kernel through on zero-mean data.
final class BFloat16Tests: XCTestCase {
    static let u = 1.0 / 256, e = 1.0 / 16_777_216

    var paths: [BFloat16Path] { BFloat16.hardwareSupport ? [.avx512bf16, .widened] : [.widened] }

    override func tearDown() { BFloat16.override = nil }

    func testRoundingIsNearestEven() {
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even significand (1); 1 + 3 * 2^-8 ties
        // between 1 + 2^-7 (odd) and 1 + 2^-6 (even); anything past the halfway point rounds up.
        let cases: [(Float, Float)] = [(1 + 0x1p-8, 1), (1 + 3 * 0x1p-8, 1 + 0x1p-6), (1 + 0x1p-8 + 0x1p-20, 1 + 0x1p-7),
                                       (-(1 + 0x1p-8 + 0x1p-20), -(1 + 0x1p-7)), (1 - 0x1p-10, 1), (0, 0),
                                       (.infinity, .infinity), (Float.greatestFiniteMagnitude, .infinity)]
        for (x, expected) in cases { XCTAssertEqual(BFloat16.rounded(x), expected, "bf16(\(x))") }
        XCTAssertTrue(BFloat16.rounded(.nan).isNaN)
        // The vector conversion (AVX512-BF16 where present) rounds every value as the scalar one does.
        var rng = TestRandom(seed: 11)
        let x = rng.tensor([3, 45], -300, 300)
        let rows = BFloat16Rows(x.pointer, rows: 3, columns: 45, sourceStride: 45)
        XCTAssertEqual(rows.rowStride, 46)
        for r in 0 ..< 3 {
            for c in 0 ..< 45 {
                XCTAssertEqual(rows.storage.pointer[r * 46 + c], anysize_bf16_from_float(x.pointer[r * 45 + c]), "(\(r), \(c))")
            }
            XCTAssertEqual(rows.storage.pointer[r * 46 + 45], 0, "padding column")
        }
        XCTAssertEqual(rows.widened().scalars, x.scalars.map(BFloat16.rounded))
    }

    func testPanelsRoundTrip() {
        var rng = TestRandom(seed: 12)
        for (k, n) in [(1, 1), (3, 17), (40, 77), (77, 40)] {
            let b = rng.tensor([k, n], -5, 5)
            // Packed from rows (n contiguous) and from a transposed source (k contiguous): the same panels.
            let t = Tensor(shape: [n, k], values: (0 ..< n * k).map { b.pointer[($0 % k) * n + $0 / k] })
            let direct = BFloat16Panels(b.pointer, k: k, n: n, kStride: n, nStride: 1)
            let transposed = BFloat16Panels(t.pointer, k: k, n: n, kStride: 1, nStride: k)
            XCTAssertEqual(direct.widened().scalars, b.scalars.map(BFloat16.rounded), "k \(k) n \(n)")
            let count = BFloat16Panels.elements(k: k, n: n)
            XCTAssertEqual(Array(UnsafeBufferPointer(start: direct.storage.pointer, count: count)),
                           Array(UnsafeBufferPointer(start: transposed.storage.pointer, count: count)), "k \(k) n \(n)")
        }
    }

    /// C = alpha A B (+ C) for odd and even k, k across several reduction blocks (also cut unevenly: 723 values =
    /// 362 pairs in three blocks), n across several 192-column blocks, m across 64-row blocks, m and n not
    /// multiples of the 8 x 48 tile, against bounds (1) and (2).
    func testGEMMAgainstReferences() {
        var rng = TestRandom(seed: 13)
        let shapes = [(1, 1, 1), (7, 5, 3), (13, 40, 77), (9, 50, 300), (8, 48, 257), (17, 97, 640), (3, 16, 2),
                      (70, 401, 723)]
        for path in paths {
            for (m, n, k) in shapes {
                for (alpha, accumulate) in [(Float(1), false), (Float(0.5), true)] {
                    let a = rng.tensor([m, k], -2, 2), b = rng.tensor([k, n], -2, 2), c0 = rng.tensor([m, n])
                    let rows = BFloat16Rows(a.pointer, rows: m, columns: k, sourceStride: k)
                    let panels = BFloat16Panels(b.pointer, k: k, n: n, kStride: n, nStride: 1)
                    let c = c0.copy()
                    BFloat16MatMul.gemm(m: m, n: n, k: k, alpha: alpha, a: rows.storage.pointer, lda: rows.rowStride,
                                        b: panels.storage.pointer, c: c.pointer, ldc: n, accumulate: accumulate, path: path)
                    let label = "\(path.rawValue) m \(m) n \(n) k \(k) alpha \(alpha) accumulate \(accumulate)"
                    checkProduct(c, a: a, b: b, c0: accumulate ? c0 : nil, alpha: alpha, m: m, n: n, k: k, label)
                }
            }
        }
    }

    /// Checks c against (1) with the float32 inputs and (2) with their bfloat16 roundings.
    func checkProduct(_ c: Tensor, a: Tensor, b: Tensor, c0: Tensor?, alpha: Float, m: Int, n: Int, k: Int,
                      _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        let u = Self.u, e = Self.e
        var worst1 = 0.0, worst2 = 0.0
        for i in 0 ..< m {
            for j in 0 ..< n {
                var exact = 0.0, rounded = 0.0, magnitude = 0.0, roundedMagnitude = 0.0
                for p in 0 ..< k {
                    let x = Double(a.pointer[i * k + p]), y = Double(b.pointer[p * n + j])
                    let xr = Double(BFloat16.rounded(Float(x))), yr = Double(BFloat16.rounded(Float(y)))
                    exact += x * y
                    rounded += xr * yr
                    magnitude += abs(x * y)
                    roundedMagnitude += abs(xr * yr)
                }
                let base = c0.map { Double($0.pointer[i * n + j]) } ?? 0
                let s = Double(alpha), got = Double(c.pointer[i * n + j])
                let bound1 = (2 * u + u * u + Double(k + 3) * e * (1 + 2 * u + u * u)) * s * magnitude + e * abs(base) + 1e-30
                let bound2 = Double(k + 3) * e * s * roundedMagnitude + e * abs(base) + 1e-30
                let error1 = abs(got - (s * exact + base)), error2 = abs(got - (s * rounded + base))
                worst1 = max(worst1, error1 / bound1)
                worst2 = max(worst2, error2 / bound2)
            }
        }
        XCTAssertLessThanOrEqual(worst1, 1, "\(label): bound (1), worst error / bound", file: file, line: line)
        XCTAssertLessThanOrEqual(worst2, 1, "\(label): bound (2), worst error / bound", file: file, line: line)
    }

    /// All-positive inputs just past a rounding tie: truncation errs the same way in every term, so a
    /// truncating kernel exceeds bound (1) here, while rounding to nearest stays within it.
    func testGEMMBoundCatchesTruncation() {
        let m = 8, n = 16, k = 64
        let value = Float(1 + 0x1p-8 + 0x1p-9)  // rounds up to 1 + 2^-7 (error 2^-9); truncates to 1 (error 3 * 2^-9)
        let a = Tensor(shape: [m, k], repeating: value), b = Tensor(shape: [k, n], repeating: value)
        for path in paths {
            let rows = BFloat16Rows(a.pointer, rows: m, columns: k, sourceStride: k)
            let panels = BFloat16Panels(b.pointer, k: k, n: n, kStride: n, nStride: 1)
            let c = Tensor(zeros: [m, n])
            BFloat16MatMul.gemm(m: m, n: n, k: k, a: rows.storage.pointer, lda: rows.rowStride,
                                b: panels.storage.pointer, c: c.pointer, ldc: n, accumulate: false, path: path)
            checkProduct(c, a: a, b: b, c0: nil, alpha: 1, m: m, n: n, k: k, "\(path.rawValue) tie case")
            // What a truncating kernel would give: k * 1 * 1 = 64, off by 64 * (value^2 - 1) ~ 0.75, above (1)'s 0.51.
            let truncated = Double(k), exact = Double(k) * Double(value) * Double(value)
            let bound = (2 * Self.u + Self.u * Self.u + Double(k + 3) * Self.e) * exact
            XCTAssertGreaterThan(abs(truncated - exact), bound, "the tie case must separate truncation from rounding")
        }
    }

    /// The fast path and the fallback multiply the same bfloat16 inputs: equal up to summation order.
    func testPathsAgree() throws {
        try XCTSkipUnless(BFloat16.hardwareSupport, "this CPU has no AVX512-BF16; only the widened path runs")
        var rng = TestRandom(seed: 14)
        let m = 21, n = 70, k = 333
        let a = rng.tensor([m, k]), b = rng.tensor([k, n])
        let rows = BFloat16Rows(a.pointer, rows: m, columns: k, sourceStride: k)
        let panels = BFloat16Panels(b.pointer, k: k, n: n, kStride: n, nStride: 1)
        let fast = Tensor(zeros: [m, n]), wide = Tensor(zeros: [m, n])
        for (path, c) in [(BFloat16Path.avx512bf16, fast), (.widened, wide)] {
            BFloat16MatMul.gemm(m: m, n: n, k: k, a: rows.storage.pointer, lda: rows.rowStride,
                                b: panels.storage.pointer, c: c.pointer, ldc: n, accumulate: false, path: path)
        }
        let difference = zip(fast.scalars, wide.scalars).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(Double(difference), 2 * Double(k) * Self.e * Double(k))  // sum |a b| <= k
    }

    func testPathSelection() {
        XCTAssertEqual(BFloat16.resolvePath(override: nil, environment: nil, hardware: true), .avx512bf16)
        XCTAssertEqual(BFloat16.resolvePath(override: nil, environment: "widened", hardware: true), .widened)
        XCTAssertEqual(BFloat16.resolvePath(override: .widened, environment: "avx512bf16", hardware: true), .widened)
        // Without the instructions every request gets the (correct) fallback, with a message that says so.
        XCTAssertEqual(BFloat16.resolvePath(override: .avx512bf16, environment: nil, hardware: false), .widened)
        XCTAssertEqual(BFloat16.resolvePath(override: nil, environment: "avx512bf16", hardware: false), .widened)
        let message = BFloat16.describe(path: .widened, hardware: false, amxBF16: false)
        XCTAssertTrue(message.contains("no AVX512-BF16") && message.contains("--precision fp32"), message)
        XCTAssertTrue(BFloat16.describe(path: .avx512bf16, hardware: true, amxBF16: true).contains("AMX"))
        BFloat16.override = .widened
        XCTAssertEqual(BFloat16.path, .widened)
    }
}
