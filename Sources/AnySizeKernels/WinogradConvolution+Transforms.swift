/// The three transforms of Winograd F(4x4, 3x3), on 4 lanes at a time (16 for the weights).
///
/// Matrices (interpolation points 0, ±1, ±2, ∞):
///   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
///   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
///   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
/// Transformed index ξ = 6 ξy + ξx (ξy from the vertical pass). Lanes run over tiles of a tile row (input and
/// output) or over input channels (weights); row buffers hold tile columns split by phase (x mod 4), so every
/// load is contiguous.
enum WinogradKernels {
    typealias Vec = SIMD4<Float>

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> Vec {
        UnsafeRawPointer(p).loadUnaligned(as: Vec.self)
    }

    @inline(__always) static func store(_ v: Vec, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self)
    }

    /// (B^T d) for one 6-vector d.
    @inline(__always)
    static func inputRow(_ d0: Vec, _ d1: Vec, _ d2: Vec, _ d3: Vec, _ d4: Vec, _ d5: Vec)
        -> (Vec, Vec, Vec, Vec, Vec, Vec) {
        let a = d4 - 4 * d2, b = d3 - 4 * d1      // ξ1, ξ2 = a ± b
        let c = d4 - d2, e = 2 * (d3 - d1)        // ξ3, ξ4 = c ± e
        return (4 * d0 - 5 * d2 + d4, a + b, a - b, c + e, c - e, 4 * d1 - 5 * d3 + d5)
    }

    @inline(__always)
    static func inputRowOf(_ d: (Vec, Vec, Vec, Vec, Vec, Vec)) -> (Vec, Vec, Vec, Vec, Vec, Vec) {
        inputRow(d.0, d.1, d.2, d.3, d.4, d.5)
    }

    /// (A^T m) for one 6-vector m.
    @inline(__always)
    static func outputRow(_ m0: Vec, _ m1: Vec, _ m2: Vec, _ m3: Vec, _ m4: Vec, _ m5: Vec) -> (Vec, Vec, Vec, Vec) {
        let s1 = m1 + m2, d1 = m1 - m2, s2 = m3 + m4, d2 = m3 - m4
        return (m0 + s1 + s2, d1 + 2 * d2, s1 + 4 * s2, d1 + 8 * d2 + m5)
    }

    /// The 4x4 transpose: lane l of the result k is lane k of input l.
    @inline(__always)
    static func transpose(_ a: Vec, _ b: Vec, _ c: Vec, _ d: Vec) -> (Vec, Vec, Vec, Vec) {
        (Vec(a[0], b[0], c[0], d[0]), Vec(a[1], b[1], c[1], d[1]),
         Vec(a[2], b[2], c[2], d[2]), Vec(a[3], b[3], c[3], d[3]))
    }

    /// Phase-array length for a segment of `tiles` tiles: whole lane groups plus one more group.
    static func phaseStride(_ tiles: Int) -> Int { (tiles + 3) / 4 * 4 + 4 }

    /// Floats of `work` that `transformInput` needs for segments of up to `tiles` tiles.
    static func workFloats(tiles: Int) -> Int { 24 * phaseStride(tiles) }

    /// Floats of `work` that `transformWeights` needs for `inputs` input channels at a time.
    static func weightWorkFloats(inputs: Int) -> Int { 18 * ((inputs + 15) / 16 * 16) }

    /// (G g) for one 3-vector g, 16 lanes.
    @inline(__always)
    static func weightRow16(_ g0: SIMD16<Float>, _ g1: SIMD16<Float>, _ g2: SIMD16<Float>)
        -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        let s = g0 + g2, t = g0 * (1 / 24) + g2 * (1 / 6), h = g1 * (1 / 12)
        return (g0 * 0.25, (s + g1) * (-1 / 6), (s - g1) * (-1 / 6), t + h, t - h, g2)
    }

    /// U[ξ * xiStride + (o - outChannels.lowerBound) * rowStride + (i - inputs.lowerBound)] = (G g_oi G^T)[ξ]
    /// for o in `outChannels`, i in `inputs`; w is taps-major [O, 3, 3, inChannels] (`Conv2D.weight`), so each
    /// tap's input channels load as vectors. `work` holds `weightWorkFloats` floats.
    ///
    /// Lanes run over 16 input channels: the vertical pass (G g per kernel column) goes to `work`, then the
    /// horizontal pass per row ξy, so each store fills a cache line of one ξ plane and few values stay live.
    static func transformWeights(_ w: UnsafePointer<Float>, inChannels: Int, outChannels: Range<Int>,
                                 inputs: Range<Int>, into u: UnsafeMutablePointer<Float>, rowStride: Int,
                                 xiStride: Int, work t: UnsafeMutablePointer<Float>) {
        typealias Lanes = SIMD16<Float>
        let count = inputs.count, i16 = (count + 15) / 16 * 16, whole = count / 16 * 16
        @inline(__always) func load16(_ p: UnsafePointer<Float>, _ i: Int) -> Lanes {
            if i < whole { return UnsafeRawPointer(p + i).loadUnaligned(as: Lanes.self) }
            var v = Lanes()
            for l in 0 ..< count - i { v[l] = p[i + l] }
            return v
        }
        @inline(__always) func store16(_ v: Lanes, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
            if i < whole {
                UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: Lanes.self)
            } else {
                for l in 0 ..< count - i { p[i + l] = v[l] }
            }
        }
        for o in outChannels {
            let g = w + o * 9 * inChannels + inputs.lowerBound  // tap k at g + k * inChannels
            // t[kx][ξy] = (G g[:, kx])[ξy]: the vertical pass per kernel column kx.
            for kx in 0 ..< 3 {
                let g0 = g + kx * inChannels, g1 = g + (3 + kx) * inChannels, g2 = g + (6 + kx) * inChannels
                let tk = t + 6 * kx * i16
                for i in stride(from: 0, to: count, by: 16) {
                    let r = weightRow16(load16(g0, i), load16(g1, i), load16(g2, i))
                    let p = UnsafeMutableRawPointer(tk + i)
                    p.storeBytes(of: r.0, as: Lanes.self)
                    p.storeBytes(of: r.1, toByteOffset: 4 * i16, as: Lanes.self)
                    p.storeBytes(of: r.2, toByteOffset: 8 * i16, as: Lanes.self)
                    p.storeBytes(of: r.3, toByteOffset: 12 * i16, as: Lanes.self)
                    p.storeBytes(of: r.4, toByteOffset: 16 * i16, as: Lanes.self)
                    p.storeBytes(of: r.5, toByteOffset: 20 * i16, as: Lanes.self)
                }
            }
            // U[6 ξy + ξx] = (G t[:, ξy])[ξx]: the horizontal pass per row ξy.
            let dst = u + (o - outChannels.lowerBound) * rowStride
            for xiY in 0 ..< 6 {
                let t0 = UnsafeRawPointer(t + xiY * i16), t1 = UnsafeRawPointer(t + (6 + xiY) * i16)
                let t2 = UnsafeRawPointer(t + (12 + xiY) * i16)
                let p = dst + 6 * xiY * xiStride
                for i in stride(from: 0, to: count, by: 16) {
                    let r = weightRow16(t0.loadUnaligned(fromByteOffset: 4 * i, as: Lanes.self),
                                        t1.loadUnaligned(fromByteOffset: 4 * i, as: Lanes.self),
                                        t2.loadUnaligned(fromByteOffset: 4 * i, as: Lanes.self))
                    store16(r.0, p, i)
                    store16(r.1, p + xiStride, i)
                    store16(r.2, p + 2 * xiStride, i)
                    store16(r.3, p + 3 * xiStride, i)
                    store16(r.4, p + 4 * xiStride, i)
                    store16(r.5, p + 5 * xiStride, i)
                }
            }
        }
    }

    /// V[ξ, i, j] = (B^T d B)[ξ] for the 6x6 patch d of tile (tileRow, tiles.lowerBound + j) of every channel i
    /// of `plane` [I, H, W] (zero outside the image); V rows are `ld` apart, ξ planes `xiStride` apart.
    /// Writes up to 3 columns past the segment (lanes of the last group).
    static func transformInput(_ plane: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
                               tileRow ty: Int, tiles: Range<Int>, into v: UnsafeMutablePointer<Float>, ld: Int,
                               xiStride: Int, work: UnsafeMutablePointer<Float>) {
        let n = tiles.count, s = phaseStride(n), len = 4 * s
        // q[ξy, φ, j] = (B^T d)[ξy] of input column x0 + 4 j + φ, d its six rows 4 ty - 1 ..< 4 ty + 5.
        let q = work
        let x0 = 4 * tiles.lowerBound - 1
        let y0 = 4 * ty - 1
        let valid = (0 ..< 6).map { y0 + $0 >= 0 && y0 + $0 < height }
        let v0 = valid[0], v1 = valid[1], v2 = valid[2], v3 = valid[3], v4 = valid[4], v5 = valid[5]
        for i in 0 ..< channels {
            let src = plane + i * height * width + y0 * width
            // Column d of 4 adjacent input columns starting at x (rows outside the image are zero).
            @inline(__always) func column(_ x: Int) -> (Vec, Vec, Vec, Vec, Vec, Vec) {
                let p = src + x
                return (v0 ? load(p) : .zero, v1 ? load(p + width) : .zero, v2 ? load(p + 2 * width) : .zero,
                        v3 ? load(p + 3 * width) : .zero, v4 ? load(p + 4 * width) : .zero,
                        v5 ? load(p + 5 * width) : .zero)
            }
            var j = 0
            while j < s {
                let x = x0 + 4 * j
                if j + 4 <= s && x >= 0 && x + 16 <= width {
                    // Vertical pass on 16 columns, then split by phase: lane l of phase φ is column x + 4 l + φ.
                    let a = inputRowOf(column(x)), b = inputRowOf(column(x + 4))
                    let c = inputRowOf(column(x + 8)), d = inputRowOf(column(x + 12))
                    @inline(__always) func put(_ xiY: Int, _ a: Vec, _ b: Vec, _ c: Vec, _ d: Vec) {
                        let t = transpose(a, b, c, d), dst = q + xiY * len + j
                        store(t.0, dst)
                        store(t.1, dst + s)
                        store(t.2, dst + 2 * s)
                        store(t.3, dst + 3 * s)
                    }
                    put(0, a.0, b.0, c.0, d.0)
                    put(1, a.1, b.1, c.1, d.1)
                    put(2, a.2, b.2, c.2, d.2)
                    put(3, a.3, b.3, c.3, d.3)
                    put(4, a.4, b.4, c.4, d.4)
                    put(5, a.5, b.5, c.5, d.5)
                    j += 4
                } else {
                    // Lanes are the four phases of slot j; columns outside the image are zero.
                    @inline(__always) func at(_ r: Int, _ valid: Bool) -> Vec {
                        guard valid else { return .zero }
                        var e = Vec.zero
                        for phase in 0 ..< 4 where x + phase >= 0 && x + phase < width {
                            e[phase] = src[r * width + x + phase]
                        }
                        return e
                    }
                    let t = inputRow(at(0, v0), at(1, v1), at(2, v2), at(3, v3), at(4, v4), at(5, v5))
                    for phase in 0 ..< 4 {
                        let dst = q + phase * s + j
                        dst[0] = t.0[phase]
                        dst[len] = t.1[phase]
                        dst[2 * len] = t.2[phase]
                        dst[3 * len] = t.3[phase]
                        dst[4 * len] = t.4[phase]
                        dst[5 * len] = t.5[phase]
                    }
                    j += 1
                }
            }
            // Tile j's columns k = 0 ..< 6 are phases 0, 1, 2, 3 at j and phases 0, 1 at j + 1.
            for xiY in 0 ..< 6 {
                let qq = q + xiY * len
                let dst = v + 6 * xiY * xiStride + i * ld
                for j in stride(from: 0, to: n, by: 4) {
                    let t = inputRow(load(qq + j), load(qq + s + j), load(qq + 2 * s + j), load(qq + 3 * s + j),
                                     load(qq + j + 1), load(qq + s + j + 1))
                    store(t.0, dst + j)
                    store(t.1, dst + xiStride + j)
                    store(t.2, dst + 2 * xiStride + j)
                    store(t.3, dst + 3 * xiStride + j)
                    store(t.4, dst + 4 * xiStride + j)
                    store(t.5, dst + 5 * xiStride + j)
                }
            }
        }
    }

    /// out[o, 4 ty + py, 4 (tiles.lowerBound + j) + px] = bias[o] + (A^T M_oj A)[py, px] for every row o of
    /// m [36, ., ld] (rows `ld` apart, ξ planes `xiStride` apart), inside the H x W image; `out` is [rows, H, W].
    static func transformOutput(_ m: UnsafePointer<Float>, ld: Int, xiStride: Int, rows: Int,
                                bias: UnsafePointer<Float>?, height: Int, width: Int, tileRow ty: Int,
                                tiles: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        let n = tiles.count
        let outRows = min(4, height - 4 * ty)
        for o in 0 ..< rows {
            let src = m + o * ld
            let dst = out + o * height * width + 4 * ty * width
            let b = Vec(repeating: bias?[o] ?? 0)
            for j in stride(from: 0, to: n, by: 4) {
                // Horizontal pass on each of the six rows ξy: h_ξy = (A^T m[ξy, 0 ..< 6]).
                @inline(__always) func horizontal(_ xiY: Int) -> (Vec, Vec, Vec, Vec) {
                    let row = src + 6 * xiY * xiStride + j
                    return outputRow(load(row), load(row + xiStride), load(row + 2 * xiStride),
                                     load(row + 3 * xiStride), load(row + 4 * xiStride), load(row + 5 * xiStride))
                }
                let h0 = horizontal(0), h1 = horizontal(1), h2 = horizontal(2)
                let h3 = horizontal(3), h4 = horizontal(4), h5 = horizontal(5)
                // Vertical pass per output column px: c_px = (py 0, 1, 2, 3).
                let c0 = outputRow(h0.0, h1.0, h2.0, h3.0, h4.0, h5.0)
                let c1 = outputRow(h0.1, h1.1, h2.1, h3.1, h4.1, h5.1)
                let c2 = outputRow(h0.2, h1.2, h2.2, h3.2, h4.2, h5.2)
                let c3 = outputRow(h0.3, h1.3, h2.3, h3.3, h4.3, h5.3)
                let xFirst = 4 * (tiles.lowerBound + j)
                let full = j + 4 <= n && xFirst + 16 <= width
                let lanes = min(4, n - j)
                // Writes output row py from its four pixel columns (lanes are tiles j ..< j + 4).
                @inline(__always) func put(_ py: Int, _ p0: Vec, _ p1: Vec, _ p2: Vec, _ p3: Vec) {
                    let line = dst + py * width + xFirst
                    if full {
                        // Lane l of the transposed columns is tile j + l: 4 adjacent pixels each.
                        let t = transpose(p0 + b, p1 + b, p2 + b, p3 + b)
                        store(t.0, line)
                        store(t.1, line + 4)
                        store(t.2, line + 8)
                        store(t.3, line + 12)
                    } else {
                        for l in 0 ..< lanes {
                            let x = xFirst + 4 * l
                            if x < width { line[4 * l] = p0[l] + b[l] }
                            if x + 1 < width { line[4 * l + 1] = p1[l] + b[l] }
                            if x + 2 < width { line[4 * l + 2] = p2[l] + b[l] }
                            if x + 3 < width { line[4 * l + 3] = p3[l] + b[l] }
                        }
                    }
                }
                put(0, c0.0, c1.0, c2.0, c3.0)
                if outRows > 1 { put(1, c0.1, c1.1, c2.1, c3.1) }
                if outRows > 2 { put(2, c0.2, c1.2, c2.2, c3.2) }
                if outRows > 3 { put(3, c0.3, c1.3, c2.3, c3.3) }
            }
        }
    }
}
