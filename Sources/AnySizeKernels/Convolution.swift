/// How a prepared `Conv2D` layer computes its output; swappable per layer.
public protocol ConvolutionAlgorithm: Sendable {
    /// out [B, O, Ho, Wo] = conv(input [B, I, H, W]) for the prepared layer.
    func forward(_ input: Tensor, layer: Conv2D) -> Tensor
}

/// A 2-D convolution layer (PyTorch `nn.Conv2d`, square kernel, equal stride and zero padding on both axes).
///
/// The weight is kept taps-major, [O, k, k, I] (input channels last), reordered once from PyTorch's [O, I, k, k]
/// when the layer is built and with no other copy: im2col uses it in place as the GEMM matrix [O, k*k*I] (its
/// columns packed in the same order), Winograd reads each tap's input channels as contiguous vectors.
public final class Conv2D: @unchecked Sendable {
    /// O, I, k (from the weight), and the stride and zero padding applied on both spatial axes.
    public let outChannels: Int, inChannels: Int, kernelSize: Int, stride: Int, padding: Int
    /// [O, k, k, I]: `weight[o, ky, kx, i]` is PyTorch's `weight[o, i, ky, kx]`. A bfloat16 layer holds no float32
    /// copy: this widens its `bfloat16Weight` on each access (for algorithms other than `BFloat16Convolution`).
    public var weight: Tensor {
        switch storedWeight {
        case .float32(let w): return w
        case .bfloat16(let w): return w.widened().reshaped([outChannels, kernelSize, kernelSize, inChannels])
        }
    }
    /// The weight as bfloat16 rows [O, k*k*I] (taps-major), or nil for a float32 layer.
    public var bfloat16Weight: BFloat16Rows? {
        if case .bfloat16(let w) = storedWeight { return w }
        return nil
    }
    private enum Storage { case float32(Tensor), bfloat16(BFloat16Rows) }
    private let storedWeight: Storage
    /// [O], or nil for a convolution without bias.
    public let bias: Tensor?
    /// The algorithm `callAsFunction` runs.
    public let algorithm: ConvolutionAlgorithm

    /// Prepares a layer from PyTorch-layout parameters; by default the algorithm is chosen per call
    /// (`AutomaticConvolution`: Winograd for large 3x3 stride-1 padding-1 inputs, im2col otherwise).
    public init(weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0,
                algorithm: ConvolutionAlgorithm = AutomaticConvolution()) {
        Self.checkGeometry(weight: weight, bias: bias, stride: stride, padding: padding)
        outChannels = weight.shape[0]
        inChannels = weight.shape[1]
        kernelSize = weight.shape[2]
        storedWeight = .float32(Self.tapsMajor(weight))
        self.bias = bias
        self.stride = stride
        self.padding = padding
        self.algorithm = algorithm
    }

    /// Prepares a layer whose weight is held in bfloat16 only (rounded to nearest even from the float32
    /// `weight` [O, I, k, k], which the layer does not keep); runs `BFloat16Convolution`.
    public init(bfloat16Weight weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0) {
        Self.checkGeometry(weight: weight, bias: bias, stride: stride, padding: padding)
        outChannels = weight.shape[0]
        inChannels = weight.shape[1]
        kernelSize = weight.shape[2]
        let taps = Self.tapsMajor(weight)
        let depth = inChannels * kernelSize * kernelSize
        storedWeight = .bfloat16(BFloat16Rows(taps.pointer, rows: outChannels, columns: depth, sourceStride: depth))
        self.bias = bias
        self.stride = stride
        self.padding = padding
        algorithm = BFloat16Convolution()
    }

    /// Traps on a weight that is not [O, I, k, k] with square k > 0, a bias that is not [O], or a bad stride or
    /// padding (programming errors: checkpoints are validated against their configs before layers are built).
    private static func checkGeometry(weight: Tensor, bias: Tensor?, stride: Int, padding: Int) {
        precondition(weight.rank == 4 && weight.shape[2] == weight.shape[3] && weight.shape[2] > 0,
                     "Conv2D weight must be [O, I, k, k], got \(weight.shape)")
        precondition(stride > 0 && padding >= 0, "Conv2D stride \(stride) / padding \(padding)")
        if let bias { precondition(bias.count == weight.shape[0], "Conv2D bias \(bias.shape) for \(weight.shape[0]) outputs") }
    }

