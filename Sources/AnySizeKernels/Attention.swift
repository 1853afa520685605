import Foundation

/// Adjusts one block of attention logits; implemented by attention formulations.
///
/// The kernel calls the modifier once per (batch, head, query chunk, key chunk) block, from several threads
/// at once, so implementations compute scales, masks and biases from token indices (grid coordinates) on the
/// fly and keep no mutable state. Token indices are positions in the sequence of one batch element.
public protocol AttentionLogitModifier: Sendable {
    /// False when no query in `queries` may attend any key in `keys` (the kernel then skips the block).
    func isBlockActive(queries: Range<Int>, keys: Range<Int>) -> Bool
    /// Adjusts logits in place. `logits` holds rows for `queries` and columns for `keys` (row stride `stride`),
    /// already equal to Q K^T / sqrt(d). Set masked entries to -Float.infinity. Every query keeps >= 1 key overall.
    func adjust(_ logits: UnsafeMutablePointer<Float>, stride: Int, queries: Range<Int>, keys: Range<Int>)
}

extension AttentionLogitModifier {
    /// Every block is active unless a formulation knows better.
    public func isBlockActive(queries: Range<Int>, keys: Range<Int>) -> Bool { true }
}

/// Query/key chunk sizes; `unbounded` = one block (plain softmax).
///
/// Chunks larger than the problem are clamped to it, so `unbounded` and any chunking at least as large as
/// the sequence lengths give one block per (batch, head).
public struct AttentionChunking: Sendable, Equatable {
    public var queryChunk: Int
    public var keyChunk: Int

    /// Chunks of `queryChunk` queries by `keyChunk` keys (both >= 1).
    public init(queryChunk: Int, keyChunk: Int) {
        precondition(queryChunk >= 1 && keyChunk >= 1, "attention chunks must be >= 1, got \(queryChunk) x \(keyChunk)")
        self.queryChunk = queryChunk
        self.keyChunk = keyChunk
    }

    /// One block per (batch, head): the whole Nq x Nk logits matrix at once.
    public static let unbounded = AttentionChunking(queryChunk: .max, keyChunk: .max)

    /// Scratch bytes one worker thread holds for blocks of `queryChunk` x `keyChunk`:
    /// the logits block plus three running statistics (max, sum, entropy term) per query,
    /// `4 * queryChunk * (keyChunk + 3)`. Besides this quadratic term a worker holds O(N d) buffers: the packed
    /// K and V of one head (about `4 * keys * (2 d + 16)` bytes) and a `queryChunk x d` output accumulator.
    public static func scratchBytesPerWorker(queryChunk: Int, keyChunk: Int) -> Int {
        MemoryLayout<Float>.size * queryChunk * (keyChunk + 3)
    }

    /// Largest chunks whose per-thread scratch fits `bytes` in total (all worker threads), given the problem size.
    ///
    /// Peak scratch is `Parallel.threadCount * 4 * q * (k + 3)` bytes for query chunk `q` and key chunk `k`
    /// (see `scratchBytesPerWorker`); it does not depend on `headDim` because the kernel accumulates P V
    /// directly into the output. Starting from the whole problem, the larger of the two chunks is halved
    /// (rounding up; ties halve the query chunk) until the scratch fits. A budget below one 1 x 1 block per
    /// thread returns 1 x 1.
    public static func fitting(bytes: Int, queries: Int, keys: Int, headDim: Int) -> AttentionChunking {
        let workers = max(1, Parallel.threadCount)
        let perWorker = bytes / workers
        var q = max(queries, 1), k = max(keys, 1)
        while scratchBytesPerWorker(queryChunk: q, keyChunk: k) > perWorker && (q > 1 || k > 1) {
            if k > q { k = (k + 1) / 2 } else { q = (q + 1) / 2 }
        }
        return AttentionChunking(queryChunk: q, keyChunk: k)
    }
}

