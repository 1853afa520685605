import AnySizeKernels
import Foundation
import XCTest

/// A logit adjustment applied entry by entry, so the kernel (per block, Float) and the naive reference
/// (full matrix, Double) apply exactly the same function. Returns -infinity for masked entries.
private struct ElementwiseModifier: AttentionLogitModifier {
    let adjustment: @Sendable (_ logit: Double, _ query: Int, _ key: Int) -> Double
    /// When true, blocks with every entry masked report inactive (so the kernel skips them).
    var reportsInactiveBlocks = true

    func isBlockActive(queries: Range<Int>, keys: Range<Int>) -> Bool {
        guard reportsInactiveBlocks else { return true }
        for q in queries { for k in keys where adjustment(0, q, k) > -.infinity { return true } }
        return false
    }

    func adjust(_ logits: UnsafeMutablePointer<Float>, stride: Int, queries: Range<Int>, keys: Range<Int>) {
        for (i, q) in queries.enumerated() {
            for (j, k) in keys.enumerated() {
                logits[i * stride + j] = Float(adjustment(Double(logits[i * stride + j]), q, k))
            }
        }
    }
}

/// Position of token `index` on a `width`-wide grid.
private func gridPosition(_ index: Int, width: Int) -> (y: Int, x: Int) { (index / width, index % width) }

/// METHODS.md `local` window: `size` rows/columns starting at clamp(p - size / 2, 0, extent - size).
private func windowStart(_ p: Int, size: Int, extent: Int) -> Int { min(max(p - size / 2, 0), max(extent - size, 0)) }

private func localWindowMask(grid: Int, window: Int) -> ElementwiseModifier {
    ElementwiseModifier { logit, q, k in
        let (qy, qx) = gridPosition(q, width: grid), (ky, kx) = gridPosition(k, width: grid)
        let y0 = windowStart(qy, size: window, extent: grid), x0 = windowStart(qx, size: window, extent: grid)
        let inside = (y0 ..< y0 + window).contains(ky) && (x0 ..< x0 + window).contains(kx)
        return inside ? logit : -.infinity
    }
}

private func logDistanceBias(grid: Int, strength c: Double) -> ElementwiseModifier {
    ElementwiseModifier { logit, q, k in
        let (qy, qx) = gridPosition(q, width: grid), (ky, kx) = gridPosition(k, width: grid)
        let distance = Double((qy - ky) * (qy - ky) + (qx - kx) * (qx - kx)).squareRoot()
        return logit + c * max(0, log(distance))  // log(0) = -inf -> no bias on the diagonal
    }
}

/// Query q sees only keys k with (5k + q) % 17 == 0 (3-4 of 53 keys): most blocks of most rows are all masked.
private let sparseMask = ElementwiseModifier { logit, q, k in (5 * k + q) % 17 == 0 ? logit : -.infinity }

/// Deterministic values in [-scale, scale] (SplitMix64).
private func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
    var state = seed
    let values = (0 ..< shape.reduce(1, *)).map { _ -> Float in
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return (Float(z >> 40) / Float(1 << 24) * 2 - 1) * scale
    }
    return Tensor(shape: shape, values: values)
}

/// Naive attention in Double: full Nq x Nk logits per (batch, head), adjusted, standard softmax.
private func naiveAttention(query: Tensor, key: Tensor, value: Tensor, heads: Int,
                            adjustment: (Double, Int, Int) -> Double = { logit, _, _ in logit })
    -> (output: [Double], entropy: Double) {
    let batch = query.shape[0], nq = query.shape[1], channels = query.shape[2], nk = key.shape[1]
    let d = channels / heads
    var output = [Double](repeating: 0, count: batch * nq * channels)
    var entropySum = 0.0
    let q = query.scalars.map(Double.init), k = key.scalars.map(Double.init), v = value.scalars.map(Double.init)
    for b in 0 ..< batch {
        for h in 0 ..< heads {
            for i in 0 ..< nq {
                var logits = [Double](repeating: 0, count: nk)
                for j in 0 ..< nk {
                    var dot = 0.0
                    for c in 0 ..< d { dot += q[(b * nq + i) * channels + h * d + c] * k[(b * nk + j) * channels + h * d + c] }
                    logits[j] = adjustment(dot / Double(d).squareRoot(), i, j)
                }
                let top = logits.max() ?? 0
                let weights = logits.map { exp($0 - top) }
                let total = weights.reduce(0, +)
                for j in 0 ..< nk where weights[j] > 0 {
                    let p = weights[j] / total
                    entropySum -= p * log(p)
                    for c in 0 ..< d { output[(b * nq + i) * channels + h * d + c] += p * v[(b * nk + j) * channels + h * d + c] }
                }
            }
        }
    }
    return (output, entropySum / Double(batch * heads * nq))
}

