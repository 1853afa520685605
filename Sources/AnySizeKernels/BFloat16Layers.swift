import CAnySizeBF16
import Foundation

/// Linear layers and convolutions with bfloat16 weights: float32 activations are rounded to bfloat16 per call,
/// block by block on each worker thread, and multiplied by `BFloat16MatMul.gemm` (float32 accumulation).
extension MatMul {
    /// y = x W^T + b for x [..., in] float32, W^T held as bfloat16 panels [in, out], bias [out] float32.
    /// Token rows are cut into blocks of at most 128 (spread over the workers); each worker rounds its block
    /// of x to bfloat16 and multiplies it with the whole weight.
    public static func linear(_ x: Tensor, weight: BFloat16Panels, bias: Tensor?,
                              path: BFloat16Path = BFloat16.path) -> Tensor {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.linear, profileStart) }
        let inFeatures = x.shape.last ?? 0
        precondition(weight.k == inFeatures, "linear: input \(x.shape) does not fit bf16 weight [\(weight.k), \(weight.n)]")
        let outFeatures = weight.n
        let rows = x.count / max(inFeatures, 1)
        var outShape = x.shape
        outShape[outShape.count - 1] = outFeatures
        let out = Tensor(uninitialized: outShape)  // bias rows or a first product without accumulation
        let px = UnsafePointer(x.pointer)
        forRowBlocks(rows, columns: inFeatures) { a, r0, count in
            a.fill(from: px + r0 * inFeatures, rows: count, sourceStride: inFeatures)
            product(a.storage.pointer, lda: a.rowStride, rows: count, weight: weight, bias: bias,
                    into: out.pointer + r0 * outFeatures, path: path)
        }
        return out
    }

    /// y = x W^T + b for x already in bfloat16 rows ([rows, in], e.g. from `gegluBFloat16`): `linear` without the
    /// rounding pass. Returns [rows, out] float32.
    public static func linear(_ x: BFloat16Rows, weight: BFloat16Panels, bias: Tensor?,
                              path: BFloat16Path = BFloat16.path) -> Tensor {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.linear, profileStart) }
        precondition(weight.k == x.columns, "linear: input [\(x.rows), \(x.columns)] does not fit bf16 weight [\(weight.k), \(weight.n)]")
        let out = Tensor(uninitialized: [x.rows, weight.n])
        let px = UnsafePointer(x.storage.pointer)
        forRowBlocks(x.rows, columns: 0) { _, r0, count in
            product(px + r0 * x.rowStride, lda: x.rowStride, rows: count, weight: weight, bias: bias,
                    into: out.pointer + r0 * weight.n, path: path)
        }
        return out
    }

    /// The feed-forward's first half in bfloat16, GEGLU(x W^T + b) = h * gelu(g) with [h | g] = x W^T + b, returned
    /// as bfloat16 rows [rows, out / 2] for the second linear layer (`linear(_: BFloat16Rows, ...)`). Each worker
    /// keeps its block's float32 product (128 x out floats) in cache, applies GEGLU to it and rounds the result,
    /// so the [rows, out] float32 product never goes to memory. The values are those of
    /// `Activation.geglu(linear(x, ...))` rounded to bfloat16, exactly.
    public static func gegluBFloat16(_ x: Tensor, weight: BFloat16Panels, bias: Tensor?,
                                     path: BFloat16Path = BFloat16.path) -> BFloat16Rows {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.linear, profileStart) }
        let inFeatures = x.shape.last ?? 0, twoD = weight.n, d = twoD / 2
        precondition(weight.k == inFeatures && twoD % 2 == 0,
                     "geglu: input \(x.shape) does not fit bf16 weight [\(weight.k), \(weight.n)] (even output needed)")
        let rows = x.count / max(inFeatures, 1)
        let out = BFloat16Rows(rows: rows, columns: d)
        let px = UnsafePointer(x.pointer), po = out.storage.pointer, outStride = out.rowStride
        forRowBlocks(rows, columns: inFeatures, product: twoD) { a, r0, count, scratch in
            a.fill(from: px + r0 * inFeatures, rows: count, sourceStride: inFeatures)
            product(a.storage.pointer, lda: a.rowStride, rows: count, weight: weight, bias: bias, into: scratch, path: path)
            for r in 0 ..< count {  // h = h * gelu(g) in place, as Activation.geglu computes it
                let hidden = scratch + r * twoD, gate = hidden + d
                for j in 0 ..< d { hidden[j] = hidden[j] * Activation.gelu(gate[j]) }
            }
            anysize_bf16_pack_rows(scratch, twoD, count, d, po + r0 * outStride, outStride)
        }
        return out
    }

    /// c [rows, n] (row stride n) = bias + A W^T for bfloat16 rows A (lda) and W^T as panels [k, n].
    static func product(_ a: UnsafePointer<UInt16>, lda: Int, rows: Int, weight: BFloat16Panels, bias: Tensor?,
                        into c: UnsafeMutablePointer<Float>, path: BFloat16Path) {
        let n = weight.n
        if let bias {
            precondition(bias.count == n, "linear: bias \(bias.shape) for \(n) outputs")
            for r in 0 ..< rows { (c + r * n).update(from: bias.pointer, count: n) }
        }
        BFloat16MatMul.gemm(m: rows, n: n, k: weight.k, a: a, lda: lda, b: weight.storage.pointer, c: c, ldc: n,
                            accumulate: bias != nil, path: path)
    }

    /// Runs `body(a, r0, count)` for the linear layers' row blocks (at most 128 rows, a multiple of 8, spread
    /// over the workers), with each worker's bfloat16 rows `a` for a block of `columns` inputs.
    static func forRowBlocks(_ rows: Int, columns: Int, _ body: (BFloat16Rows, Int, Int) -> Void) {
        forRowBlocks(rows, columns: columns, product: 0) { a, r0, count, _ in body(a, r0, count) }
    }

    /// `forRowBlocks` with a per-worker float32 scratch of block x `product` values for the block's product.
    static func forRowBlocks(_ rows: Int, columns: Int, product: Int,
                             _ body: (BFloat16Rows, Int, Int, UnsafeMutablePointer<Float>) -> Void) {
        let workers = Parallel.threadCount
        let block = max(8, min(128, (rows + workers - 1) / workers + 7) / 8 * 8)
        let blocks = (rows + block - 1) / block
        withSingleThreadedBLAS {  // the widened path's sgemm, one per worker
            Parallel.forRanges(blocks) { range in
                let a = BFloat16Rows(rows: block, columns: columns)
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, block * product))
                defer { scratch.deallocate() }
                for job in range {
                    let r0 = job * block
                    body(a, r0, min(block, rows - r0), scratch)
                }
            }
        }
    }
}

