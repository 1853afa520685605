import CAnySizeBF16
import Foundation

/// Number format of the UNet's matrix products.
public enum Precision: String, CaseIterable, Sendable {
    /// float32 everywhere (the default; equal to diffusers float32).
    case fp32
    /// bfloat16 weights and bfloat16 inputs to the linear layers, convolutions and attention products, with
    /// float32 accumulation; everything else (norms, softmax, schedulers, latents) in float32.
    case bf16
}

/// How bfloat16 matrix products run on this machine.
public enum BFloat16Path: String, Sendable {
    /// `vdpbf16ps` tiles (AVX512-BF16): two products per float32 lane per instruction.
    case avx512bf16 = "AVX512-BF16"
    /// Operands widened to float32 per call and multiplied by BLAS sgemm: the same bfloat16 inputs, float32
    /// products (exact for bfloat16 pairs) and sums; for CPUs without AVX512-BF16, and for tests.
    case widened = "widened fallback"
}

/// bfloat16 support: detection, the path in use, and packed operands.
///
/// The path is chosen once from the CPU (AVX512-BF16 when present, else the widened fallback); the environment
/// variable `ANYSIZE_BF16_PATH` (`widened` or `avx512bf16`) or `override` (tests) picks one explicitly. Asking
/// for `avx512bf16` on a CPU without it gives the widened fallback: results are never wrong, only slower.
public enum BFloat16 {
    /// Environment variable that forces a path: `widened` or `avx512bf16`.
    public static let pathVariable = "ANYSIZE_BF16_PATH"
    /// A path forced by the program (tests); nil follows the environment and the CPU.
    nonisolated(unsafe) public static var override: BFloat16Path?

    /// Whether the CPU (and OS) support AVX512-BF16 with AVX-512 F/BW/VL.
    public static var hardwareSupport: Bool { anysize_bf16_hardware() != 0 }

    /// AMX features CPUID reports (AMX-BF16, AMX-TILE, AMX-INT8). AnySize has no AMX kernels: on such a CPU
    /// the AVX512-BF16 path runs (every AMX CPU has it).
    public static var amx: (bf16: Bool, tile: Bool, int8: Bool) {
        let f = anysize_amx_features()
        return (f & 1 != 0, f & 2 != 0, f & 4 != 0)
    }

    /// The path bfloat16 products take now.
    public static var path: BFloat16Path {
        resolvePath(override: override, environment: ProcessInfo.processInfo.environment[pathVariable],
                    hardware: hardwareSupport)
    }

    /// The path for a forced choice, an environment value and hardware support (pure, for tests).
    public static func resolvePath(override: BFloat16Path?, environment: String?, hardware: Bool) -> BFloat16Path {
        let requested = override ?? environment.flatMap { value -> BFloat16Path? in
            switch value.lowercased() {
            case "widened": return .widened
            case "avx512bf16", "avx512-bf16": return .avx512bf16
            default: return nil
            }
        }
        return hardware ? (requested ?? .avx512bf16) : .widened
    }

    /// One line on the bfloat16 path for `anysize info` / `bench`.
    public static var pathDescription: String {
        describe(path: path, hardware: hardwareSupport, amxBF16: amx.bf16 && amx.tile)
    }

    /// The description of `path` given the CPU's support (pure, for tests).
    public static func describe(path: BFloat16Path, hardware: Bool, amxBF16: Bool) -> String {
        let amxNote = amxBF16 ? "; the CPU has AMX-BF16 tiles, which AnySize does not use yet" : ""
        switch path {
        case .avx512bf16:
            return "AVX512-BF16 (vdpbf16ps, float32 accumulation)" + amxNote
        case .widened where hardware:
            return "widened fallback (forced by \(pathVariable) or the program; the CPU has AVX512-BF16)" + amxNote
        case .widened:
            return "widened fallback: this CPU has no AVX512-BF16, so bf16 operands are widened to float32 per "
                + "block (same results, slower than fp32; use --precision fp32 here)"
        }
    }

    /// Round-to-nearest-even float32 -> bfloat16 (as bits) and back: the value bf16 keeps of `x`.
    public static func rounded(_ x: Float) -> Float { anysize_bf16_to_float(anysize_bf16_from_float(x)) }
}

/// bfloat16 storage owned by one allocation.
public final class BFloat16Storage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<UInt16>
    public let count: Int

    /// `count` zeroed values.
    public init(count: Int) {
        self.count = count
        pointer = UnsafeMutablePointer<UInt16>.allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { pointer.deallocate() }
}

/// A bfloat16 matrix [rows, columns] in the kernel's row layout: row stride `rowStride` (columns rounded up to
/// even, zero-padded), storage for `rows` rounded up to 8 (the GEMM's tile height; extra rows are zero).
/// The left operand of `BFloat16MatMul.gemm`; convolution weights are kept this way.
public struct BFloat16Rows: Sendable {
    public let rows: Int, columns: Int, rowStride: Int
    public let storage: BFloat16Storage

    /// Rows of `rows` x `columns` with row stride `rowStride` (even, >= columns), zeroed.
    public init(rows: Int, columns: Int) {
        self.rows = rows
        self.columns = columns
        rowStride = (columns + 1) / 2 * 2
        storage = BFloat16Storage(count: Self.paddedRows(rows) * rowStride)
    }