    /// [O, I, k, k] -> [O, k, k, I] (the same tensor when k = 1 or I = 1, where the two layouts coincide).
    public static func tapsMajor(_ weight: Tensor) -> Tensor {
        let o = weight.shape[0], i = weight.shape[1], taps = weight.shape[2] * weight.shape[3]
        let shape = [o, weight.shape[2], weight.shape[3], i]
        if taps == 1 || i == 1 { return weight.reshaped(shape) }
        let out = Tensor(uninitialized: shape)
        let src = UnsafePointer(weight.pointer), dst = out.pointer
        Parallel.forRanges(o) { range in
            for c in range {
                let from = src + c * i * taps, to = dst + c * i * taps
                for t in 0 ..< taps {
                    for j in 0 ..< i { to[t * i + j] = from[j * taps + t] }
                }
            }
        }
        return out
    }

    /// Output spatial size for an input of `height` x `width`: (n + 2p - k) / s + 1 per axis; with taps
    /// `dilation` pixels apart and padding p * dilation, (n + 2pd - d(k - 1) - 1) / s + 1.
    public func outputSize(height: Int, width: Int, dilation: Int = 1) -> (height: Int, width: Int) {
        let p = padding * dilation, span = dilation * (kernelSize - 1) + 1
        return ((height + 2 * p - span) / stride + 1, (width + 2 * p - span) / stride + 1)
    }

    /// [B, I, H, W] -> [B, O, (H + 2p - k) / s + 1, (W + 2p - k) / s + 1].
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.convolution, profileStart) }
        return algorithm.forward(x, layer: self)
    }
}

/// Chooses per call among the three algorithms for 3x3 stride-1 padding-1 layers with at least
/// `minimumInputChannels` inputs: `WinogradConvolution` from `largeTiles` output tiles (UNet 64x64 level at
/// batch 2, VAE decoder), `BlockedWinogradConvolution` from `smallTiles` up to that (UNet 32x32 and 16x16 levels),
/// im2col + GEMM for fewer tiles (8x8 level at batch 2: too few tiles to pay for the weight transform) and for
/// every other layer (strided, 1x1, few input channels such as a `conv_in` on latents). Builds without FMA
/// and AVX-512 (`MicroKernel.registerTilesPayOff` false) use im2col instead of the blocked algorithm.
///
/// Default thresholds from `tools/conv-bench` (docs/PERFORMANCE.md), speed-ups over im2col measured in one run:
/// Winograd 2.25x / 1.83x at 256 / 512 tiles but 1.27x at 128 and 0.93x at 32; blocked Winograd 1.67x / 1.73x /
/// 1.84x at 128 / 64 / 32 tiles and 1.3x at 16, 0.79x at 8.
public struct AutomaticConvolution: ConvolutionAlgorithm {
    /// The algorithm for 3x3 stride-1 padding-1 layers on large inputs.
    public let winograd: WinogradConvolution
    /// The algorithm for 3x3 stride-1 padding-1 layers on small inputs.
    public let blockedWinograd: BlockedWinogradConvolution
    /// The algorithm for every other call.
    public let im2col: Im2ColConvolution
    /// Fewest 4x4 output tiles (`WinogradConvolution.tileCount`) for which a Winograd algorithm is used.
    public let smallTiles: Int
    /// Fewest tiles for which `WinogradConvolution` rather than `BlockedWinogradConvolution` is used.
    public let largeTiles: Int
    /// Fewest input channels for which a Winograd algorithm is used.
    public let minimumInputChannels: Int

    /// Default settings: blocked Winograd from 16 tiles, Winograd from 256 tiles, both from 48 input channels.
    public init() {
        self.init(winograd: WinogradConvolution(), blockedWinograd: BlockedWinogradConvolution(),
                  im2col: Im2ColConvolution(), smallTiles: 16, largeTiles: 256, minimumInputChannels: 48)
    }

    public init(winograd: WinogradConvolution, blockedWinograd: BlockedWinogradConvolution,
                im2col: Im2ColConvolution, smallTiles: Int, largeTiles: Int, minimumInputChannels: Int) {
        self.winograd = winograd
        self.blockedWinograd = blockedWinograd
        self.im2col = im2col
        self.smallTiles = smallTiles
        self.largeTiles = largeTiles
        self.minimumInputChannels = minimumInputChannels
    }

    /// The algorithm a call of `layer` on an input of `shape` [B, I, H, W] runs.
    public func algorithm(layer: Conv2D, inputShape shape: [Int]) -> ConvolutionAlgorithm {
        guard WinogradConvolution.supports(layer), shape.count == 4,
              layer.inChannels >= minimumInputChannels else { return im2col }
        let tiles = WinogradConvolution.tileCount(batch: shape[0], height: shape[2], width: shape[3])
        if tiles >= largeTiles { return winograd }
        // Without FMA and 32 vector registers the blocked kernel spills its tile: 0.57x of im2col portable,
        // 1.03-1.08x with AVX2 code (not worth its larger rounding error).
        return tiles >= smallTiles && MicroKernel.registerTilesPayOff ? blockedWinograd : im2col
    }

