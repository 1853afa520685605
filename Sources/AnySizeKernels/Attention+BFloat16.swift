import CAnySizeBF16
import Foundation

extension Problem {
    /// `run` with bfloat16 products: per block l = alpha Q_c K_c^T and a += P V_c take Q, K, V and the
    /// probabilities P = e^{l - m} rounded to bfloat16 and accumulate in float32 (`BFloat16MatMul.gemm`); the
    /// online softmax (max, exponentials, sums, rescaling, entropy) stays float32, as in `run`, but runs in C
    /// (`anysize_bf16_softmax_rows`), which writes P in bfloat16 in the same pass as the exponentials.
    /// K^T and V of the current head are packed to bfloat16 panels once per (batch, head), per key block.
    func runBFloat16(items: Range<Int>, path: BFloat16Path) -> Double {
        let d = headDim, dPad = AttentionTiles.roundUp(d, 16)
        // Logits row stride: whole 16-float vectors (the softmax pass reads and writes them) plus 16 floats.
        let stride = AttentionTiles.roundUp(keyChunk, 16) + 16
        let logits = UnsafeMutablePointer<Float>.allocate(capacity: queryChunk * stride)
        let stats = UnsafeMutablePointer<Float>.allocate(capacity: 3 * queryChunk)
        let acc = UnsafeMutablePointer<Float>.allocate(capacity: queryChunk * dPad)
        defer { for buffer in [logits, stats, acc] { buffer.deallocate() } }
        let packedQ = BFloat16Rows(rows: queryChunk, columns: d)
        let packedP = BFloat16Rows(rows: queryChunk, columns: keyChunk)
        let keyBlocks = (keys + keyChunk - 1) / keyChunk
        let keyPanels = BFloat16Panels.elements(k: d, n: keyChunk), valuePanels = BFloat16Panels.elements(k: keyChunk, n: d)
        let packedK = BFloat16Storage(count: keyBlocks * keyPanels), packedV = BFloat16Storage(count: keyBlocks * valuePanels)
        var packedHead = -1
        let rowMax = stats, rowSum = stats + queryChunk, rowEntropy = stats + 2 * queryChunk
        let alpha = 1 / Float(d).squareRoot()
        var entropySum = 0.0
        for index in items {
            let item = self.item(index), q0 = item.q0, q1 = item.q1, mq = item.rows
            packedQ.fill(from: item.query, rows: mq, sourceStride: channels)
            if item.bh != packedHead {
                for kb in 0 ..< keyBlocks {
                    let k0 = kb * keyChunk, mk = min(keyChunk, keys - k0)
                    // K_c^T [d, mk]: element (i, j) = K[k0 + j, i]; V_c [mk, d]: element (i, j) = V[k0 + i, j]
                    BFloat16Panels.pack(item.key + k0 * channels, k: d, n: mk, kStride: 1, nStride: channels,
                                        into: packedK.pointer + kb * keyPanels)
                    BFloat16Panels.pack(item.value + k0 * channels, k: mk, n: d, kStride: channels, nStride: 1,
                                        into: packedV.pointer + kb * valuePanels)
                }
                packedHead = item.bh
            }
            startRows(mq, stats: stats, accumulator: acc, paddedDim: dPad)
            var k0 = 0
            while k0 < keys {
                let k1 = min(k0 + keyChunk, keys), mk = k1 - k0, kb = k0 / keyChunk
                defer { k0 = k1 }
                if let modifier, !modifier.isBlockActive(queries: q0 ..< q1, keys: k0 ..< k1) { continue }
                // l = alpha Q_c K_c^T   [mq, mk], row stride `stride`
                BFloat16MatMul.gemm(m: mq, n: mk, k: d, alpha: alpha, a: packedQ.storage.pointer, lda: packedQ.rowStride,
                                    b: packedK.pointer + kb * keyPanels, c: logits, ldc: stride, accumulate: false, path: path)
                modifier?.adjust(logits, stride: stride, queries: q0 ..< q1, keys: k0 ..< k1)
                // P = bfloat16(e^{l - m'}) with the running statistics and a rescaled, in one pass per row
                anysize_bf16_softmax_rows(logits, stride, mq, mk, rowMax, rowSum, wantsEntropy ? rowEntropy : nil,
                                          acc, dPad, dPad, packedP.storage.pointer, packedP.rowStride)
                // a += P V_c   [mq, d] (the padding columns of a stay 0)
                BFloat16MatMul.gemm(m: mq, n: d, k: mk, a: packedP.storage.pointer, lda: packedP.rowStride,
                                    b: packedV.pointer + kb * valuePanels, c: acc, ldc: dPad, accumulate: true, path: path)
            }
            entropySum += finishRows(mq, output: item.output, accumulator: acc, paddedDim: dPad, sum: rowSum, entropy: rowEntropy)
        }
        return entropySum
    }
}
