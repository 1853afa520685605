import CAnySizeBF16

/// 3x3 stride-1 padding-1 convolution of a bfloat16 layer by Winograd's F(2x2, 3x3) with bfloat16 products.
///
/// Output tiles are 2x2 pixels; tile t of channel o is
///   Y = A^T [ sum_i (G g_oi G^T) ⊙ (B^T d_it B) ] A + bias_o,
/// with d_it the 4x4 input patch (zero outside the image); the matrices use the points 0, 1, -1 and infinity
/// (`Winograd2.c`). For each of the 16 positions ξ of the 4x4 transformed tile that is one matrix product
///   M_ξ [O, tiles] = U_ξ [O, I] x V_ξ [I, tiles]
/// with U_ξ and V_ξ rounded to bfloat16 and float32 sums (`BFloat16MatMul.gemm`): 2.25x fewer multiply-adds than
/// direct convolution, at the bfloat16 kernel's rate.
///
/// Why F(2x2, 3x3) and not the F(4x4, 3x3) of the float32 path: rounding the transformed operands to bfloat16 is
/// amplified by the output transform's cancellations. Measured on SD-sized layers (SiLU inputs, uniform weights
/// of std 1/sqrt(9 I), float64 reference; docs/PERFORMANCE.md): relative RMS error 3.8e-3 for F(2x2, 3x3) against
/// 2.4e-3 for direct bfloat16 convolution, but 2.4e-2 for F(4x4, 3x3) (1.3e-2 for F(3x3, 3x3)), ten times the
/// direct error.
///
/// Work split and memory (nothing kept between calls; the weights are transformed on every call):
/// - many tiles (more than two blocks of `tilesPerBlock`): U for the whole layer (16 x O x I bfloat16, 52 MB at
///   1280 x 1280 channels) is transformed once; the workers take blocks of tiles, each holding V for its block
///   and M [16, O, block] float32 for the products;
/// - few tiles (the UNet's 16x16 and 8x8 levels): one block, its output channels split between the workers, and
///   each worker transforms only its own channels' weights, `rowChunk` channels at a time, right before their
///   products (so no worker reads U from memory, and no U is shared: measured 1.8x faster at 16x16 than the
///   shared U, which spent more time moving U than multiplying).
public struct BFloat16WinogradConvolution: ConvolutionAlgorithm {
    /// Tiles per block: the N of each product (a multiple of 16, the kernel's panel width).
    public let tilesPerBlock: Int

    /// Output channels whose transformed weights a worker holds at once on small grids (16 x 64 x I bfloat16).
    static let rowChunk = 64

    /// Blocks of 96 tiles (two 48-column tiles of the bfloat16 kernel).
    public init(tilesPerBlock: Int = 96) {
        precondition(tilesPerBlock > 0 && tilesPerBlock % 16 == 0, "tilesPerBlock must be a positive multiple of 16")
        self.tilesPerBlock = tilesPerBlock
    }

    /// Number of 2x2 output tiles for a [B, I, H, W] input: B * ceil(H / 2) * ceil(W / 2).
    public static func tileCount(batch: Int, height: Int, width: Int) -> Int {
        batch * ((height + 1) / 2) * ((width + 1) / 2)
    }

    /// Whether `layer` can run here: a bfloat16 layer with a 3x3 kernel, stride 1 and padding 1.
    public static func supports(_ layer: Conv2D) -> Bool {
        WinogradConvolution.supports(layer) && layer.bfloat16Weight != nil
    }

    public func forward(_ input: Tensor, layer: Conv2D) -> Tensor { forward(input, layer: layer, path: BFloat16.path) }

