/// Elementwise arithmetic, concatenation, resizing and layout changes.
public enum Elementwise {
    /// Elements per worker below which a loop stays on one thread.
    static let grain = 1 << 16

    /// a + b for tensors of the same shape.
    public static func add(_ a: Tensor, _ b: Tensor) -> Tensor {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.elementwise, profileStart) }
        precondition(a.shape == b.shape, "add: shapes \(a.shape) and \(b.shape) differ")
        let out = Tensor(uninitialized: a.shape)
        let pa = a.pointer, pb = b.pointer, po = out.pointer
        Parallel.forRanges(a.count, minimumPerThread: grain) { range in
            for i in range { po[i] = pa[i] + pb[i] }
        }
        return out
    }

    /// a <- a + b for tensors of the same shape.
    public static func addInPlace(_ a: Tensor, _ b: Tensor) {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.elementwise, profileStart) }
        precondition(a.shape == b.shape, "addInPlace: shapes \(a.shape) and \(b.shape) differ")
        let pa = a.pointer, pb = b.pointer
        Parallel.forRanges(a.count, minimumPerThread: grain) { range in
            for i in range { pa[i] += pb[i] }
        }
    }

    /// a <- a * s.
    public static func scaleInPlace(_ a: Tensor, _ s: Float) {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.elementwise, profileStart) }
        let pa = a.pointer
        Parallel.forRanges(a.count, minimumPerThread: grain) { range in
            for i in range { pa[i] *= s }
        }
    }

    /// x [B, C, H, W] <- x + v [B, C] broadcast over H and W (e.g. the time embedding in a ResNet block).
    public static func addChannelBiasInPlace(_ x: Tensor, _ v: Tensor) {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.elementwise, profileStart) }
        precondition(x.rank >= 2 && v.count == x.shape[0] * x.shape[1],
                     "addChannelBiasInPlace: \(v.shape) does not match the [B, C] of \(x.shape)")
        let planes = x.shape[0] * x.shape[1]
        let plane = x.count / max(planes, 1)
        let px = x.pointer, pv = v.pointer
        Parallel.forRanges(planes, minimumPerThread: max(1, grain / max(plane, 1))) { range in
            for bc in range {
                let p = px + bc * plane, value = pv[bc]
                for i in 0 ..< plane { p[i] += value }
            }
        }
    }

    /// [B, Ca, H, W] ++ [B, Cb, H, W] -> [B, Ca + Cb, H, W] (the UNet skip connections).
    public static func concatChannels(_ a: Tensor, _ b: Tensor) -> Tensor {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.elementwise, profileStart) }
        precondition(a.rank == 4 && b.rank == 4 && a.shape[0] == b.shape[0] && a.shape[2...] == b.shape[2...],
                     "concatChannels: \(a.shape) and \(b.shape) differ outside the channel axis")
        let batch = a.shape[0]
        let aBlock = a.count / max(batch, 1), bBlock = b.count / max(batch, 1)
        let out = Tensor(uninitialized: [batch, a.shape[1] + b.shape[1], a.shape[2], a.shape[3]])
        let pa = a.pointer, pb = b.pointer, po = out.pointer
        Parallel.forEach(batch) { n in
            let o = po + n * (aBlock + bBlock)
            o.update(from: pa + n * aBlock, count: aBlock)
            (o + aBlock).update(from: pb + n * bBlock, count: bBlock)
        }
        return out
    }

    /// Concatenates tensors along axis 0; all other axes must agree.
    public static func concatBatch(_ parts: [Tensor]) -> Tensor {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.elementwise, profileStart) }
        precondition(!parts.isEmpty, "concatBatch needs at least one tensor")
        let first = parts[0]
        precondition(first.rank >= 1, "concatBatch needs tensors of rank >= 1")
        var total = 0
        for part in parts {
            precondition(part.rank == first.rank && part.shape.dropFirst() == first.shape.dropFirst(),
                         "concatBatch: \(part.shape) does not match \(first.shape) outside axis 0")
            total += part.shape[0]
        }
        var shape = first.shape
        shape[0] = total
        let out = Tensor(uninitialized: shape)
        var offset = 0
        for part in parts {
            (out.pointer + offset).update(from: part.pointer, count: part.count)
            offset += part.count
        }
        return out
    }

    /// Nearest-neighbour resize of x [B, C, H, W] to [B, C, height, width], exactly as PyTorch
    /// `F.interpolate(x, size=(height, width), mode="nearest")`: src = min(floor(dst * (in / out)), in - 1)
    /// with the ratio in float, except that equal sizes copy and doubled sizes use dst / 2.
    public static func upsampleNearest(_ x: Tensor, height: Int, width: Int) -> Tensor {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.elementwise, profileStart) }
        precondition(x.rank == 4 && height > 0 && width > 0, "upsampleNearest: \(x.shape) to \(height)x\(width)")
        let planes = x.shape[0] * x.shape[1], inH = x.shape[2], inW = x.shape[3]
        let out = Tensor(uninitialized: [x.shape[0], x.shape[1], height, width])
        let rowIndex = (0 ..< height).map { nearestSource($0, inH, height) }
        let colIndex = (0 ..< width).map { nearestSource($0, inW, width) }
        let px = x.pointer, po = out.pointer
        rowIndex.withUnsafeBufferPointer { ry in
            colIndex.withUnsafeBufferPointer { cx in
                Parallel.forRanges(planes, minimumPerThread: max(1, grain / (height * width))) { range in
                    for bc in range {
                        let s = px + bc * inH * inW, d = po + bc * height * width
                        for y in 0 ..< height {
                            // out[y, x] = in[ry[y], cx[x]]
                            let srow = s + ry[y] * inW, drow = d + y * width
                            for x in 0 ..< width { drow[x] = srow[cx[x]] }
                        }
                    }
                }
            }
        }
        return out
    }

    /// PyTorch's `nearest_idx` (ATen UpSample.h).
    static func nearestSource(_ dst: Int, _ inSize: Int, _ outSize: Int) -> Int {
        if outSize == inSize { return dst }
        if outSize == 2 * inSize { return dst >> 1 }
        let scale = Float(inSize) / Float(outSize)
        return min(Int((Float(dst) * scale).rounded(.down)), inSize - 1)
    }

    /// [B, C, H, W] -> [B, H*W, C] (image to transformer tokens).
    public static func imageToTokens(_ x: Tensor) -> Tensor {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.elementwise, profileStart) }
        precondition(x.rank == 4, "imageToTokens needs [B, C, H, W], got \(x.shape)")
        let batch = x.shape[0], channels = x.shape[1], pixels = x.shape[2] * x.shape[3]
        let out = Tensor(uninitialized: [batch, pixels, channels])
        transposeBatched(x.pointer, out.pointer, batch: batch, rows: channels, cols: pixels)
        return out
    }

    /// [B, H*W, C] -> [B, C, H, W] (transformer tokens back to an image).
    public static func tokensToImage(_ x: Tensor, height: Int, width: Int) -> Tensor {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.elementwise, profileStart) }
        precondition(x.rank == 3 && x.shape[1] == height * width,
                     "tokensToImage: \(x.shape) is not [B, \(height)*\(width), C]")
        let batch = x.shape[0], channels = x.shape[2]
        let out = Tensor(uninitialized: [batch, channels, height, width])
        transposeBatched(x.pointer, out.pointer, batch: batch, rows: height * width, cols: channels)
        return out
    }

    /// dst[b, j, i] = src[b, i, j] for src [batch, rows, cols], in cache-sized tiles.
    static func transposeBatched(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
                                 batch: Int, rows: Int, cols: Int) {
        let tile = 32
        let rowTiles = (rows + tile - 1) / tile
        Parallel.forRanges(batch * rowTiles, minimumPerThread: max(1, grain / max(tile * cols, 1))) { range in
            for job in range {
                let b = job / rowTiles, i0 = (job % rowTiles) * tile, i1 = min(i0 + tile, rows)
                let s = src + b * rows * cols, d = dst + b * rows * cols
                var j0 = 0
                while j0 < cols {
                    let j1 = min(j0 + tile, cols)
                    for i in i0 ..< i1 {
                        for j in j0 ..< j1 { d[j * rows + i] = s[i * cols + j] }
                    }
                    j0 = j1
                }
            }
        }
    }
}
