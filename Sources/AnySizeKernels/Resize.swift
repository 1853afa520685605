/// Bilinear and bicubic resizing of [B, C, H, W] tensors, exactly as PyTorch's CPU
/// `F.interpolate(x, size=(height, width), mode="bilinear" | "bicubic", align_corners=False)` without
/// antialiasing (nearest-neighbour resizing is `Elementwise.upsampleNearest`).
///
/// Both are separable: out[y, x] = sum_i wy_i(y) * (sum_j wx_j(x) * in[iy_i(y), ix_j(x)]), with the taps and
/// weights of each axis computed once, in float, as ATen's `UpSampleKernel.cpp` computes them, and the sums in
/// ATen's order (the inner, horizontal sum first). The source coordinate of output index i is
///   src = scale * (i + 0.5) - 0.5,  scale = in / out  (float; `area_pixel_compute_source_index`).
/// Bilinear clamps src to >= 0 and interpolates between floor(src) and the next index (the last index repeats);
/// equal sizes copy. Bicubic uses Keys' cubic convolution with A = -0.75 on the taps floor(src) - 1 ..< + 3,
/// clamped to the border (`upsample_get_value_bounded`).
extension Elementwise {
    /// PyTorch `F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)` of x [B, C, H, W].
    public static func resizeBilinear(_ x: Tensor, height: Int, width: Int) -> Tensor {
        resize(x, height: height, width: width, rows: ResizeAxis.linear(x.shape[2], height),
               columns: ResizeAxis.linear(x.shape[3], width), label: "resizeBilinear")
    }

    /// PyTorch `F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False)` of x [B, C, H, W].
    public static func resizeBicubic(_ x: Tensor, height: Int, width: Int) -> Tensor {
        resize(x, height: height, width: width, rows: ResizeAxis.cubic(x.shape[2], height),
               columns: ResizeAxis.cubic(x.shape[3], width), label: "resizeBicubic")
    }

    static func resize(_ x: Tensor, height: Int, width: Int, rows: ResizeAxis, columns: ResizeAxis,
                       label: String) -> Tensor {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.elementwise, profileStart) }
        precondition(x.rank == 4 && x.shape[2] > 0 && x.shape[3] > 0 && height > 0 && width > 0,
                     "\(label): \(x.shape) to \(height)x\(width)")
        let planes = x.shape[0] * x.shape[1], inH = x.shape[2], inW = x.shape[3]
        let out = Tensor(uninitialized: [x.shape[0], x.shape[1], height, width])
        if inH == height && inW == width {
            out.pointer.update(from: x.pointer, count: x.count)
            return out
        }
        let taps = rows.taps, tapsX = columns.taps
        let px = UnsafePointer(x.pointer), po = out.pointer
        rows.index.withUnsafeBufferPointer { ry in
            rows.weight.withUnsafeBufferPointer { wy in
                columns.index.withUnsafeBufferPointer { cx in
                    columns.weight.withUnsafeBufferPointer { wx in
                        Parallel.forRanges(planes, minimumPerThread: max(1, grain / (height * width))) { range in
                            // Horizontal pass of one plane: every input row resized to `width` columns.
                            let rowBuffer = UnsafeMutablePointer<Float>.allocate(capacity: inH * width)
                            defer { rowBuffer.deallocate() }
                            for bc in range {
                                let s = px + bc * inH * inW, d = po + bc * height * width
                                for y in 0 ..< inH {
                                    // r[y, x] = sum_j wx[x, j] * in[y, cx[x, j]]
                                    let src = s + y * inW, dst = rowBuffer + y * width
                                    for xo in 0 ..< width {
                                        let t = xo * tapsX
                                        var sum = src[cx[t]] * wx[t]
                                        for j in 1 ..< tapsX { sum += src[cx[t + j]] * wx[t + j] }
                                        dst[xo] = sum
                                    }
                                }
                                for yo in 0 ..< height {
                                    // out[y, :] = sum_i wy[y, i] * r[ry[y, i], :]
                                    let t = yo * taps, dst = d + yo * width
                                    let r0 = rowBuffer + ry[t] * width, w0 = wy[t]
                                    for xo in 0 ..< width { dst[xo] = r0[xo] * w0 }
                                    for i in 1 ..< taps {
                                        let r = rowBuffer + ry[t + i] * width, w = wy[t + i]
                                        for xo in 0 ..< width { dst[xo] += r[xo] * w }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}

/// The source taps and weights of one resized axis: output index i reads input indices
/// index[i * taps ..< (i + 1) * taps] with weights weight[i * taps ..< (i + 1) * taps].
struct ResizeAxis {
    let taps: Int
    let index: [Int]
    let weight: [Float]

    /// PyTorch's `area_pixel_compute_source_index` (align_corners false) in float.
    static func source(_ i: Int, scale: Float) -> Float {
        scale * (Float(i) + 0.5) - 0.5
    }

    /// Linear interpolation (ATen `compute_source_index_and_lambda`): equal sizes copy; otherwise
    /// src clamped to >= 0, i0 = floor(src), i1 = i0 + 1 (i0 at the last index), lambda1 = src - i0.
    static func linear(_ inSize: Int, _ outSize: Int) -> ResizeAxis {
        var index = [Int](), weight = [Float]()
        index.reserveCapacity(2 * outSize)
        weight.reserveCapacity(2 * outSize)
        let scale = Float(inSize) / Float(outSize)
        for i in 0 ..< outSize {
            if inSize == outSize {
                index += [i, i]
                weight += [1, 0]
                continue
            }
            let src = max(source(i, scale: scale), 0)
            let i0 = min(Int(src), inSize - 1)
            let i1 = i0 + (i0 < inSize - 1 ? 1 : 0)
            let lambda1 = min(max(src - Float(i0), 0), 1)
            index += [i0, i1]
            weight += [1 - lambda1, lambda1]
        }
        return ResizeAxis(taps: 2, index: index, weight: weight)
    }

    /// Keys' cubic convolution kernel (A = -0.75, as PyTorch): |x| <= 1 and 1 < |x| < 2.
    static func cubicNear(_ x: Float, _ a: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }
    static func cubicFar(_ x: Float, _ a: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }

    /// Cubic interpolation (ATen `HelperInterpCubic`): i0 = min(floor(src), in - 1), t = clamp(src - i0, 0, 1),
    /// taps i0 - 1 ... i0 + 2 clamped to [0, in - 1], weights (far(t + 1), near(t), near(1 - t), far(2 - t)).
    static func cubic(_ inSize: Int, _ outSize: Int) -> ResizeAxis {
        let a: Float = -0.75
        var index = [Int](), weight = [Float]()
        index.reserveCapacity(4 * outSize)
        weight.reserveCapacity(4 * outSize)
        let scale = Float(inSize) / Float(outSize)
        for i in 0 ..< outSize {
            let src = source(i, scale: scale)
            let i0 = min(Int(src.rounded(.down)), inSize - 1)
            let t = min(max(src - Float(i0), 0), 1)
            for j in 0 ..< 4 { index.append(min(max(i0 - 1 + j, 0), inSize - 1)) }
            weight += [cubicFar(t + 1, a), cubicNear(t, a), cubicNear(1 - t, a), cubicFar(2 - t, a)]
        }
        return ResizeAxis(taps: 4, index: index, weight: weight)
    }
}
