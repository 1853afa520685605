/// 3x3, stride 1, padding 1 convolution by Winograd's minimal filtering F(4x4, 3x3) (Lavin & Gray 2015,
/// "Fast Algorithms for Convolutional Neural Networks", arXiv 1509.09308).
///
/// The output is cut into 4x4 tiles; tile t of channel o is
///   Y = A^T [ sum_i (G g_oi G^T) ⊙ (B^T d_it B) ] A,
/// with d_it the 6x6 input patch (zero outside the image) and g_oi the 3x3 kernel. For each of the 36
/// positions ξ of the 6x6 transformed tile this is one matrix product
///   M_ξ [O, tiles] = U_ξ [O, I] x V_ξ [I, tiles],
/// 36 multiply-adds per output tile and channel pair instead of 144 (4x fewer FLOPs than direct convolution).
///
/// Memory: nothing is kept between calls. The weights are transformed on every call (cheap beside the
/// products when the tiles are many), for at most `maxScratchBytes / 2` of transformed weights at a time
/// (output channels in chunks when the layer is larger); tiles go through in blocks of at most
/// `tilesPerBlock`, each worker thread transforming its block's input, running the 36 products with a
/// single-threaded GEMM and transforming the result into the output, so scratch memory does not grow
/// with the image. The transforms cost accuracy: max error 1e-6 to 6e-6 of max|out| in WinogradConvolutionTests
/// (up to 1.5e-5 against im2col at 128-2560 channels in tools/conv-bench), against about 1e-7 for im2col.
public struct WinogradConvolution: ConvolutionAlgorithm {
    /// Upper bound on scratch memory: transformed weights plus every worker's transformed tiles.
    public let maxScratchBytes: Int
    /// Tiles per block (the N of each of the 36 GEMMs); smaller when the image has fewer tiles per worker.
    public let tilesPerBlock: Int

    /// 64 MB of scratch, blocks of 128 tiles.
    public init() { self.init(maxScratchBytes: 64 << 20, tilesPerBlock: 128) }

    /// Scratch of at most `maxScratchBytes` (but at least one output channel and 4 tiles per worker),
    /// blocks of at most `tilesPerBlock` tiles.
    public init(maxScratchBytes: Int, tilesPerBlock: Int) {
        precondition(maxScratchBytes > 0 && tilesPerBlock > 0, "Winograd scratch and block size must be positive")
        self.maxScratchBytes = maxScratchBytes
        self.tilesPerBlock = tilesPerBlock
    }

    /// Whether `layer` has the geometry this algorithm computes: 3x3 kernel, stride 1, padding 1.
    public static func supports(_ layer: Conv2D) -> Bool {
        layer.kernelSize == 3 && layer.stride == 1 && layer.padding == 1
    }

    /// (B, H, W) of `input` after checking that `layer` is 3x3 stride-1 padding-1 and `input` a non-empty
    /// [B, I, H, W] for it (preconditions naming `algorithm`).
    static func checkedGeometry(_ input: Tensor, layer: Conv2D, algorithm: String) -> (Int, Int, Int) {
        precondition(supports(layer), "\(algorithm) needs a 3x3 stride-1 padding-1 layer, got "
                     + "k\(layer.kernelSize) s\(layer.stride) p\(layer.padding)")
        precondition(input.rank == 4 && input.shape[1] == layer.inChannels,
                     "Conv2D expects [B, \(layer.inChannels), H, W], got \(input.shape)")
        precondition(input.shape[2] > 0 && input.shape[3] > 0, "Conv2D input \(input.shape) is empty")
        return (input.shape[0], input.shape[2], input.shape[3])
    }

    /// Number of 4x4 output tiles for a [B, I, H, W] input: B * ceil(H / 4) * ceil(W / 4).
    public static func tileCount(batch: Int, height: Int, width: Int) -> Int {
        batch * ((height + 3) / 4) * ((width + 3) / 4)
    }

