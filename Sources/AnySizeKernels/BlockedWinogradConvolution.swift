/// Winograd F(4x4, 3x3) for 3x3 stride-1 padding-1 layers on inputs with few tiles (the UNet's 32x32 and 16x16
/// levels at 512x512: 128 and 32 tiles at batch 2), where `WinogradConvolution` loses to im2col.
///
/// The same algebra as `WinogradConvolution` (M_ξ = U_ξ V_ξ for the 36 positions ξ of the 6x6 transformed tile,
/// 4x fewer multiply-adds than direct convolution), organised so that the transformed weights never leave the
/// cache: with few tiles each transformed weight is used only a few dozen times, and writing all of U to memory
/// and letting BLAS re-pack it cost 3-4x the products themselves.
/// - The whole input is transformed once, V [36, I, tiles] (tiles padded to a multiple of 16 with zeros).
/// - Each worker owns a range of output channels and its M [36, rows, tiles]. For each block of `inBlock` input
///   channels (V's slice stays in L2 across the worker's output blocks) and each block of `outBlock` output
///   channels, it transforms that block's weights into U [outBlock, 36, inBlock] (L2) and runs the 36 products
///   with `MicroKernel` (8 output channels x 16 or 32 tiles per call), accumulating over input blocks.
/// - The worker then transforms its M into the output.
/// Scratch: V (36 * I * tiles floats) plus per worker M (36 * O / workers * tiles) and one U block, so the
/// footprint grows with the tile count; `AutomaticConvolution` uses this algorithm below `largeTiles` only.
public struct BlockedWinogradConvolution: ConvolutionAlgorithm {
    /// Output channels whose weights are transformed together (a multiple of `MicroKernel.rows`).
    public let outBlock: Int
    /// Input channels per block (the products' inner dimension per call).
    public let inBlock: Int

    /// Blocks of 32 output by 128 input channels (U block 576 KB, beside a V slice of 36 x 128 x tiles floats).
    public init() { self.init(outBlock: 32, inBlock: 128) }

    public init(outBlock: Int, inBlock: Int) {
        precondition(outBlock > 0 && outBlock % MicroKernel.rows == 0,
                     "outBlock must be a positive multiple of \(MicroKernel.rows), got \(outBlock)")
        precondition(inBlock > 0, "inBlock must be positive, got \(inBlock)")
        self.outBlock = outBlock
        self.inBlock = inBlock
    }

