/// Register-blocked tiles of the attention block products, for `ScaledDotProductAttention`.
///
/// Per block of `mq` queries x `mk` keys of one head: l = alpha Q_c K_c^T and a += P V_c, with the head dim `d`
/// tiny (40 at SD's level 0) and the keys many. General GEMM re-packs the 1 MB P block for every P V product;
/// here the operands are packed once per block into the layouts the tiles read:
///   queries  [mq / 12][d][12]        12 rows side by side per head-dim step,
///   keys     [mk / 32][d][32]        K^T in 32-key panels (zero keys past mk),
///   values   [mk][dPad]              dPad = d rounded up to 16, zero columns past d,
/// and each tile keeps its accumulators in SIMD16 registers (24 of the 32 zmm registers on AVX-512) across
/// the whole reduction: 12 queries x 32 keys over d for the logits, 8 queries x 48 columns over mk for P V.
enum AttentionTiles {
    /// acc + a * b: `MicroKernel.multiplyAdd` (fused where the build targets a CPU with FMA).
    @inline(__always)
    static func fma(_ acc: SIMD16<Float>, _ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
        MicroKernel.multiplyAdd(acc, a, b)
    }

    /// acc + a * b with the scalar `a` broadcast.
    @inline(__always)
    static func fma(_ acc: SIMD16<Float>, _ a: Float, _ b: SIMD16<Float>) -> SIMD16<Float> {
        MicroKernel.multiplyAdd(acc, SIMD16(repeating: a), b)
    }

    /// Query rows per logits tile.
    static let logitRows = 12
    /// Keys per logits tile (two vectors): the panel width of the packed keys and the logits row padding.
    static let keyPanel = 32
    /// Query rows per P V tile.
    static let outputRows = 8
    /// Keys per P V pass over the row tiles.
    static let valueSlice = 128

    /// `n` rounded up to a multiple of `m`.
    @inline(__always)
    static func roundUp(_ n: Int, _ m: Int) -> Int { (n + m - 1) / m * m }

    /// Packs `rows` query rows (row stride `stride`) of `d` values as [rows / 12][d][12]. Rows past `rows` in
    /// the last tile repeat the last real row (the logits tile does not store them). Each head-dim step
    /// gathers 8 + 4 lanes (the vectoriser's scatter for the plain loop is slow).
    static func packQueries(_ q: UnsafePointer<Float>, stride: Int, rows: Int, headDim d: Int,
                            into packed: UnsafeMutablePointer<Float>) {
        let r = logitRows
        for t in 0 ..< (rows + r - 1) / r {
            let tile = packed + t * d * r
            @inline(__always) func row(_ i: Int) -> UnsafePointer<Float> { q + Swift.min(t * r + i, rows - 1) * stride }
            let (r0, r1, r2, r3, r4, r5) = (row(0), row(1), row(2), row(3), row(4), row(5))
            let (r6, r7, r8, r9, r10, r11) = (row(6), row(7), row(8), row(9), row(10), row(11))
            for c in 0 ..< d {
                let destination = UnsafeMutableRawPointer(tile + c * r)
                destination.storeBytes(of: SIMD8<Float>(r0[c], r1[c], r2[c], r3[c], r4[c], r5[c], r6[c], r7[c]),
                                       as: SIMD8<Float>.self)
                destination.storeBytes(of: SIMD4<Float>(r8[c], r9[c], r10[c], r11[c]), toByteOffset: 32,
                                       as: SIMD4<Float>.self)
            }
        }
    }

    /// Packs K^T of `keys` key rows (row stride `stride`) as [keys / 32][d][32], zero-filling keys past `keys`.
    /// Sixteen keys at a time: each head-dim step gathers one vector from 16 rows (lane inserts; the
    /// vectoriser's scatter for the plain loop was the slowest part of the block).
    static func packKeys(_ k: UnsafePointer<Float>, stride s: Int, keys: Int, headDim d: Int,
                         into packed: UnsafeMutablePointer<Float>) {
        let w = keyPanel
        var j0 = 0
        while j0 + 16 <= keys {
            let r = k + j0 * s, panel = packed + j0 / w * d * w + j0 % w
            for c in 0 ..< d {
                let column = SIMD16<Float>(r[c], r[s + c], r[2 * s + c], r[3 * s + c], r[4 * s + c], r[5 * s + c],
                                           r[6 * s + c], r[7 * s + c], r[8 * s + c], r[9 * s + c], r[10 * s + c],
                                           r[11 * s + c], r[12 * s + c], r[13 * s + c], r[14 * s + c], r[15 * s + c])
                UnsafeMutableRawPointer(panel + c * w).storeBytes(of: column, as: SIMD16<Float>.self)
            }
            j0 += 16
        }
        for j in j0 ..< roundUp(keys, w) {
            let panel = packed + j / w * d * w + j % w
            if j < keys {
                for c in 0 ..< d { panel[c * w] = k[j * s + c] }
            } else {
                for c in 0 ..< d { panel[c * w] = 0 }
            }
        }
    }