/// Convolution with a bfloat16 weight (`Conv2D(bfloat16Weight:)`), as im2col matrix products: per batch element
/// out [O, Ho*Wo] = W [O, k*k*I] x cols [k*k*I, Ho*Wo], the columns of each band of output pixels packed to
/// bfloat16 panels on the worker that multiplies them, in one pass from the image
/// (`anysize_bf16_pack_im2col`; 1x1 stride-1 layers pack the input pixels directly).
///
/// 3x3 stride-1 padding-1 layers with at least 48 input channels and at least `winogradTiles` output tiles run
/// `BFloat16WinogradConvolution` instead: Winograd F(2x2, 3x3) with bfloat16 products, 2.25x fewer multiply-adds
/// (docs/PERFORMANCE.md, "bf16": 0.45-0.80x of im2col's time per layer from the 64x64 level down to the 8x8
/// level at batch 2, 32 tiles; slower below, where transforming the weights on every call dominates).
/// A float32 layer given to this algorithm runs `AutomaticConvolution`.
public struct BFloat16Convolution: ConvolutionAlgorithm {
    /// Output pixels per packed band: 2 x 512 x k*k*I bytes of panels (L2-sized at SD's channel counts).
    public let bandPixels: Int
    /// From this many 2x2 output tiles on (`BFloat16WinogradConvolution.tileCount`), 3x3 stride-1 layers with at
    /// least 48 input channels run `BFloat16WinogradConvolution`; nil: always im2col.
    public let winogradTiles: Int?

    /// Defaults: bands of 512 pixels; Winograd from `defaultWinogradTiles` tiles (`ANYSIZE_BF16_WINOGRAD_TILES`
    /// overrides it for measurements: a tile count, or `off`).
    public init(bandPixels: Int = 512, winogradTiles: Int? = BFloat16Convolution.defaultWinogradTiles) {
        precondition(bandPixels > 0, "bandPixels must be positive")
        self.bandPixels = bandPixels
        self.winogradTiles = winogradTiles
    }