/// Largest |a - b|; a NaN or infinity in `a` counts as an infinite error (max() would skip a NaN).
private func maxAbsDifference(_ a: Tensor, _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    var worst = 0.0
    for (x, y) in zip(a.scalars, b) {
        guard x.isFinite else { return .infinity }
        worst = max(worst, abs(Double(x) - y))
    }
    return worst
}

private func maxAbsDifference(_ a: Tensor, _ b: Tensor) -> Double { maxAbsDifference(a, b.scalars.map(Double.init)) }

final class AttentionTests: XCTestCase {
    private struct Case { let batch: Int, heads: Int, headDim: Int, queries: Int, keys: Int }
    private let oddShape = Case(batch: 2, heads: 3, headDim: 5, queries: 37, keys: 53)
    private let squareShape = Case(batch: 2, heads: 3, headDim: 5, queries: 64, keys: 64)
    private let chunkings = [AttentionChunking(queryChunk: 1, keyChunk: 1), AttentionChunking(queryChunk: 7, keyChunk: 11),
                             AttentionChunking(queryChunk: 16, keyChunk: 64), AttentionChunking(queryChunk: 500, keyChunk: 700),
                             AttentionChunking(queryChunk: 64, keyChunk: 5)]

    private func operands(_ s: Case, seed: UInt64) -> (Tensor, Tensor, Tensor) {
        let channels = s.heads * s.headDim
        // Scale 2 gives logits of a few units: peaked but not one-hot attention.
        return (randomTensor([s.batch, s.queries, channels], seed: seed, scale: 2),
                randomTensor([s.batch, s.keys, channels], seed: seed + 1, scale: 2),
                randomTensor([s.batch, s.keys, channels], seed: seed + 2))
    }

    /// Kernel vs naive reference for `modifier`, over `.unbounded` and every test chunking;
    /// also checks entropy and that each chunking equals the unchunked result to float rounding.
    private func checkAgainstReference(_ s: Case, seed: UInt64, modifier: ElementwiseModifier?, label: String,
                                       tolerance: Double = 2e-5, file: StaticString = #filePath, line: UInt = #line) {
        let (q, k, v) = operands(s, seed: seed)
        let reference = naiveAttention(query: q, key: k, value: v, heads: s.heads,
                                       adjustment: modifier?.adjustment ?? { logit, _, _ in logit })
        var unchunkedEntropy = 0.0
        let unchunked = ScaledDotProductAttention.compute(query: q, key: k, value: v, heads: s.heads,
                                                          modifier: modifier, entropy: &unchunkedEntropy)
        XCTAssertEqual(unchunked.shape, [s.batch, s.queries, s.heads * s.headDim], file: file, line: line)
        let error = maxAbsDifference(unchunked, reference.output)
        XCTAssertLessThan(error, tolerance, "\(label): unchunked vs naive", file: file, line: line)
        XCTAssertEqual(unchunkedEntropy, reference.entropy, accuracy: 1e-5 * max(1, reference.entropy),
                       "\(label): entropy", file: file, line: line)
        var worstChunked = 0.0, worstVsUnchunked = 0.0, worstEntropy = 0.0
        for chunking in chunkings {
            var entropy = 0.0
            let chunked = ScaledDotProductAttention.compute(query: q, key: k, value: v, heads: s.heads,
                                                            modifier: modifier, chunking: chunking, entropy: &entropy)
            let vsReference = maxAbsDifference(chunked, reference.output)
            let vsUnchunked = maxAbsDifference(chunked, unchunked)
            let scale = max(unchunked.maxAbs, 1)
            XCTAssertLessThan(vsReference, tolerance, "\(label) \(chunking) vs naive", file: file, line: line)
            XCTAssertLessThan(vsUnchunked / Double(scale), 1e-5, "\(label) \(chunking) vs unchunked", file: file, line: line)
            XCTAssertEqual(entropy, unchunkedEntropy, accuracy: 1e-5 * max(1, reference.entropy),
                           "\(label) \(chunking) entropy", file: file, line: line)
            worstChunked = max(worstChunked, vsReference)
            worstVsUnchunked = max(worstVsUnchunked, vsUnchunked)
            worstEntropy = max(worstEntropy, abs(entropy - reference.entropy))
        }
        print(String(format: "AttentionTests %@ [%d,%d,%d]x%d heads %d: max-abs vs naive unchunked %.2e, chunked %.2e; "
                     + "chunked vs unchunked %.2e; entropy %.4f (naive %.4f), worst entropy error %.2e",
                     label, s.batch, s.queries, s.heads * s.headDim, s.keys, s.heads, error, worstChunked,
                     worstVsUnchunked, unchunkedEntropy, reference.entropy,
                     max(worstEntropy, abs(unchunkedEntropy - reference.entropy))))
    }

