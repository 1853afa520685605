// Micro-benchmarks of single kernels, outside the test suite (tools/bench/attention_bench.sh drives it).
//
//   anysize-kernel-bench attention [--batch 2] [--heads 8] [--queries 4096] [--keys 4096] [--head-dim 40]
//                                  [--budget-mb 384] [--entropy] [--bf16] [--repeats 5] [--warmup 1]
//   anysize-kernel-bench bf16-conv [--batch 2] [--in 320] [--out 320] [--size 64]
//   anysize-kernel-bench group-norm [--batch 1] [--channels 128] [--size 512] [--groups 32] [--silu]
//
// Prints one JSON line: median and minimum seconds, and GFLOP/s for attention (4 N M D heads B).
import AnySizeKernels
import Dispatch
import Foundation

struct Arguments {
    var values: [String: String] = [:]
    var flags: Set<String> = []

    init(_ arguments: ArraySlice<String>) {
        var i = arguments.startIndex
        while i < arguments.endIndex {
            let name = String(arguments[i].drop(while: { $0 == "-" }))
            if i + 1 < arguments.endIndex, !arguments[i + 1].hasPrefix("--") {
                values[name] = arguments[i + 1]
                i += 2
            } else {
                flags.insert(name)
                i += 1
            }
        }
    }

    func int(_ name: String, _ fallback: Int) -> Int { values[name].flatMap { Int($0) } ?? fallback }
}

/// Uniform values in [-2, 2) from a fixed linear congruential sequence.
func filled(_ shape: [Int], seed: UInt64) -> Tensor {
    let t = Tensor(zeros: shape)
    var state = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    for i in 0 ..< t.count {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        t.pointer[i] = Float(state >> 40) / Float(1 << 24) * 4 - 2
    }
    return t
}

func time(repeats: Int, warmup: Int, _ body: () -> Void) -> [Double] {
    for _ in 0 ..< warmup { body() }
    return (0 ..< repeats).map { _ in
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    }
}

func median(_ s: [Double]) -> Double {
    let v = s.sorted()
    return v.count % 2 == 1 ? v[v.count / 2] : (v[v.count / 2 - 1] + v[v.count / 2]) / 2
}

let command = CommandLine.arguments.dropFirst().first ?? "attention"
let args = Arguments(CommandLine.arguments.dropFirst(2))
let repeats = args.int("repeats", 5), warmup = args.int("warmup", 1)