    /// out [B, O, H, W] = bias + conv3x3(input [B, I, H, W]) for a layer that `supports` this algorithm; the
    /// products take `path` (the transforms give the same values on every path).
    public func forward(_ input: Tensor, layer: Conv2D, path: BFloat16Path) -> Tensor {
        guard let weight = layer.bfloat16Weight else {
            preconditionFailure("BFloat16WinogradConvolution needs a bfloat16 layer (Conv2D(bfloat16Weight:))")
        }
        let (batch, height, width) = WinogradConvolution.checkedGeometry(input, layer: layer,
                                                                         algorithm: "BFloat16WinogradConvolution")
        let i = layer.inChannels, o = layer.outChannels
        let tiles = Self.tileCount(batch: batch, height: height, width: width)
        let out = Tensor(uninitialized: [batch, o, height, width])  // every pixel written by one tile

        let lda = (i + 1) / 2 * 2
        let pw = UnsafePointer(weight.storage.pointer), weightStride = weight.rowStride
        /// U_ξ for output channels `rows` into `u` (plane ξ at u + ξ * plane, rows up to a multiple of 8, the
        /// kernel's tile height, zero past the layer's channels).
        func transformWeights(_ rows: Range<Int>, into u: UnsafeMutablePointer<UInt16>, plane: Int) {
            anysize_bf16_winograd2_weights(pw + rows.lowerBound * weightStride, weightStride, i, rows.count, u, lda, plane)
            let padding = BFloat16Rows.paddedRows(rows.count) - rows.count
            if padding > 0 { for xi in 0 ..< 16 { (u + xi * plane + rows.count * lda).update(repeating: 0, count: padding * lda) } }
        }

        // Few tiles (at most two blocks): one block, its output channels split between the workers, each
        // transforming only its own channels' weights, `rowChunk` at a time (U stays in cache for its products).
        // Many tiles: the weights transformed once for the call (U shared), the tile blocks spread over the workers.
        let workers = Parallel.threadCount
        let few = tiles <= 2 * tilesPerBlock
        let blockTiles = few ? (tiles + 15) / 16 * 16
            : min(tilesPerBlock, max(16, ((tiles + workers - 1) / workers + 15) / 16 * 16))
        let blocks = (tiles + blockTiles - 1) / blockTiles
        let groups = BFloat16Rows.paddedRows(o) / 8
        let splits = few ? max(1, min(workers, groups)) : 1
        let splitRows = (groups + splits - 1) / splits * 8
        let rowChunk = few ? min(Self.rowChunk, splitRows) : splitRows
        let sharedPlane = BFloat16Rows.paddedRows(o) * lda
        let shared = UnsafeMutablePointer<UInt16>.allocate(capacity: few ? 0 : 16 * sharedPlane)
        defer { shared.deallocate() }
        if !few {
            Parallel.forRanges(groups) { range in
                let rows = 8 * range.lowerBound ..< min(8 * range.upperBound, o)
                transformWeights(rows, into: shared + rows.lowerBound * lda, plane: sharedPlane)
            }
        }

        let vPlane = BFloat16Panels.elements(k: i, n: blockTiles), ld = blockTiles
        let px = UnsafePointer(input.pointer), po = out.pointer, pb = layer.bias.map { UnsafePointer($0.pointer) }
        let imageStride = o * height * width, plane = height * width
        MatMul.withSingleThreadedBLAS {  // (the widened path's sgemm runs on each worker)
            Parallel.forRanges(blocks * splits) { range in
                let v = UnsafeMutablePointer<UInt16>.allocate(capacity: 16 * vPlane)
                let m = UnsafeMutablePointer<Float>.allocate(capacity: 16 * rowChunk * ld)
                let localPlane = BFloat16Rows.paddedRows(rowChunk) * lda
                let local = UnsafeMutablePointer<UInt16>.allocate(capacity: few ? 16 * localPlane : 0)
                defer {
                    v.deallocate()
                    m.deallocate()
                    local.deallocate()
                }
                for job in range {
                    let block = job / splits, r0 = (job % splits) * splitRows
                    let first = block * blockTiles, count = min(blockTiles, tiles - first)
                    if r0 >= o { continue }
                    anysize_bf16_winograd2_input(px, i, height, width, first, count, v, vPlane)
                    for c0 in stride(from: r0, to: min(r0 + splitRows, o), by: rowChunk) {
                        let rows = min(rowChunk, o - c0)
                        if few { transformWeights(c0 ..< c0 + rows, into: local, plane: localPlane) }
                        let u = UnsafePointer(few ? local : shared + c0 * lda), uPlane = few ? localPlane : sharedPlane
                        for xi in 0 ..< 16 {
                            BFloat16MatMul.gemm(m: rows, n: count, k: i, a: u + xi * uPlane, lda: lda, b: v + xi * vPlane,
                                                c: m + xi * rows * ld, ldc: ld, accumulate: false, path: path)
                        }
                        anysize_winograd2_output(m, ld, rows * ld, rows, pb.map { $0 + c0 }, po + c0 * plane, imageStride,
                                                 height, width, first, count)
                    }
                }
            }
        }
        return out
    }
}