    func testPlainAttentionMatchesNaive() {
        checkAgainstReference(oddShape, seed: 1, modifier: nil, label: "plain")
        checkAgainstReference(squareShape, seed: 11, modifier: nil, label: "plain")
    }

    func testPerQueryScaleMatchesNaive() {
        // Even queries x0.8, odd queries x1.2: the kernel must hand the modifier the right query indices.
        let scale = ElementwiseModifier { logit, q, _ in logit * (q % 2 == 0 ? 0.8 : 1.2) }
        checkAgainstReference(oddShape, seed: 21, modifier: scale, label: "per-query scale")
        checkAgainstReference(squareShape, seed: 31, modifier: scale, label: "per-query scale")
    }

    func testLocalWindowMaskMatchesNaive() {
        // 8 x 8 grid, 3 x 3 window clamped at the borders; many 7 x 11 and 1 x 1 blocks are skipped.
        let mask = localWindowMask(grid: 8, window: 3)
        checkAgainstReference(squareShape, seed: 41, modifier: mask, label: "local 3x3 window")
        var unskipped = mask
        unskipped.reportsInactiveBlocks = false  // all-masked blocks now reach the online softmax
        checkAgainstReference(squareShape, seed: 41, modifier: unskipped, label: "local 3x3 window, no skipping")
    }

    func testLogDistanceBiasMatchesNaive() {
        checkAgainstReference(squareShape, seed: 51, modifier: logDistanceBias(grid: 8, strength: 1), label: "log bias c=1")
        checkAgainstReference(squareShape, seed: 52, modifier: logDistanceBias(grid: 8, strength: -0.1),
                              label: "log bias c=-0.1")
    }

    func testAllMaskedBlocksDoNotProduceNaN() {
        checkAgainstReference(oddShape, seed: 61, modifier: sparseMask, label: "sparse mask")
        var unskipped = sparseMask
        unskipped.reportsInactiveBlocks = false
        checkAgainstReference(oddShape, seed: 61, modifier: unskipped, label: "sparse mask, no skipping")
    }

    func testQueryWithoutKeysGetsZeroRow() {
        // Outside the modifier contract, but defined: no NaN, zero output, zero entropy for that query.
        let s = oddShape
        let (q, k, v) = operands(s, seed: 71)
        let blind = ElementwiseModifier(adjustment: { logit, q, _ in q == 5 ? -.infinity : logit }, reportsInactiveBlocks: false)
        for chunking in [AttentionChunking.unbounded, AttentionChunking(queryChunk: 7, keyChunk: 11)] {
            var entropy = 0.0
            let out = ScaledDotProductAttention.compute(query: q, key: k, value: v, heads: s.heads, modifier: blind,
                                                        chunking: chunking, entropy: &entropy)
            XCTAssertTrue(out.scalars.allSatisfy(\.isFinite))
            XCTAssertTrue(entropy.isFinite)
            let channels = s.heads * s.headDim
            for b in 0 ..< s.batch {
                for c in 0 ..< channels { XCTAssertEqual(out.pointer[(b * s.queries + 5) * channels + c], 0) }
            }
        }
    }