/// Multi-head scaled dot-product attention, memory-bounded.
///
/// Rabe & Staats, "Self-attention does not need O(n^2) memory" (arXiv 2112.05682): for each query chunk,
/// key chunks are streamed with a running row max m, running sum s and running output a (online softmax):
///   l = Q_c K_c^T / sqrt(d) (adjusted),  m' = max(m, max_k l),
///   s' = s e^{m - m'} + sum_k e^{l - m'},  a' = a e^{m - m'} + e^{l - m'} V_c,  out = a / s.
/// Peak scratch is one `queryChunk x keyChunk` logits block per worker thread; no N x N tensor exists.
public enum ScaledDotProductAttention {
    /// softmax(Q K^T / sqrt(d) [adjusted]) V per head. query [B, Nq, heads*D], key/value [B, Nk, heads*D]
    /// -> [B, Nq, heads*D]. If `entropy` is non-nil it receives the mean over batch, heads and queries of
    /// -sum_k p ln p of each query's attention probabilities (masked keys excluded).
    ///
    /// Heads stay packed in the channel axis (no head-splitting copies of the tensors). Work is split over
    /// (batch, head, query chunk) items across `Parallel.threadCount` workers; each worker packs K and V of
    /// its current head once and runs register-blocked tiles (`AttentionTiles`) for Q K^T and P V, which
    /// replaced BLAS here (OpenBLAS re-packed every 1 MB P block and every K panel: a fifth of the time).
    /// Builds without AVX-512 and FMA (`MicroKernel.registerTilesPayOff` false: portable and AVX2 builds) keep
    /// single-threaded BLAS per worker instead: there the tiles' 24 SIMD16 accumulators do not fit in registers
    /// (measured 1.5x slower than BLAS at SD's level 0 with AVX2 code, 4x portable).
    /// A query whose keys are all masked gets a zero output row and zero entropy.
    /// `precision` `.bf16` rounds Q, K, V and the probabilities P to bfloat16 for the two products (float32
    /// accumulation, float32 softmax; `Problem.runBFloat16`).
    public static func compute(query: Tensor, key: Tensor, value: Tensor, heads: Int,
                               modifier: (any AttentionLogitModifier)? = nil,
                               chunking: AttentionChunking = .unbounded,
                               entropy: UnsafeMutablePointer<Double>? = nil,
                               precision: Precision = .fp32) -> Tensor {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.attention, profileStart) }
        precondition(query.rank == 3 && key.rank == 3 && value.rank == 3,
                     "attention needs [B, N, heads*D] tensors, got \(query.shape), \(key.shape), \(value.shape)")
        let batch = query.shape[0], queries = query.shape[1], channels = query.shape[2]
        let keys = key.shape[1]
        precondition(key.shape == [batch, keys, channels] && value.shape == key.shape,
                     "attention key \(key.shape) / value \(value.shape) do not fit query \(query.shape)")
        precondition(heads >= 1 && channels % heads == 0, "\(channels) channels do not split into \(heads) heads")
        guard batch > 0, queries > 0, channels > 0 else {
            entropy?.pointee = 0
            return Tensor(zeros: [batch, queries, channels])
        }
        let out = Tensor(uninitialized: [batch, queries, channels])  // [B, Nq, heads*D], every row written
        let block = blockShape(chunking: chunking, queries: queries, keys: keys)
        let problem = Problem(query: query.pointer, key: key.pointer, value: value.pointer, out: out.pointer,
                              heads: heads, queries: queries, keys: keys, channels: channels,
                              queryChunk: block.queryChunk, keyChunk: block.keyChunk,
                              modifier: modifier, wantsEntropy: entropy != nil)
        let items = batch * heads * problem.queryChunks
        let bfloat16Path = BFloat16.path
        let workers = min(Parallel.threadCount, items)
        var partialEntropy = [Double](repeating: 0, count: workers)
        partialEntropy.withUnsafeMutableBufferPointer { partial in
            MatMul.withSingleThreadedBLAS {
                Parallel.forEach(workers) { w in
                    let range = items * w / workers ..< items * (w + 1) / workers
                    partial[w] = precision == .bf16 ? problem.runBFloat16(items: range, path: bfloat16Path)
                        : problem.run(items: range)
                }
            }
        }
        entropy?.pointee = partialEntropy.reduce(0, +) / Double(batch * heads * queries)
        return out
    }
}

extension ScaledDotProductAttention {
    /// Keys per block at most: with 256 query rows, a 1 MB logits block that stays in a core's L2 cache between
    /// Q K^T, the online-softmax pass and P V.
    static let cacheKeyColumns = 1024