    /// Copies `keys` value rows (row stride `stride`) of `d` values into rows of `paddedDim`, zero past `d`.
    static func packValues(_ v: UnsafePointer<Float>, stride: Int, keys: Int, headDim d: Int, paddedDim: Int,
                           into packed: UnsafeMutablePointer<Float>) {
        let whole = d / 16 * 16
        for k in 0 ..< keys {
            let source = UnsafeRawPointer(v + k * stride), row = packed + k * paddedDim
            for c in Swift.stride(from: 0, to: whole, by: 16) {
                UnsafeMutableRawPointer(row + c).storeBytes(of: source.loadUnaligned(fromByteOffset: 4 * c, as: SIMD16<Float>.self),
                                                            as: SIMD16<Float>.self)
            }
            if whole < paddedDim {
                var last = SIMD16<Float>()
                for c in whole ..< d { last[c - whole] = v[k * stride + c] }
                UnsafeMutableRawPointer(row + whole).storeBytes(of: last, as: SIMD16<Float>.self)
            }
        }
    }

    /// l = alpha Q K^T for one 12-query tile (packed) and one 32-key panel (`wide`; else its first 16 keys, for
    /// the block's last keys when at most 16 remain): writes rows 0 ..< `rows` of `logits` (row stride
    /// `stride`), 32 or 16 columns each (pad keys past the block come out 0). Inlined with a constant `wide`,
    /// so each width keeps only its accumulators (24 or 12 zmm registers) and no branch in the loop.
    @inline(__always)
    static func logitsTile(wide: Bool, queries qt: UnsafePointer<Float>, keys kt: UnsafePointer<Float>,
                                   headDim d: Int, alpha: Float, rows: Int, logits: UnsafeMutablePointer<Float>,
                                   stride: Int) {
        var a0 = SIMD16<Float>(), b0 = SIMD16<Float>(), a1 = SIMD16<Float>(), b1 = SIMD16<Float>()
        var a2 = SIMD16<Float>(), b2 = SIMD16<Float>(), a3 = SIMD16<Float>(), b3 = SIMD16<Float>()
        var a4 = SIMD16<Float>(), b4 = SIMD16<Float>(), a5 = SIMD16<Float>(), b5 = SIMD16<Float>()
        var a6 = SIMD16<Float>(), b6 = SIMD16<Float>(), a7 = SIMD16<Float>(), b7 = SIMD16<Float>()
        var a8 = SIMD16<Float>(), b8 = SIMD16<Float>(), a9 = SIMD16<Float>(), b9 = SIMD16<Float>()
        var a10 = SIMD16<Float>(), b10 = SIMD16<Float>(), a11 = SIMD16<Float>(), b11 = SIMD16<Float>()
        var q = qt, k = UnsafeRawPointer(kt)
        for _ in 0 ..< d {
            let k0 = k.load(as: SIMD16<Float>.self)
            let k1 = wide ? k.load(fromByteOffset: 64, as: SIMD16<Float>.self) : SIMD16<Float>()
            @inline(__always) func step(_ x: Float, _ lo: inout SIMD16<Float>, _ hi: inout SIMD16<Float>) {
                lo = fma(lo, x, k0)
                if wide { hi = fma(hi, x, k1) }
            }
            step(q[0], &a0, &b0); step(q[1], &a1, &b1); step(q[2], &a2, &b2); step(q[3], &a3, &b3)
            step(q[4], &a4, &b4); step(q[5], &a5, &b5); step(q[6], &a6, &b6); step(q[7], &a7, &b7)
            step(q[8], &a8, &b8); step(q[9], &a9, &b9); step(q[10], &a10, &b10); step(q[11], &a11, &b11)
            q += logitRows
            k += keyPanel * MemoryLayout<Float>.size
        }
        @inline(__always) func store(_ i: Int, _ a: SIMD16<Float>, _ b: SIMD16<Float>) {
            guard i < rows else { return }
            let row = UnsafeMutableRawPointer(logits + i * stride)
            row.storeBytes(of: a * alpha, as: SIMD16<Float>.self)
            if wide { row.storeBytes(of: b * alpha, toByteOffset: 64, as: SIMD16<Float>.self) }
        }
        store(0, a0, b0); store(1, a1, b1); store(2, a2, b2); store(3, a3, b3)
        store(4, a4, b4); store(5, a5, b5); store(6, a6, b6); store(7, a7, b7)
        store(8, a8, b8); store(9, a9, b9); store(10, a10, b10); store(11, a11, b11)
    }