    func testCrossAttentionShape() {
        // SD cross-attention: 77 text keys, 8 heads of 40 (a 16 x 16 latent grid instead of 64 x 64).
        let s = Case(batch: 2, heads: 8, headDim: 40, queries: 256, keys: 77)
        let (q, k, v) = operands(s, seed: 81)
        let reference = naiveAttention(query: q, key: k, value: v, heads: s.heads)
        for chunking in [.unbounded, AttentionChunking(queryChunk: 64, keyChunk: 77),
                         AttentionChunking(queryChunk: 100, keyChunk: 16), AttentionChunking(queryChunk: 1, keyChunk: 1)] {
            var entropy = 0.0
            let out = ScaledDotProductAttention.compute(query: q, key: k, value: v, heads: s.heads,
                                                        chunking: chunking, entropy: &entropy)
            let error = maxAbsDifference(out, reference.output)
            XCTAssertLessThan(error, 2e-5, "cross-attention \(chunking)")
            XCTAssertEqual(entropy, reference.entropy, accuracy: 1e-5 * reference.entropy)
            print(String(format: "AttentionTests cross-attention [2,256,320]x77 %d x %d: max-abs %.2e, entropy error %.2e",
                         min(chunking.queryChunk, 256), min(chunking.keyChunk, 77), error, abs(entropy - reference.entropy)))
        }
    }

    /// The register tiles: head dims whose padded width takes each column-group path (16 -> one vector,
    /// 20 and 64 -> two, 40 -> three, 80 -> three + two, 160 -> 3 + 3 + 2 + 2), query counts that are not
    /// multiples of the 12- and 8-row tiles, and key counts ending in a half panel (77 = 64 + 13), a
    /// partial full panel (50 = 32 + 18) or crossing the 128-key value slices (300); plain, masked, with entropy.
    func testHeadDimsAndOddSizesMatchNaive() {
        for (d, queries, keys) in [(16, 33, 77), (20, 33, 50), (40, 33, 77), (40, 45, 300), (64, 25, 77),
                                   (80, 33, 50), (160, 19, 300)] {
            let s = Case(batch: 2, heads: 2, headDim: d, queries: queries, keys: keys)
            checkAgainstReference(s, seed: UInt64(300 + d + keys), modifier: nil, label: "d=\(d) plain")
            checkAgainstReference(s, seed: UInt64(400 + d + keys), modifier: sparseMask, label: "d=\(d) sparse mask")
        }
    }

    /// A single worker (every item on one thread, K and V packed once per head and reused across query chunks)
    /// equals the parallel split for SD's level-0 head dim.
    func testSingleWorkerMatchesParallelHeadDim40() {
        let s = Case(batch: 2, heads: 3, headDim: 40, queries: 70, keys: 90)
        let (q, k, v) = operands(s, seed: 95)
        let chunking = AttentionChunking(queryChunk: 13, keyChunk: 40)
        var parallelEntropy = 0.0, singleEntropy = 0.0
        let parallel = ScaledDotProductAttention.compute(query: q, key: k, value: v, heads: s.heads, chunking: chunking,
                                                         entropy: &parallelEntropy)
        let saved = Parallel.threadCount
        Parallel.threadCount = 1
        defer { Parallel.threadCount = saved }
        let single = ScaledDotProductAttention.compute(query: q, key: k, value: v, heads: s.heads, chunking: chunking,
                                                       entropy: &singleEntropy)
        XCTAssertLessThan(maxAbsDifference(single, parallel), 1e-6)
        XCTAssertEqual(singleEntropy, parallelEntropy, accuracy: 1e-9)
    }

    func testSingleWorkerMatchesParallel() {
        let s = squareShape
        let (q, k, v) = operands(s, seed: 91)
        let chunking = AttentionChunking(queryChunk: 16, keyChunk: 24)
        let parallel = ScaledDotProductAttention.compute(query: q, key: k, value: v, heads: s.heads, chunking: chunking)
        let saved = Parallel.threadCount
        Parallel.threadCount = 1
        defer { Parallel.threadCount = saved }
        let single = ScaledDotProductAttention.compute(query: q, key: k, value: v, heads: s.heads, chunking: chunking)
        XCTAssertLessThan(maxAbsDifference(single, parallel), 1e-6)
    }