    /// 32 tiles (the UNet's 8x8 level at batch 2 and every larger grid; 16 tiles, the 8x8 level at batch 1, stay
    /// on im2col, slightly faster there: 0.011 s against 0.012 s), or the environment's `ANYSIZE_BF16_WINOGRAD_TILES`.
    public static let defaultWinogradTiles: Int? = {
        guard let value = ProcessInfo.processInfo.environment["ANYSIZE_BF16_WINOGRAD_TILES"] else { return 32 }
        return Int(value)
    }()

    public func forward(_ input: Tensor, layer: Conv2D) -> Tensor {
        if let winogradTiles, BFloat16WinogradConvolution.supports(layer), layer.inChannels >= 48, input.rank == 4,
           BFloat16WinogradConvolution.tileCount(batch: input.shape[0], height: input.shape[2],
                                                 width: input.shape[3]) >= winogradTiles {
            return BFloat16WinogradConvolution().forward(input, layer: layer)
        }
        return forward(input, layer: layer, dilation: 1)
    }

    /// out = bias + conv(input [B, I, H, W]) with taps `dilation` apart and padding `layer.padding * dilation`.
    public func forward(_ input: Tensor, layer: Conv2D, dilation: Int, path: BFloat16Path = BFloat16.path) -> Tensor {
        guard let weight = layer.bfloat16Weight else {
            return dilation == 1 ? AutomaticConvolution().forward(input, layer: layer)
                : Im2ColConvolution().forward(input, layer: layer, dilation: dilation)
        }
        precondition(input.rank == 4 && input.shape[1] == layer.inChannels,
                     "Conv2D expects [B, \(layer.inChannels), H, W], got \(input.shape)")
        let batch = input.shape[0], height = input.shape[2], width = input.shape[3]
        let (outH, outW) = layer.outputSize(height: height, width: width, dilation: dilation)
        precondition(outH > 0 && outW > 0,
                     "Conv2D input \(input.shape) is smaller than its \(layer.kernelSize)x\(layer.kernelSize) kernel")
        let o = layer.outChannels, depth = weight.columns, pixels = outH * outW
        let inPlane = layer.inChannels * height * width, outPlane = o * pixels
        let out = Tensor(uninitialized: [batch, o, outH, outW])
        let po = out.pointer, px = UnsafePointer(input.pointer), pw = UnsafePointer(weight.storage.pointer)
        let pb = layer.bias.map { UnsafePointer($0.pointer) }
        let direct = layer.kernelSize == 1 && layer.stride == 1 && layer.padding == 0
        // Bands of output pixels, at least one per worker when the image allows.
        let workers = Parallel.threadCount
        let perWorker = (batch * pixels + workers - 1) / workers
        let bandSize = max(1, min(bandPixels, perWorker))
        let bandsPerImage = (pixels + bandSize - 1) / bandSize
        let im2col = Im2ColConvolution()  // (its bias fill)
        MatMul.withSingleThreadedBLAS {
            Parallel.forRanges(batch * bandsPerImage) { range in
                let panels = BFloat16Storage(count: BFloat16Panels.elements(k: depth, n: bandSize))
                for job in range {
                    let b = job / bandsPerImage, band = job % bandsPerImage
                    let start = band * bandSize, count = min(bandSize, pixels - start)
                    if direct {
                        // B [I, count] = the input pixels start ..< start + count of every channel
                        packPanels(px + b * inPlane + start, kStride: pixels, k: depth, n: count, into: panels)
                    } else {
                        // B [k*k*I, count] = the im2col columns of these output pixels, packed in one pass
                        anysize_bf16_pack_im2col(px + b * inPlane, layer.inChannels, height, width, layer.kernelSize,
                                                 layer.stride, layer.padding * dilation, dilation, outW, start, count,
                                                 panels.pointer)
                    }
                    // out_b[:, start ..< start + count] = bias + W [O, depth] x B [depth, count]
                    let c = po + b * outPlane + start
                    let beta = im2col.fillBias(pb, c, rows: o, columns: count, ldc: pixels)
                    BFloat16MatMul.gemm(m: o, n: count, k: depth, a: pw, lda: weight.rowStride,
                                        b: panels.pointer, c: c, ldc: pixels, accumulate: beta != 0, path: path)
                }
            }
        }
        return out
    }

    @inline(__always)
    private func packPanels(_ source: UnsafePointer<Float>, kStride: Int, k: Int, n: Int, into panels: BFloat16Storage) {
        BFloat16Panels.pack(source, k: k, n: n, kStride: kStride, nStride: 1, into: panels.pointer)
    }
}