    /// Converts float32 rows (row stride `sourceStride`) to bfloat16, round to nearest even.
    public init(_ source: UnsafePointer<Float>, rows: Int, columns: Int, sourceStride: Int) {
        self.init(rows: rows, columns: columns)
        anysize_bf16_pack_rows(source, sourceStride, rows, columns, storage.pointer, rowStride)
    }

    /// Overwrites the first `rows` rows (at most `self.rows`) with float32 rows of `columns` values (row stride
    /// `sourceStride`), rounding to nearest even: scratch reused across calls.
    /// With `columns` given (at most `self.columns`), only that many are read and the rest of each row is zeroed.
    public func fill(from source: UnsafePointer<Float>, rows count: Int, columns used: Int? = nil, sourceStride: Int) {
        precondition(count <= rows && (used ?? 0) <= columns, "\(count) x \(used ?? columns) do not fit \(rows) x \(columns)")
        anysize_bf16_pack_rows(source, sourceStride, count, used ?? columns, storage.pointer, rowStride)
    }

    /// Rows rounded up to the GEMM's tile height.
    public static func paddedRows(_ rows: Int) -> Int { (rows + 7) / 8 * 8 }

    /// The values widened to float32, [rows, columns].
    public func widened() -> Tensor {
        let out = Tensor(uninitialized: [rows, columns])
        anysize_bf16_unpack_rows(storage.pointer, rowStride, rows, columns, out.pointer, columns)
        return out
    }
}

/// A bfloat16 matrix B [k, n] in the kernel's panel layout (16 columns per panel, k in interleaved pairs):
/// the right operand of `BFloat16MatMul.gemm`; linear-layer weights (as W^T) are kept this way.
public struct BFloat16Panels: Sendable {
    public let k: Int, n: Int
    public let storage: BFloat16Storage

    /// Packs B with element (i, j) at `source[i * kStride + j * nStride]`, rounding to nearest even.
    public init(_ source: UnsafePointer<Float>, k: Int, n: Int, kStride: Int, nStride: Int) {
        self.k = k
        self.n = n
        storage = BFloat16Storage(count: anysize_bf16_panel_elements(k, n))
        anysize_bf16_pack_panels(source, kStride, nStride, k, n, storage.pointer)
    }

    /// The values widened to float32, [k, n].
    public func widened() -> Tensor {
        let out = Tensor(uninitialized: [k, n])
        anysize_bf16_unpack_panels(storage.pointer, k, n, out.pointer, n)
        return out
    }

    /// Packs B (element (i, j) at `source[i * kStride + j * nStride]`) into a caller's buffer of at least
    /// `elements(k:n:)` values: per-call packing into reused scratch.
    public static func pack(_ source: UnsafePointer<Float>, k: Int, n: Int, kStride: Int, nStride: Int,
                            into destination: UnsafeMutablePointer<UInt16>) {
        anysize_bf16_pack_panels(source, kStride, nStride, k, n, destination)
    }

    /// Bfloat16 elements a [k, n] panel buffer holds (padding included).
    public static func elements(k: Int, n: Int) -> Int { anysize_bf16_panel_elements(k, n) }
}

/// Matrix products with bfloat16 operands and float32 accumulation.
public enum BFloat16MatMul {
    /// C[m, n] = alpha * A B (+ C when `accumulate`): A in the row layout (row stride `lda`, readable for m
    /// rounded up to 8 rows), B in the panel layout ([k, n]), C float32 row-major. Single-threaded over the
    /// call (callers split work across threads). The widened path converts A and B to float32 and runs sgemm.
    public static func gemm(m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<UInt16>, lda: Int,
                            b: UnsafePointer<UInt16>, c: UnsafeMutablePointer<Float>, ldc: Int,
                            accumulate: Bool, path: BFloat16Path = BFloat16.path) {
        precondition(m >= 0 && n >= 0 && k >= 0 && lda >= k && lda % 2 == 0, "bf16 gemm m \(m) n \(n) k \(k) lda \(lda)")
        if m == 0 || n == 0 { return }
        switch path {
        case .avx512bf16:
            anysize_bf16_gemm(m, n, k, alpha, a, lda, b, c, ldc, accumulate ? 1 : 0)
        case .widened:
            let wideA = UnsafeMutablePointer<Float>.allocate(capacity: max(m * k, 1))
            let wideB = UnsafeMutablePointer<Float>.allocate(capacity: max(k * n, 1))
            defer { wideA.deallocate(); wideB.deallocate() }
            anysize_bf16_unpack_rows(a, lda, m, k, wideA, k)
            anysize_bf16_unpack_panels(b, k, n, wideB, n)
            if k == 0 {
                if !accumulate { for r in 0 ..< m { (c + r * ldc).update(repeating: 0, count: n) } }
                return
            }
            MatMul.gemm(m: m, n: n, k: k, alpha: alpha, a: wideA, lda: k, b: wideB, ldb: n,
                        beta: accumulate ? 1 : 0, c: c, ldc: ldc)
        }
    }
}