    /// Pointers to 8 P rows from `p` (row stride `stride`); rows past `rows` repeat the last real row
    /// (their results are discarded), so a tile never reads outside the block.
    @inline(__always)
    private static func outputRowPointers(_ p: UnsafePointer<Float>, stride: Int, rows: Int)
        -> (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
            UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>) {
        @inline(__always) func row(_ i: Int) -> UnsafePointer<Float> { p + Swift.min(i, rows - 1) * stride }
        return (row(0), row(1), row(2), row(3), row(4), row(5), row(6), row(7))
    }

    /// acc[i][0 ..< 48] += sum_k P[i][k] V[k][0 ..< 48] for 8 query rows (rows past `rows` not stored):
    /// `p` rows of stride `pStride`, `v` rows of stride `vStride` starting at the tile's first column,
    /// `acc` rows of stride `accStride`.
    @inline(__always)
    static func outputTile3(p: UnsafePointer<Float>, pStride: Int, rows: Int, keys: Int,
                            v: UnsafePointer<Float>, vStride: Int, acc: UnsafeMutablePointer<Float>, accStride: Int) {
        let (p0, p1, p2, p3, p4, p5, p6, p7) = outputRowPointers(p, stride: pStride, rows: rows)
        var a0 = SIMD16<Float>(), b0 = SIMD16<Float>(), c0 = SIMD16<Float>()
        var a1 = SIMD16<Float>(), b1 = SIMD16<Float>(), c1 = SIMD16<Float>()
        var a2 = SIMD16<Float>(), b2 = SIMD16<Float>(), c2 = SIMD16<Float>()
        var a3 = SIMD16<Float>(), b3 = SIMD16<Float>(), c3 = SIMD16<Float>()
        var a4 = SIMD16<Float>(), b4 = SIMD16<Float>(), c4 = SIMD16<Float>()
        var a5 = SIMD16<Float>(), b5 = SIMD16<Float>(), c5 = SIMD16<Float>()
        var a6 = SIMD16<Float>(), b6 = SIMD16<Float>(), c6 = SIMD16<Float>()
        var a7 = SIMD16<Float>(), b7 = SIMD16<Float>(), c7 = SIMD16<Float>()
        var vk = UnsafeRawPointer(v)
        for k in 0 ..< keys {
            let v0 = vk.load(as: SIMD16<Float>.self), v1 = vk.load(fromByteOffset: 64, as: SIMD16<Float>.self)
            let v2 = vk.load(fromByteOffset: 128, as: SIMD16<Float>.self)
            a0 = fma(a0, p0[k], v0); b0 = fma(b0, p0[k], v1); c0 = fma(c0, p0[k], v2)
            a1 = fma(a1, p1[k], v0); b1 = fma(b1, p1[k], v1); c1 = fma(c1, p1[k], v2)
            a2 = fma(a2, p2[k], v0); b2 = fma(b2, p2[k], v1); c2 = fma(c2, p2[k], v2)
            a3 = fma(a3, p3[k], v0); b3 = fma(b3, p3[k], v1); c3 = fma(c3, p3[k], v2)
            a4 = fma(a4, p4[k], v0); b4 = fma(b4, p4[k], v1); c4 = fma(c4, p4[k], v2)
            a5 = fma(a5, p5[k], v0); b5 = fma(b5, p5[k], v1); c5 = fma(c5, p5[k], v2)
            a6 = fma(a6, p6[k], v0); b6 = fma(b6, p6[k], v1); c6 = fma(c6, p6[k], v2)
            a7 = fma(a7, p7[k], v0); b7 = fma(b7, p7[k], v1); c7 = fma(c7, p7[k], v2)
            vk += vStride * MemoryLayout<Float>.size
        }
        @inline(__always) func add(_ i: Int, _ a: SIMD16<Float>, _ b: SIMD16<Float>, _ c: SIMD16<Float>) {
            guard i < rows else { return }
            let row = UnsafeMutableRawPointer(acc + i * accStride)
            row.storeBytes(of: row.loadUnaligned(as: SIMD16<Float>.self) + a, as: SIMD16<Float>.self)
            row.storeBytes(of: row.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self) + b,
                           toByteOffset: 64, as: SIMD16<Float>.self)
            row.storeBytes(of: row.loadUnaligned(fromByteOffset: 128, as: SIMD16<Float>.self) + c,
                           toByteOffset: 128, as: SIMD16<Float>.self)
        }
        add(0, a0, b0, c0); add(1, a1, b1, c1); add(2, a2, b2, c2); add(3, a3, b3, c3)
        add(4, a4, b4, c4); add(5, a5, b5, c5); add(6, a6, b6, c6); add(7, a7, b7, c7)
    }

    /// `outputTile3` for 32 columns.
    @inline(__always)
    static func outputTile2(p: UnsafePointer<Float>, pStride: Int, rows: Int, keys: Int,
                            v: UnsafePointer<Float>, vStride: Int, acc: UnsafeMutablePointer<Float>, accStride: Int) {
        let (p0, p1, p2, p3, p4, p5, p6, p7) = outputRowPointers(p, stride: pStride, rows: rows)
        var a0 = SIMD16<Float>(), b0 = SIMD16<Float>(), a1 = SIMD16<Float>(), b1 = SIMD16<Float>()
        var a2 = SIMD16<Float>(), b2 = SIMD16<Float>(), a3 = SIMD16<Float>(), b3 = SIMD16<Float>()
        var a4 = SIMD16<Float>(), b4 = SIMD16<Float>(), a5 = SIMD16<Float>(), b5 = SIMD16<Float>()
        var a6 = SIMD16<Float>(), b6 = SIMD16<Float>(), a7 = SIMD16<Float>(), b7 = SIMD16<Float>()
        var vk = UnsafeRawPointer(v)
        for k in 0 ..< keys {
            let v0 = vk.load(as: SIMD16<Float>.self), v1 = vk.load(fromByteOffset: 64, as: SIMD16<Float>.self)
            a0 = fma(a0, p0[k], v0); b0 = fma(b0, p0[k], v1)
            a1 = fma(a1, p1[k], v0); b1 = fma(b1, p1[k], v1)
            a2 = fma(a2, p2[k], v0); b2 = fma(b2, p2[k], v1)
            a3 = fma(a3, p3[k], v0); b3 = fma(b3, p3[k], v1)
            a4 = fma(a4, p4[k], v0); b4 = fma(b4, p4[k], v1)
            a5 = fma(a5, p5[k], v0); b5 = fma(b5, p5[k], v1)
            a6 = fma(a6, p6[k], v0); b6 = fma(b6, p6[k], v1)
            a7 = fma(a7, p7[k], v0); b7 = fma(b7, p7[k], v1)
            vk += vStride * MemoryLayout<Float>.size
        }
        @inline(__always) func add(_ i: Int, _ a: SIMD16<Float>, _ b: SIMD16<Float>) {
            guard i < rows else { return }
            let row = UnsafeMutableRawPointer(acc + i * accStride)
            row.storeBytes(of: row.loadUnaligned(as: SIMD16<Float>.self) + a, as: SIMD16<Float>.self)
            row.storeBytes(of: row.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self) + b,
                           toByteOffset: 64, as: SIMD16<Float>.self)
        }
        add(0, a0, b0); add(1, a1, b1); add(2, a2, b2); add(3, a3, b3)
        add(4, a4, b4); add(5, a5, b5); add(6, a6, b6); add(7, a7, b7)
    }

    /// `outputTile3` for 16 columns.
    @inline(__always)
    static func outputTile1(p: UnsafePointer<Float>, pStride: Int, rows: Int, keys: Int,
                            v: UnsafePointer<Float>, vStride: Int, acc: UnsafeMutablePointer<Float>, accStride: Int) {
        let (p0, p1, p2, p3, p4, p5, p6, p7) = outputRowPointers(p, stride: pStride, rows: rows)
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
        var a4 = SIMD16<Float>(), a5 = SIMD16<Float>(), a6 = SIMD16<Float>(), a7 = SIMD16<Float>()
        var vk = UnsafeRawPointer(v)
        for k in 0 ..< keys {
            let v0 = vk.load(as: SIMD16<Float>.self)
            a0 = fma(a0, p0[k], v0); a1 = fma(a1, p1[k], v0)
            a2 = fma(a2, p2[k], v0); a3 = fma(a3, p3[k], v0)
            a4 = fma(a4, p4[k], v0); a5 = fma(a5, p5[k], v0)
            a6 = fma(a6, p6[k], v0); a7 = fma(a7, p7[k], v0)
            vk += vStride * MemoryLayout<Float>.size
        }
        @inline(__always) func add(_ i: Int, _ a: SIMD16<Float>) {
            guard i < rows else { return }
            let row = UnsafeMutableRawPointer(acc + i * accStride)
            row.storeBytes(of: row.loadUnaligned(as: SIMD16<Float>.self) + a, as: SIMD16<Float>.self)
        }
        add(0, a0); add(1, a1); add(2, a2); add(3, a3); add(4, a4); add(5, a5); add(6, a6); add(7, a7)
    }

    /// l = alpha Q K^T over a packed block: `mq` packed query rows, `mk` keys in packed panels, rows of
    /// `logits` with stride `stride` (>= mk rounded up to 32). Columns past mk up to the next multiple of 16
    /// (or 32) are written too (logit 0 of a zero key).
    @inline(never)
    static func logits(queries qt: UnsafePointer<Float>, rows mq: Int, keys kt: UnsafePointer<Float>, count mk: Int,
                       headDim d: Int, alpha: Float, logits: UnsafeMutablePointer<Float>, stride: Int) {
        // Panel outer: one 32-key panel (5 KB at d = 40) stays in L1 while the packed query tiles stream past it.
        for p in 0 ..< (mk + keyPanel - 1) / keyPanel {
            for t in 0 ..< (mq + logitRows - 1) / logitRows {
                let rows = Swift.min(logitRows, mq - t * logitRows)
                let qTile = qt + t * d * logitRows, kPanel = kt + p * d * keyPanel
                let out = logits + t * logitRows * stride + p * keyPanel
                if mk - p * keyPanel <= 16 {
                    logitsTile(wide: false, queries: qTile, keys: kPanel, headDim: d, alpha: alpha, rows: rows,
                               logits: out, stride: stride)
                } else {
                    logitsTile(wide: true, queries: qTile, keys: kPanel, headDim: d, alpha: alpha, rows: rows,
                               logits: out, stride: stride)
                }
            }
        }
    }

    /// acc += P V over a block: `mq` rows of P (stride `pStride`) over `mk` keys, packed values of `paddedDim`
    /// columns, accumulator rows of `paddedDim`. Columns go in groups of 48, 32 or 16.
    @inline(never)
    static func accumulate(p: UnsafePointer<Float>, pStride: Int, rows mq: Int, keys mk: Int,
                           values v: UnsafePointer<Float>, paddedDim: Int, acc: UnsafeMutablePointer<Float>) {
        // Keys in slices of `valueSlice`: a slice of packed V (24 KB at d = 40) stays in L1 across the row tiles.
        for kk in stride(from: 0, to: mk, by: valueSlice) {
          let keys = Swift.min(valueSlice, mk - kk)
          let v = v + kk * paddedDim
          for r0 in stride(from: 0, to: mq, by: outputRows) {
            let rows = Swift.min(outputRows, mq - r0)
            let pTile = p + r0 * pStride + kk, accTile = acc + r0 * paddedDim
            var column = 0
            while column < paddedDim {
                // Vectors left: 1 -> 16, 2 or 4 -> 32 (2 + 2), otherwise 48.
                let left = (paddedDim - column) / 16
                switch left {
                case 1:
                    outputTile1(p: pTile, pStride: pStride, rows: rows, keys: keys, v: v + column, vStride: paddedDim,
                                acc: accTile + column, accStride: paddedDim)
                    column += 16
                case 2, 4:
                    outputTile2(p: pTile, pStride: pStride, rows: rows, keys: keys, v: v + column, vStride: paddedDim,
                                acc: accTile + column, accStride: paddedDim)
                    column += 32
                default:
                    outputTile3(p: pTile, pStride: pStride, rows: rows, keys: keys, v: v + column, vStride: paddedDim,
                                acc: accTile + column, accStride: paddedDim)
                    column += 48
                }
            }
          }
        }
    }
}