    func testFittingRespectsBudget() {
        let workers = Parallel.threadCount
        for (queries, keys) in [(4096, 4096), (4096, 77), (37, 53), (16384, 16384)] {
            for budget in [1 << 10, 1 << 16, 1 << 20, 3 << 22, 1 << 28, 1 << 34] {
                let chunking = AttentionChunking.fitting(bytes: budget, queries: queries, keys: keys, headDim: 40)
                let q = chunking.queryChunk, k = chunking.keyChunk
                XCTAssertTrue((1 ... queries).contains(q) && (1 ... keys).contains(k), "\(chunking) for \(queries)x\(keys)")
                let peak = workers * AttentionChunking.scratchBytesPerWorker(queryChunk: q, keyChunk: k)
                if q > 1 || k > 1 { XCTAssertLessThanOrEqual(peak, budget, "\(chunking) for \(budget) bytes") }
                // Not needlessly small: doubling the query chunk (up to the problem) would overflow the budget.
                if q < queries {
                    let doubled = workers * AttentionChunking.scratchBytesPerWorker(queryChunk: min(2 * q, queries), keyChunk: k)
                    XCTAssertGreaterThan(doubled, budget, "\(chunking) for \(budget) bytes is not the largest")
                }
            }
        }
        let whole = AttentionChunking.fitting(bytes: 1 << 40, queries: 4096, keys: 77, headDim: 40)
        XCTAssertEqual(whole, AttentionChunking(queryChunk: 4096, keyChunk: 77))
        let tiny = AttentionChunking.fitting(bytes: 1, queries: 4096, keys: 4096, headDim: 40)
        XCTAssertEqual(tiny, AttentionChunking(queryChunk: 1, keyChunk: 1))
    }

    func testBudgetedChunkingMatchesUnchunked() {
        // A budget of ~2 KiB per worker forces many small blocks on the 64 x 64 problem.
        let s = squareShape
        let (q, k, v) = operands(s, seed: 101)
        let chunking = AttentionChunking.fitting(bytes: 2048 * Parallel.threadCount, queries: s.queries, keys: s.keys,
                                                 headDim: s.headDim)
        XCTAssertLessThan(chunking.queryChunk * chunking.keyChunk, s.queries * s.keys)
        let unchunked = ScaledDotProductAttention.compute(query: q, key: k, value: v, heads: s.heads)
        let chunked = ScaledDotProductAttention.compute(query: q, key: k, value: v, heads: s.heads, chunking: chunking)
        XCTAssertLessThan(maxAbsDifference(chunked, unchunked), 1e-5)
    }

    /// A 33 x 33 grid (1089 tokens, head dim 40 as at SD's level 0): more keys than one kernel block holds
    /// (`blockShape` caps blocks at 1024 keys), so even `.unbounded` streams two key blocks of unequal size.
    /// Each formulation's kernel output against the naive Double reference, chunked and unchunked.
    func testMultiBlockSelfAttentionMatchesNaiveForEachModifier() {
        let grid = 33, tokens = grid * grid
        XCTAssertEqual(ScaledDotProductAttention.blockShape(chunking: .unbounded, queries: tokens, keys: tokens),
                       AttentionChunking(queryChunk: 256, keyChunk: 1024))
        let s = Case(batch: 1, heads: 2, headDim: 40, queries: tokens, keys: tokens)
        let (q, k, v) = operands(s, seed: 201)
        let modifiers: [(String, ElementwiseModifier?)] = [
            ("plain", nil),
            ("per-query scale", ElementwiseModifier { logit, q, _ in logit * (q % 2 == 0 ? 0.9 : 1.1) }),
            ("local 20x20 window", localWindowMask(grid: grid, window: 20)),
            ("log bias c=1", logDistanceBias(grid: grid, strength: 1)),
        ]
        for (label, modifier) in modifiers {
            let reference = naiveAttention(query: q, key: k, value: v, heads: s.heads,
                                           adjustment: modifier?.adjustment ?? { logit, _, _ in logit })
            var worst = 0.0
            for chunking in [AttentionChunking.unbounded, AttentionChunking(queryChunk: 100, keyChunk: 300),
                             AttentionChunking(queryChunk: 2000, keyChunk: 1088)] {
                var entropy = 0.0
                let out = ScaledDotProductAttention.compute(query: q, key: k, value: v, heads: s.heads,
                                                            modifier: modifier, chunking: chunking, entropy: &entropy)
                let error = maxAbsDifference(out, reference.output)
                worst = max(worst, error)
                XCTAssertLessThan(error, 2e-5, "\(label) \(chunking) vs naive")
                XCTAssertEqual(entropy, reference.entropy, accuracy: 1e-5 * max(1, reference.entropy),
                               "\(label) \(chunking) entropy")
            }
            print(String(format: "AttentionTests multi-block %@ [1,%d,80]: worst max-abs vs naive %.2e, entropy %.4f",
                         label, tokens, worst, reference.entropy))
        }
    }
}