    /// Whether a call of `layer` on an input of `shape` [B, I, H, W] runs one of the Winograd algorithms.
    public func usesWinograd(layer: Conv2D, inputShape shape: [Int]) -> Bool {
        !(algorithm(layer: layer, inputShape: shape) is Im2ColConvolution)
    }

    /// out [B, O, Ho, Wo] = bias + conv(input [B, I, H, W]) by the chosen algorithm.
    public func forward(_ input: Tensor, layer: Conv2D) -> Tensor {
        algorithm(layer: layer, inputShape: input.shape).forward(input, layer: layer)
    }
}

/// Convolution as matrix products: for each batch element, out [O, Ho*Wo] = W [O, k*k*I] x cols [k*k*I, Ho*Wo],
/// where cols (im2col) holds the input patch of every output pixel (rows in the weight's taps-major order).
///
/// The output is cut into bands of whole output rows; each worker thread packs the columns of its bands
/// and multiplies them with a single-threaded GEMM, so packing runs in parallel and overlaps the products,
/// and the column buffers together stay below `maxColumnBytes` for any image size. Every output element
/// is the same dot product whatever the banding; only BLAS's choice of kernel for small products may
/// change its rounding. 1x1 stride-1 unpadded convolutions multiply the input directly, in pixel or channel slices.
public struct Im2ColConvolution: ConvolutionAlgorithm {
    /// Upper bound on all column buffers together (at least one output row per worker is always packed).
    public let maxColumnBytes: Int

    /// Column buffers of at most 64 MB.
    public init() { self.init(maxColumnBytes: 64 << 20) }

    /// Column buffers of at most `maxColumnBytes` (but at least one output row per worker).
    public init(maxColumnBytes: Int) {
        precondition(maxColumnBytes > 0, "maxColumnBytes must be positive")
        self.maxColumnBytes = maxColumnBytes
    }

    /// out [B, O, Ho, Wo] = bias + conv(input [B, I, H, W]) for `layer`.
    public func forward(_ input: Tensor, layer: Conv2D) -> Tensor {
        forward(input, layer: layer, dilation: 1)
    }

    /// out = bias + conv(input [B, I, H, W]) for `layer` with its taps `dilation` pixels apart and zero padding
    /// `layer.padding * dilation` (PyTorch `dilation=d, padding=p*d`: a 3x3 padding-1 layer keeps its output
    /// size): out [B, O, (H + 2pd - d(k - 1) - 1) / s + 1, likewise W].
    public func forward(_ input: Tensor, layer: Conv2D, dilation: Int) -> Tensor {
        precondition(input.rank == 4 && input.shape[1] == layer.inChannels,
                     "Conv2D expects [B, \(layer.inChannels), H, W], got \(input.shape)")
        precondition(dilation >= 1, "Conv2D dilation \(dilation)")
        let batch = input.shape[0], height = input.shape[2], width = input.shape[3]
        let (outH, outW) = layer.outputSize(height: height, width: width, dilation: dilation)
        precondition(outH > 0 && outW > 0,
                     "Conv2D input \(input.shape) is smaller than its \(layer.kernelSize)x\(layer.kernelSize) kernel")
        let o = layer.outChannels, k = layer.kernelSize
        let depth = layer.inChannels * k * k        // GEMM inner dimension
        let pixels = outH * outW
        let inPlane = layer.inChannels * height * width, outPlane = o * pixels
        let out = Tensor(uninitialized: [batch, o, outH, outW])  // bias fill or beta 0
        let weight = layer.weight  // (a bfloat16 layer widens it for this call: keep it alive to the end)
        defer { withExtendedLifetime(weight) {} }
        let po = out.pointer, px = UnsafePointer(input.pointer), pw = UnsafePointer(weight.pointer)
        let pb = layer.bias.map { UnsafePointer($0.pointer) }
        let workers = Parallel.threadCount

        if k == 1 && layer.stride == 1 && layer.padding == 0 {  // (dilation is moot for a 1x1 kernel)
            // out_b = W [O, I] x x_b [I, H*W], cut per worker into pixel slices (or channel slices when
            // there are few pixels).
            let splitPixels = pixels >= 64 * workers
            let parts = splitPixels ? min(workers, pixels) : min(workers, max(1, o / 16))
            let size = splitPixels ? pixels : o
            let perPart = (size + parts - 1) / parts
            MatMul.withSingleThreadedBLAS {
                Parallel.forRanges(batch * parts) { range in
                    for job in range {
                        let b = job % batch, start = (job / batch) * perPart, count = min(perPart, size - start)
                        if count <= 0 { continue }
                        let src = px + b * inPlane, dst = po + b * outPlane
                        if splitPixels {
                            let c = dst + start
                            let beta = fillBias(pb, c, rows: o, columns: count, ldc: pixels)
                            MatMul.gemm(m: o, n: count, k: depth, a: pw, lda: depth, b: src + start, ldb: pixels,
                                        beta: beta, c: c, ldc: pixels)
                        } else {
                            let c = dst + start * pixels
                            let beta = fillBias(pb.map { $0 + start }, c, rows: count, columns: pixels, ldc: pixels)
                            MatMul.gemm(m: count, n: pixels, k: depth, a: pw + start * depth, lda: depth, b: src,
                                        ldb: pixels, beta: beta, c: c, ldc: pixels)
                        }
                    }
                }
            }
            return out
        }

        // Bands of output rows: enough for every worker, each within its share of the buffer budget.
        let rowBytes = depth * outW * MemoryLayout<Float>.stride
        let budgetRows = max(1, maxColumnBytes / max(workers, 1) / rowBytes)
        let bandsPerImage = max((outH + budgetRows - 1) / budgetRows, min(outH, (workers + batch - 1) / batch))
        let bandRows = (outH + bandsPerImage - 1) / bandsPerImage
        let bands = (outH + bandRows - 1) / bandRows
        MatMul.withSingleThreadedBLAS {
            Parallel.forRanges(batch * bands) { range in
                let columns = UnsafeMutablePointer<Float>.allocate(capacity: depth * bandRows * outW)
                defer { columns.deallocate() }
                for job in range {
                    let b = job / bands, y0 = (job % bands) * bandRows, rows = min(bandRows, outH - y0)
                    pack(px + b * inPlane, layer: layer, dilation: dilation, height: height, width: width,
                         outWidth: outW, firstRow: y0, rows: rows, into: columns)
                    // out_b[:, y0 ..< y0 + rows, :] = bias + W [O, k*k*I] x cols [k*k*I, rows*Wo]
                    let c = po + b * outPlane + y0 * outW
                    let beta = fillBias(pb, c, rows: o, columns: rows * outW, ldc: pixels)
                    MatMul.gemm(m: o, n: rows * outW, k: depth, a: pw, lda: depth, b: columns, ldb: rows * outW,
                                beta: beta, c: c, ldc: pixels)
                }
            }
        }
        return out
    }