    /// out [B, O, H, W] = bias + conv3x3(input [B, I, H, W]) for a layer that `supports` this algorithm.
    public func forward(_ input: Tensor, layer: Conv2D) -> Tensor {
        let (batch, height, width) = Self.checkedGeometry(input, layer: layer, algorithm: "WinogradConvolution")
        let out = Tensor(uninitialized: [batch, layer.outChannels, height, width])  // every tile written
        let plan = WinogradPlan(batch: batch, inChannels: layer.inChannels, outChannels: layer.outChannels,
                                height: height, width: width, maxScratchBytes: maxScratchBytes,
                                tilesPerBlock: tilesPerBlock, workers: Parallel.threadCount)
        let transformed = UnsafeMutablePointer<Float>.allocate(capacity: 36 * plan.chunkChannels * plan.inChannels)
        defer { transformed.deallocate() }
        let weight = layer.weight  // (a bfloat16 layer widens it for this call: keep it alive to the end)
        defer { withExtendedLifetime(weight) {} }
        let px = UnsafePointer(input.pointer), pw = UnsafePointer(weight.pointer)
        let pb = layer.bias.map { UnsafePointer($0.pointer) }

        for o0 in stride(from: 0, to: plan.outChannels, by: plan.chunkChannels) {
            let chunk = min(plan.chunkChannels, plan.outChannels - o0)
            // U_ξ [chunk, I] for output channels o0 ..< o0 + chunk.
            Parallel.forRanges(chunk) { range in
                let work = UnsafeMutablePointer<Float>.allocate(
                    capacity: WinogradKernels.weightWorkFloats(inputs: plan.inChannels))
                defer { work.deallocate() }
                WinogradKernels.transformWeights(pw, inChannels: plan.inChannels,
                                                 outChannels: o0 + range.lowerBound ..< o0 + range.upperBound,
                                                 inputs: 0 ..< plan.inChannels,
                                                 into: transformed + range.lowerBound * plan.inChannels,
                                                 rowStride: plan.inChannels, xiStride: chunk * plan.inChannels,
                                                 work: work)
            }
            let splitChannels = (chunk + plan.channelSplits - 1) / plan.channelSplits
            MatMul.withSingleThreadedBLAS {
                Parallel.forRanges(plan.blockCount * plan.channelSplits) { range in
                    let scratch = WinogradScratch(plan: plan, outRows: splitChannels)
                    defer { scratch.deallocate() }
                    for job in range {
                        let block = job / plan.channelSplits
                        let c0 = (job % plan.channelSplits) * splitChannels, rows = min(splitChannels, chunk - c0)
                        if rows <= 0 { continue }
                        run(block: block, plan: plan, input: px, transformedWeights: transformed + c0 * plan.inChannels,
                            weightRows: chunk, outChannels: o0 + c0 ..< o0 + c0 + rows, bias: pb,
                            output: out.pointer, scratch: scratch)
                    }
                }
            }
        }
        return out
    }

    /// One tile block against output channels `outChannels` (rows `weightRows`-strided in U).
    private func run(block: Int, plan: WinogradPlan, input: UnsafePointer<Float>,
                     transformedWeights u: UnsafePointer<Float>, weightRows: Int, outChannels: Range<Int>,
                     bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, scratch: WinogradScratch) {
        let first = block * plan.blockTiles, count = min(plan.blockTiles, plan.tileCount - first)
        let segments = plan.segments(first: first, count: count)
        let i = plan.inChannels, ld = scratch.columns
        // V_ξ [I, count]
        for segment in segments {
            let plane = input + segment.image * i * plan.height * plan.width
            WinogradKernels.transformInput(plane, channels: i, height: plan.height, width: plan.width,
                                           tileRow: segment.tileRow, tiles: segment.tiles, into: scratch.v + segment.column,
                                           ld: ld, xiStride: i * ld, work: scratch.work)
        }
        // M_ξ [rows, count] = U_ξ [rows, I] x V_ξ [I, count]
        let rows = outChannels.count
        for xi in 0 ..< 36 {
            MatMul.gemm(m: rows, n: count, k: i, a: u + xi * weightRows * i, lda: i, b: scratch.v + xi * i * ld,
                        ldb: ld, c: scratch.m + xi * rows * ld, ldc: ld)
        }
        for segment in segments {
            let plane = output + (segment.image * plan.outChannels + outChannels.lowerBound) * plan.height * plan.width
            WinogradKernels.transformOutput(scratch.m + segment.column, ld: ld, xiStride: rows * ld, rows: rows,
                                            bias: bias.map { $0 + outChannels.lowerBound }, height: plan.height,
                                            width: plan.width, tileRow: segment.tileRow, tiles: segment.tiles,
                                            into: plane)
        }
    }
}