    /// The block the kernel works on: within `chunking` (the memory bound), at most `cacheKeyColumns` keys and
    /// about 2^18 logits. Each query row's result is the same whatever the block shape (online softmax), so
    /// the shape is a speed choice only. Square-ish blocks (256 x 1024 rather than 64 x 4096 at SD's level 0)
    /// keep the logits block, the packed K and V slices and the accumulator within L2; smaller blocks also
    /// spread work evenly over the threads.
    public static func blockShape(chunking: AttentionChunking, queries: Int, keys: Int) -> AttentionChunking {
        let keyBlock = min(chunking.keyChunk, max(keys, 1), cacheKeyColumns)
        let queryBlock = min(chunking.queryChunk, max(queries, 1), max(16, (1 << 18) / keyBlock))
        return AttentionChunking(queryChunk: queryBlock, keyChunk: keyBlock)
    }
}

/// One attention call's operands and sizes; `run` processes a range of (batch, head, query chunk) items.
struct Problem {
    let query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>
    let out: UnsafeMutablePointer<Float>
    let heads: Int, queries: Int, keys: Int, channels: Int
    let queryChunk: Int, keyChunk: Int
    let modifier: (any AttentionLogitModifier)?
    let wantsEntropy: Bool

    init(query: UnsafeMutablePointer<Float>, key: UnsafeMutablePointer<Float>, value: UnsafeMutablePointer<Float>,
         out: UnsafeMutablePointer<Float>, heads: Int, queries: Int, keys: Int, channels: Int,
         queryChunk: Int, keyChunk: Int, modifier: (any AttentionLogitModifier)?, wantsEntropy: Bool) {
        self.query = UnsafePointer(query)
        self.key = UnsafePointer(key)
        self.value = UnsafePointer(value)
        self.out = out
        self.heads = heads
        self.queries = queries
        self.keys = keys
        self.channels = channels
        self.queryChunk = queryChunk
        self.keyChunk = keyChunk
        self.modifier = modifier
        self.wantsEntropy = wantsEntropy
    }

    var headDim: Int { channels / heads }
    var queryChunks: Int { (queries + queryChunk - 1) / queryChunk }

    /// One work item: query rows q0 ..< q1 of one (batch, head) pair `bh`, with where its Q rows, its output rows
    /// and its head's K and V rows start (consecutive rows `channels` apart).
    struct Item {
        let bh: Int, q0: Int, q1: Int
        let query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>
        let output: UnsafeMutablePointer<Float>
        var rows: Int { q1 - q0 }
    }

    /// Item `index` = (b * heads + h) * queryChunks + chunk (the numbering `run` and `runBFloat16` share).
    func item(_ index: Int) -> Item {
        let chunk = index % queryChunks, bh = index / queryChunks
        let h = bh % heads, b = bh / heads, d = headDim
        let q0 = chunk * queryChunk, head = b * keys * channels + h * d, rows = (b * queries + q0) * channels + h * d
        return Item(bh: bh, q0: q0, q1: min(q0 + queryChunk, queries), query: query + rows, key: key + head,
                    value: value + head, output: out + rows)
    }

    /// Resets the online-softmax state of `rows` query rows: running max -inf, sum and entropy term 0, and the
    /// output accumulator (rows of `paddedDim`) 0.
    func startRows(_ rows: Int, stats: UnsafeMutablePointer<Float>, accumulator: UnsafeMutablePointer<Float>,
                   paddedDim: Int) {
        stats.update(repeating: -.infinity, count: rows)
        (stats + queryChunk).update(repeating: 0, count: rows)
        (stats + 2 * queryChunk).update(repeating: 0, count: rows)
        accumulator.update(repeating: 0, count: rows * paddedDim)
    }