switch command {
case "attention":
    let batch = args.int("batch", 2), heads = args.int("heads", 8)
    let queries = args.int("queries", 4096), keys = args.int("keys", 4096), d = args.int("head-dim", 40)
    let budget = args.int("budget-mb", 384) << 20
    let q = filled([batch, queries, heads * d], seed: 1)
    let k = filled([batch, keys, heads * d], seed: 2)
    let v = filled([batch, keys, heads * d], seed: 3)
    let chunking = AttentionChunking.fitting(bytes: budget, queries: queries, keys: keys, headDim: d)
    var entropy = 0.0
    let wantsEntropy = args.flags.contains("entropy")
    let precision: Precision = args.flags.contains("bf16") ? .bf16 : .fp32
    let seconds = time(repeats: repeats, warmup: warmup) {
        withUnsafeMutablePointer(to: &entropy) { e in
            _ = ScaledDotProductAttention.compute(query: q, key: k, value: v, heads: heads, chunking: chunking,
                                                  entropy: wantsEntropy ? e : nil, precision: precision)
        }
    }
    let flops = 4.0 * Double(queries * keys * d * heads * batch)
    print("{\"impl\":\"anysize\",\"batch\":\(batch),\"heads\":\(heads),\"queries\":\(queries),\"keys\":\(keys),"
        + "\"head_dim\":\(d),\"threads\":\(Parallel.threadCount),\"chunk\":\"\(chunking.queryChunk)x\(chunking.keyChunk)\","
        + "\"entropy\":\(wantsEntropy),\"precision\":\"\(precision.rawValue)\","
        + String(format: "\"seconds_median\":%.4f,\"seconds_min\":%.4f,\"gflops\":%.2f}",
                 median(seconds), seconds.min() ?? 0, flops / median(seconds) / 1e9))
case "gemm":
    // C[m, n] = A[m, k] B[k, n] (or B^T with --trans-b), leading dimensions as given (default: packed).
    let m = args.int("m", 64), n = args.int("n", 4096), k = args.int("k", 40)
    let transB = args.flags.contains("trans-b")
    let lda = args.int("lda", k), ldb = args.int("ldb", transB ? k : n), ldc = args.int("ldc", n)
    let a = filled([m * lda], seed: 7), b = filled([(transB ? n : k) * ldb], seed: 8), c = Tensor(zeros: [Parallel.threadCount * m * ldc])
    let threads = args.int("threads", Parallel.threadCount)
    let calls = args.int("calls", 100)
    let seconds = time(repeats: repeats, warmup: warmup) {
        if threads == 1 {
            MatMul.withSingleThreadedBLAS {
                Parallel.forEach(Parallel.threadCount) { w in
                    for _ in 0 ..< calls {
                        MatMul.gemm(transB: transB, m: m, n: n, k: k, a: a.pointer, lda: lda, b: b.pointer, ldb: ldb,
                                    c: c.pointer + w * m * ldc, ldc: ldc)
                    }
                }
            }
        } else {
            for _ in 0 ..< calls {
                MatMul.gemm(transB: transB, m: m, n: n, k: k, a: a.pointer, lda: lda, b: b.pointer, ldb: ldb,
                            c: c.pointer, ldc: ldc)
            }
        }
    }
    let flops = 2.0 * Double(m * n * k * calls) * Double(threads == 1 ? Parallel.threadCount : 1)
    print("{\"op\":\"gemm\",\"m\":\(m),\"n\":\(n),\"k\":\(k),\"transB\":\(transB),\"threads\":\(threads),"
        + String(format: "\"seconds_median\":%.4f,\"gflops\":%.2f}", median(seconds), flops / median(seconds) / 1e9))
case "bf16-gemm":
    // C[m, n] = A[m, k] B[k, n] three ways on all threads: float32 sgemm; bfloat16 with A converted from float32
    // per call (as a layer runs it, B packed once); bfloat16 with A already converted (the kernel alone).
    let m = args.int("m", 8192), n = args.int("n", 320), k = args.int("k", 320)
    let a = filled([m, k], seed: 7), b = filled([k, n], seed: 8), c = Tensor(zeros: [m, n])
    let packedB = BFloat16Panels(b.pointer, k: k, n: n, kStride: n, nStride: 1)
    let packedA = BFloat16Rows(a.pointer, rows: m, columns: k, sourceStride: k)
    let chunk = args.int("chunk", 256)
    let fp32 = time(repeats: repeats, warmup: warmup) {
        MatMul.gemm(m: m, n: n, k: k, a: a.pointer, lda: k, b: b.pointer, ldb: n, c: c.pointer, ldc: n)
    }
    func bf16(convert: Bool) -> [Double] {
        time(repeats: repeats, warmup: warmup) {
            Parallel.forRanges((m + chunk - 1) / chunk) { range in
                let rows = BFloat16Rows(rows: chunk, columns: k)
                for job in range {
                    let r0 = job * chunk, count = min(chunk, m - r0)
                    var source = UnsafePointer(packedA.storage.pointer + r0 * packedA.rowStride)
                    if convert {
                        rows.fill(from: a.pointer + r0 * k, rows: count, sourceStride: k)
                        source = UnsafePointer(rows.storage.pointer)
                    }
                    BFloat16MatMul.gemm(m: count, n: n, k: k, a: source, lda: rows.rowStride, b: packedB.storage.pointer,
                                        c: c.pointer + r0 * n, ldc: n, accumulate: false)
                }
            }
        }
    }
    let converted = bf16(convert: true), kernel = bf16(convert: false)
    let flops = 2.0 * Double(m * n * k)
    print("{\"op\":\"bf16-gemm\",\"m\":\(m),\"n\":\(n),\"k\":\(k),\"threads\":\(Parallel.threadCount),\"path\":\"\(BFloat16.path.rawValue)\","
        + String(format: "\"fp32_gflops\":%.1f,\"bf16_gflops\":%.1f,\"bf16_kernel_gflops\":%.1f,\"speedup\":%.2f}",
                 flops / median(fp32) / 1e9, flops / median(converted) / 1e9, flops / median(kernel) / 1e9,
                 median(fp32) / median(converted)))
case "bf16-conv":
    // One 3x3 stride-1 padding-1 layer four ways on all threads: float32 (AutomaticConvolution), bfloat16 weight
    // widened into float32 Winograd F(4x4, 3x3), bfloat16 im2col, bfloat16 Winograd F(2x2, 3x3).
    let batch = args.int("batch", 2), inC = args.int("in", 320), outC = args.int("out", inC), size = args.int("size", 64)
    let x = filled([batch, inC, size, size], seed: 9), w = filled([outC, inC, 3, 3], seed: 10), b = filled([outC], seed: 11)
    let fp32Layer = Conv2D(weight: w, bias: b, padding: 1), bf16Layer = Conv2D(bfloat16Weight: w, bias: b, padding: 1)
    let variants: [(String, () -> Tensor)] = [
        ("fp32", { fp32Layer(x) }),
        ("bf16_widened_winograd4", { WinogradConvolution().forward(x, layer: bf16Layer) }),
        ("bf16_im2col", { BFloat16Convolution(winogradTiles: nil).forward(x, layer: bf16Layer) }),
        ("bf16_winograd2", { BFloat16WinogradConvolution().forward(x, layer: bf16Layer) }),
    ]
    var fields: [String] = []
    for (name, body) in variants {
        fields.append(String(format: "\"%@_s\":%.4f", name, median(time(repeats: repeats, warmup: warmup) { _ = body() })))
    }
    print("{\"op\":\"bf16-conv\",\"batch\":\(batch),\"in\":\(inC),\"out\":\(outC),\"size\":\(size),"
        + "\"threads\":\(Parallel.threadCount),\"path\":\"\(BFloat16.path.rawValue)\"," + fields.joined(separator: ",") + "}")
case "group-norm":
    let batch = args.int("batch", 1), channels = args.int("channels", 128), size = args.int("size", 512)
    let groups = args.int("groups", 32)
    let x = filled([batch, channels, size, size], seed: 4)
    let w = filled([channels], seed: 5), b = filled([channels], seed: 6)
    let silu = args.flags.contains("silu")
    let seconds = time(repeats: repeats, warmup: warmup) {
        _ = Normalization.groupNorm(x, groups: groups, weight: w, bias: b, eps: 1e-6, silu: silu)
    }
    let gigabytes = Double(x.count * 8) / 1e9  // one read + one write at least
    print("{\"impl\":\"anysize\",\"op\":\"group-norm\",\"shape\":\"\(x.shape)\",\"silu\":\(silu),"
        + String(format: "\"seconds_median\":%.4f,\"seconds_min\":%.4f,\"min_traffic_gb_s\":%.2f}",
                 median(seconds), seconds.min() ?? 0, gigabytes / median(seconds)))
default:
    FileHandle.standardError.write(Data("unknown benchmark \(command): use attention or group-norm\n".utf8))
    exit(2)
}