    /// c[o, 0 ..< columns] = bias[o] for every output channel; returns the GEMM beta (1 with bias, 0 without).
    @inline(__always)
    func fillBias(_ bias: UnsafePointer<Float>?, _ c: UnsafeMutablePointer<Float>, rows: Int, columns: Int,
                  ldc: Int) -> Float {
        guard let bias else { return 0 }
        for o in 0 ..< rows { (c + o * ldc).update(repeating: bias[o], count: columns) }
        return 1
    }

    /// cols[(ky*k + kx)*I + i, (y - firstRow)*Wo + x] = in[i, y*s + ky*d - p, x*s + kx*d - p] (0 outside the
    /// image; p = layer.padding * d) for output rows firstRow ..< firstRow + rows.
    func pack(_ src: UnsafePointer<Float>, layer: Conv2D, dilation d: Int = 1, height: Int, width: Int,
              outWidth: Int, firstRow: Int, rows: Int, into cols: UnsafeMutablePointer<Float>) {
        let k = layer.kernelSize, s = layer.stride, p = layer.padding * d
        let n = rows * outWidth
        for r in 0 ..< layer.inChannels * k * k {
            let i = r % layer.inChannels, ky = r / layer.inChannels / k * d, kx = (r / layer.inChannels) % k * d
            let plane = src + i * height * width
            // Output columns x whose input column x*s + kx - p lies inside [0, width).
            let lead = p - kx
            let xLo = lead <= 0 ? 0 : min(outWidth, (lead + s - 1) / s)
            let last = width - 1 + lead
            let xHi = last < 0 ? 0 : min(outWidth, last / s + 1)
            let dstRow = cols + r * n
            for yy in 0 ..< rows {
                let iy = (firstRow + yy) * s + ky - p
                let d = dstRow + yy * outWidth
                guard iy >= 0 && iy < height && xLo < xHi else {
                    d.update(repeating: 0, count: outWidth)
                    continue
                }
                let srcRow = plane + iy * width - lead
                if xLo > 0 { d.update(repeating: 0, count: xLo) }
                if s == 1 {
                    (d + xLo).update(from: srcRow + xLo, count: xHi - xLo)
                } else {
                    for x in xLo ..< xHi { d[x] = srcRow[x * s] }
                }
                if xHi < outWidth { (d + xHi).update(repeating: 0, count: outWidth - xHi) }
            }
        }
    }
}