    /// Computes the output rows of `items` (index = (b * heads + h) * queryChunks + chunk) and returns the
    /// sum of their rows' entropies (0 unless `wantsEntropy`). Allocates this worker's scratch once: the
    /// logits block (rows padded to whole key panels), the running statistics, the packed Q_c, K_c and V_c
    /// (`AttentionTiles`; tiles only) and the output accumulator a (`dPad` columns).
    func run(items: Range<Int>) -> Double {
        let tiles = MicroKernel.registerTilesPayOff
        let d = headDim, dPad = AttentionTiles.roundUp(d, 16)
        // Logits row stride: whole key panels plus 16 floats, so that the 8 rows a P V tile reads are not
        // 4 KB apart (same L1 set) when the block has 1024 keys.
        let stride = AttentionTiles.roundUp(keyChunk, AttentionTiles.keyPanel) + 16
        let logits = UnsafeMutablePointer<Float>.allocate(capacity: queryChunk * stride)
        let stats = UnsafeMutablePointer<Float>.allocate(capacity: 3 * queryChunk)
        // Packed operands of the tiles (none for BLAS, which reads Q, K and V in place): Q_c, and K^T and V of
        // the current head, packed once per (batch, head) (consecutive items share it): K in panels per key
        // block (block kb at kb * panelBlock), V as rows of dPad.
        let keyBlocks = (keys + keyChunk - 1) / keyChunk
        let panelBlock = AttentionTiles.roundUp(keyChunk, AttentionTiles.keyPanel) * d
        let packedQ = UnsafeMutablePointer<Float>.allocate(
            capacity: tiles ? AttentionTiles.roundUp(queryChunk, AttentionTiles.logitRows) * d : 1)
        let packedK = UnsafeMutablePointer<Float>.allocate(capacity: tiles ? keyBlocks * panelBlock : 1)
        let packedV = UnsafeMutablePointer<Float>.allocate(capacity: tiles ? keys * dPad : 1)
        var packedHead = -1
        let acc = UnsafeMutablePointer<Float>.allocate(capacity: queryChunk * dPad)
        defer {
            for buffer in [logits, stats, packedQ, packedK, packedV, acc] { buffer.deallocate() }
        }
        let rowMax = stats, rowSum = stats + queryChunk, rowEntropy = stats + 2 * queryChunk
        let alpha = 1 / Float(d).squareRoot()
        var entropySum = 0.0
        for index in items {
            let item = self.item(index), q0 = item.q0, q1 = item.q1, mq = item.rows
            if tiles { AttentionTiles.packQueries(item.query, stride: channels, rows: mq, headDim: d, into: packedQ) }
            if tiles && item.bh != packedHead {
                for kb in 0 ..< keyBlocks {
                    let k0 = kb * keyChunk
                    AttentionTiles.packKeys(item.key + k0 * channels, stride: channels, keys: min(keyChunk, keys - k0),
                                            headDim: d, into: packedK + kb * panelBlock)
                }
                AttentionTiles.packValues(item.value, stride: channels, keys: keys, headDim: d, paddedDim: dPad,
                                          into: packedV)
                packedHead = item.bh
            }
            startRows(mq, stats: stats, accumulator: acc, paddedDim: dPad)
            var k0 = 0
            while k0 < keys {
                let k1 = min(k0 + keyChunk, keys), mk = k1 - k0
                defer { k0 = k1 }
                if let modifier, !modifier.isBlockActive(queries: q0 ..< q1, keys: k0 ..< k1) { continue }
                // l = Q_c K_c^T / sqrt(d)   [mq, mk], row stride `stride`
                if tiles {
                    AttentionTiles.logits(queries: packedQ, rows: mq, keys: packedK + k0 / keyChunk * panelBlock,
                                          count: mk, headDim: d, alpha: alpha, logits: logits, stride: stride)
                } else {
                    MatMul.gemm(transB: true, m: mq, n: mk, k: d, alpha: alpha, a: item.query, lda: channels,
                                b: item.key + k0 * channels, ldb: channels, c: logits, ldc: stride)
                }
                modifier?.adjust(logits, stride: stride, queries: q0 ..< q1, keys: k0 ..< k1)
                for i in 0 ..< mq {
                    updateRow(logits + i * stride, count: mk, max: rowMax + i, sum: rowSum + i,
                              entropy: rowEntropy + i, accumulator: acc + i * dPad, headDim: dPad)
                }
                // a += P V_c   [mq, dPad] (BLAS: the first d columns; the padding stays 0)
                if tiles {
                    AttentionTiles.accumulate(p: logits, pStride: stride, rows: mq, keys: mk,
                                              values: packedV + k0 * dPad, paddedDim: dPad, acc: acc)
                } else {
                    MatMul.gemm(m: mq, n: d, k: mk, a: logits, lda: stride, b: item.value + k0 * channels,
                                ldb: channels, beta: 1, c: acc, ldc: dPad)
                }
            }
            entropySum += finishRows(mq, output: item.output, accumulator: acc, paddedDim: dPad, sum: rowSum,
                                     entropy: rowEntropy)
        }
        return entropySum
    }