    /// out [B, O, H, W] = bias + conv3x3(input [B, I, H, W]) for a layer that `WinogradConvolution.supports`.
    public func forward(_ input: Tensor, layer: Conv2D) -> Tensor {
        let (batch, height, width) = WinogradConvolution.checkedGeometry(input, layer: layer,
                                                                         algorithm: "BlockedWinogradConvolution")
        let i = layer.inChannels, o = layer.outChannels
        let tileRows = (height + 3) / 4, tileColumns = (width + 3) / 4
        let tiles = batch * tileRows * tileColumns
        // Columns: tiles rounded up to whole 16-lane vectors, plus room for the transforms' spill-over lanes.
        let vectors = (tiles + 15) / 16, ld = 16 * vectors + WinogradScratch.padding
        let out = Tensor(uninitialized: [batch, o, height, width])  // every pixel written by an output tile
        let segments = WinogradPlan.Segment.all(tileRows: tileRows, tileColumns: tileColumns, batch: batch)

        // V [36, I, ld]; zero columns past the tiles keep the dropped lanes finite.
        let vCount = 36 * i * ld
        let v = UnsafeMutablePointer<Float>.allocate(capacity: vCount)
        defer { v.deallocate() }
        v.initialize(repeating: 0, count: vCount)
        let px = UnsafePointer(input.pointer)
        Parallel.forRanges(i) { channels in
            let work = UnsafeMutablePointer<Float>.allocate(capacity: WinogradKernels.workFloats(tiles: tileColumns))
            defer { work.deallocate() }
            work.initialize(repeating: 0, count: WinogradKernels.workFloats(tiles: tileColumns))
            for segment in segments {
                let plane = px + (segment.image * i + channels.lowerBound) * height * width
                WinogradKernels.transformInput(plane, channels: channels.count, height: height, width: width,
                                               tileRow: segment.tileRow, tiles: segment.tiles,
                                               into: v + channels.lowerBound * ld + segment.column, ld: ld,
                                               xiStride: i * ld, work: work)
            }
        }

        let weight = layer.weight  // (a bfloat16 layer widens it for this call: keep it alive to the end)
        defer { withExtendedLifetime(weight) {} }
        let pw = UnsafePointer(weight.pointer), pb = layer.bias.map { UnsafePointer($0.pointer) }
        let po = out.pointer, pv = UnsafePointer(v)
        let groups = (o + MicroKernel.rows - 1) / MicroKernel.rows
        Parallel.forRanges(groups) { groupRange in
            let first = groupRange.lowerBound * MicroKernel.rows
            let owned = min(groupRange.upperBound * MicroKernel.rows, o) - first
            let paddedRows = groupRange.count * MicroKernel.rows
            let m = UnsafeMutablePointer<Float>.allocate(capacity: 36 * paddedRows * ld)
            let uRows = min(outBlock, paddedRows), uColumns = min(inBlock, i)
            // U is output-channel major, [rows, 36, k] with rows a cache line more than 36 k apart: the weight
            // transform's stores then land in few pages, close together (measured 1.5x faster than [36, rows, k]).
            let u = UnsafeMutablePointer<Float>.allocate(capacity: uRows * (36 * uColumns + 16))
            let work = UnsafeMutablePointer<Float>.allocate(capacity: WinogradKernels.weightWorkFloats(inputs: uColumns))
            defer {
                m.deallocate()
                u.deallocate()
                work.deallocate()
            }
            for i0 in stride(from: 0, to: i, by: inBlock) {
                let inputs = i0 ..< min(i0 + inBlock, i), k = inputs.count
                for r0 in stride(from: 0, to: paddedRows, by: outBlock) {
                    let rows = min(outBlock, paddedRows - r0), real = max(0, min(rows, owned - r0))
                    // U [rows, 36, k]; rows past the layer's channels are zero (their results are dropped).
                    let uRow = 36 * k + 16
                    WinogradKernels.transformWeights(pw, inChannels: i, outChannels: first + r0 ..< first + r0 + real,
                                                     inputs: inputs, into: u, rowStride: uRow, xiStride: k, work: work)
                    if real < rows { (u + real * uRow).update(repeating: 0, count: (rows - real) * uRow) }
                    for xi in 0 ..< 36 {
                        let uXi = UnsafePointer(u + xi * k), vXi = pv + (xi * i + i0) * ld
                        let mXi = m + (xi * paddedRows + r0) * ld
                        for g in stride(from: 0, to: rows, by: MicroKernel.rows) {
                            var column = 0
                            while column + 32 <= 16 * vectors {
                                MicroKernel.rows8x32(k: k, a: uXi + g * uRow, lda: uRow, b: vXi + column, ldb: ld,
                                                     c: mXi + g * ld + column, ldc: ld, accumulate: i0 > 0)
                                column += 32
                            }
                            if column < 16 * vectors {
                                MicroKernel.rows8x16(k: k, a: uXi + g * uRow, lda: uRow, b: vXi + column, ldb: ld,
                                                     c: mXi + g * ld + column, ldc: ld, accumulate: i0 > 0)
                            }
                        }
                    }
                }
            }
            for segment in segments {
                let plane = po + (segment.image * o + first) * height * width
                WinogradKernels.transformOutput(m + segment.column, ld: ld, xiStride: paddedRows * ld, rows: owned,
                                                bias: pb.map { $0 + first }, height: height, width: width,
                                                tileRow: segment.tileRow, tiles: segment.tiles, into: plane)
            }
        }
        return out
    }
}