/// How one call is cut into output-channel chunks, tile blocks and jobs.
struct WinogradPlan {
    let batch: Int, inChannels: Int, outChannels: Int, height: Int, width: Int
    let tileRows: Int, tileColumns: Int, tileCount: Int
    /// Output channels whose transformed weights are held at once.
    let chunkChannels: Int
    /// Tiles per block (GEMM N) and number of blocks.
    let blockTiles: Int, blockCount: Int
    /// Parts each chunk's channels are cut into when there are fewer blocks than workers.
    let channelSplits: Int

    init(batch: Int, inChannels: Int, outChannels: Int, height: Int, width: Int, maxScratchBytes: Int,
         tilesPerBlock: Int, workers: Int) {
        self.batch = batch
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.height = height
        self.width = width
        tileRows = (height + 3) / 4
        tileColumns = (width + 3) / 4
        tileCount = batch * tileRows * tileColumns
        let floats = maxScratchBytes / MemoryLayout<Float>.stride
        // Chunks of equal size, as few as the budget allows (each chunk transforms the input again).
        let largestChunk = max(1, min(outChannels, floats / 2 / (36 * inChannels)))
        let chunks = (outChannels + largestChunk - 1) / largestChunk
        chunkChannels = (outChannels + chunks - 1) / chunks
        // Blocks: enough for every worker, each worker's V and M within its share of the other half.
        let perWorker = floats / 2 / max(workers, 1)
        let budgetTiles = perWorker / (36 * (inChannels + chunkChannels)) - WinogradScratch.padding
        var tiles = min(tilesPerBlock, (tileCount + workers - 1) / workers, max(4, budgetTiles))
        tiles = max(1, tiles)
        blockTiles = tiles
        blockCount = (tileCount + tiles - 1) / tiles
        channelSplits = blockCount >= workers ? 1 : max(1, min((workers + blockCount - 1) / blockCount,
                                                               chunkChannels / 16))
    }

    /// A run of tiles in one tile row of one image, and the GEMM column of its first tile.
    struct Segment {
        let image: Int, tileRow: Int, tiles: Range<Int>, column: Int

        /// The tiles `first ..< first + count` (numbered image, tile row, tile column) as per-row segments,
        /// columns counted from `first`.
        static func covering(first: Int, count: Int, tileRows: Int, tileColumns: Int) -> [Segment] {
            var result: [Segment] = []
            var t = first
            while t < first + count {
                let row = t / tileColumns, tx = t % tileColumns
                let n = min(tileColumns - tx, first + count - t)
                result.append(Segment(image: row / tileRows, tileRow: row % tileRows, tiles: tx ..< tx + n,
                                      column: t - first))
                t += n
            }
            return result
        }

        /// Every tile of a batch, one segment per tile row.
        static func all(tileRows: Int, tileColumns: Int, batch: Int) -> [Segment] {
            covering(first: 0, count: batch * tileRows * tileColumns, tileRows: tileRows, tileColumns: tileColumns)
        }
    }

    /// The tiles `first ..< first + count` (numbered image, tile row, tile column) as per-row segments.
    func segments(first: Int, count: Int) -> [Segment] {
        Segment.covering(first: first, count: count, tileRows: tileRows, tileColumns: tileColumns)
    }
}

/// One worker's buffers: V [36, I, columns], M [36, rows, columns] and the transforms' row buffers.
struct WinogradScratch {
    /// Columns past the block's tiles, written by the last 4-lane group of a segment (and never read).
    static let padding = 4
    let columns: Int
    let v: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>, work: UnsafeMutablePointer<Float>
    let vCount: Int, mCount: Int, workCount: Int

    init(plan: WinogradPlan, outRows: Int) {
        columns = plan.blockTiles + Self.padding
        vCount = 36 * plan.inChannels * columns
        mCount = 36 * outRows * columns
        workCount = WinogradKernels.workFloats(tiles: min(plan.blockTiles, plan.tileColumns))
        v = .allocate(capacity: vCount)
        m = .allocate(capacity: mCount)
        work = .allocate(capacity: workCount)
        // Padding columns feed lanes whose results are dropped; zeros keep them free of NaN and denormals.
        v.initialize(repeating: 0, count: vCount)
        m.initialize(repeating: 0, count: mCount)
        work.initialize(repeating: 0, count: workCount)
    }

    func deallocate() {
        v.deallocate()
        m.deallocate()
        work.deallocate()
    }
}