    /// Ends a block of `rows` query rows: output row i = accumulator row i / its softmax sum (its first `d`
    /// columns, written with row stride `channels`), and returns the rows' summed entropy when `wantsEntropy`
    /// (H = -sum p ln p = ln s - t / s with t = sum e^{l-m} (l - m)), 0 otherwise.
    func finishRows(_ rows: Int, output: UnsafeMutablePointer<Float>, accumulator: UnsafePointer<Float>, paddedDim: Int,
                    sum: UnsafePointer<Float>, entropy: UnsafePointer<Float>) -> Double {
        let d = headDim
        var entropySum = 0.0
        for i in 0 ..< rows {
            let s = sum[i]
            let row = output + i * channels, source = accumulator + i * paddedDim
            let inverse: Float = s > 0 ? 1 / s : 0
            for j in 0 ..< d { row[j] = source[j] * inverse }
            if wantsEntropy && s > 0 { entropySum += Double(log(s)) - Double(entropy[i]) / Double(s) }
        }
        return entropySum
    }

    /// Online-softmax step for one query row: turns the row's logits into e^{l - m'} in place (0 for masked
    /// keys) and rescales the running sum, entropy term and output accumulator to the new max m'.
    /// Entropy term t = sum e^{l-m}(l-m); on m -> m': t' = e^{m-m'} (t + s (m - m')), s' = s e^{m-m'}.
    @inline(__always)
    func updateRow(_ row: UnsafeMutablePointer<Float>, count: Int,
                           max runningMax: UnsafeMutablePointer<Float>, sum runningSum: UnsafeMutablePointer<Float>,
                           entropy runningEntropy: UnsafeMutablePointer<Float>,
                           accumulator: UnsafeMutablePointer<Float>, headDim: Int) {
        let blockMax = rowMaximum(row, count: count)
        let m = runningMax.pointee
        guard blockMax > -.infinity || m > -.infinity else {
            row.update(repeating: 0, count: count)  // nothing attendable yet: contributes nothing
            return
        }
        var newMax = m
        if blockMax > m {
            newMax = blockMax
            if m > -.infinity {
                let shift = m - newMax, c = VectorExp.exp(SIMD8(repeating: shift))[0]
                runningEntropy.pointee = c * (runningEntropy.pointee + runningSum.pointee * shift)
                runningSum.pointee *= c
                for j in 0 ..< headDim { accumulator[j] *= c }
            }
            runningMax.pointee = newMax
        }
        let (s, t) = exponentiate(row, count: count, shift: newMax)
        runningSum.pointee += s
        if wantsEntropy { runningEntropy.pointee += t }
    }

    /// p = e^{l - shift} in place; returns (sum p, sum p (l - shift)) with masked keys (l = -inf) giving p = 0
    /// and no entropy term. The second sum is 0 unless `wantsEntropy`. `shift` is the row maximum, so every
    /// exponent is <= 0 (`VectorExp.expNonPositive`, 16 lanes). `row` must have room for `count` rounded up
    /// to 16 (the last vector is read and written whole; lanes past `count` get 0).
    /// Kept out of line so that the exponential inlines into this small loop (the optimiser leaves it
    /// out of line in the large `run`).
    @inline(never)
    private func exponentiate(_ row: UnsafeMutablePointer<Float>, count: Int, shift: Float) -> (Float, Float) {
        let shiftLanes = SIMD16<Float>(repeating: shift)
        let lanes = SIMD16<Int32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
        var s = SIMD16<Float>(), t = SIMD16<Float>()
        var j = 0
        while j < count {
            var x = UnsafeRawPointer(row + j).loadUnaligned(as: SIMD16<Float>.self) - shiftLanes
            if j + 16 > count { x.replace(with: -.infinity, where: lanes .>= SIMD16(repeating: Int32(count - j))) }
            let p = VectorExp.expNonPositive(x)  // one call site, so that it inlines
            UnsafeMutableRawPointer(row + j).storeBytes(of: p, as: SIMD16<Float>.self)
            s += p
            if wantsEntropy { t += (p * x).replacing(with: 0, where: p .== 0) }
            j += 16
        }
        return (s.sum(), t.sum())
    }

    /// Largest of `count` floats (-infinity when all are -infinity or count is 0).
    @inline(__always)
    private func rowMaximum(_ row: UnsafeMutablePointer<Float>, count: Int) -> Float {
        var lanes = SIMD16<Float>(repeating: -.infinity)
        var j = 0
        while j + 16 <= count {
            let x = UnsafeRawPointer(row + j).loadUnaligned(as: SIMD16<Float>.self)
            lanes.replace(with: x, where: x .> lanes)  // compare-and-select; pointwiseMax is an out-of-line call
            j += 16
        }
        var best = lanes.max()
        while j < count {
            best = Swift.max(best, row[j])
            j += 1
        }
        return best
    }
}
