/// Area-averaging (box-filter) downscaling of `[B, C, H, W]` tensors, per channel and per plane.
///
/// Output sample i of a side shrunk from n to m (m <= n) averages the input over the interval
/// [i * n / m, (i + 1) * n / m) of input coordinates, each input sample weighted by its overlap with the
/// interval (a pixel is a unit square): out[i] = (m / n) * sum_j |[j, j + 1) ∩ [i n / m, (i + 1) n / m)| * in[j].
/// Both axes separately (the 2-D weights are the products). For integer ratios this is average pooling
/// (torch `avg_pool2d` with kernel = stride = n / m); for others it is OpenCV's `INTER_AREA`. Values are
/// averaged as given (no gamma conversion).
public enum AreaResize {
    /// The (input index, weight) taps of every output sample of a side shrunk from `input` to `output` samples;
    /// each sample's weights sum to 1.
    public static func taps(input: Int, output: Int) -> [[(index: Int, weight: Float)]] {
        precondition(output >= 1 && output <= input, "area resize shrinks: \(input) -> \(output)")
        let scale = Double(input) / Double(output)
        return (0 ..< output).map { i in
            let start = Double(i) * scale, end = Double(i + 1) * scale
            var taps: [(index: Int, weight: Float)] = []
            var j = Int(start.rounded(.down))
            while j < input, Double(j) < end {
                let overlap = min(end, Double(j + 1)) - max(start, Double(j))
                if overlap > 0 { taps.append((j, Float(overlap / scale))) }
                j += 1
            }
            return taps
        }
    }

    /// `x` [B, C, H, W] shrunk to [B, C, height, width] (height <= H, width <= W) by area averaging.
    public static func shrink(_ x: Tensor, height: Int, width: Int) -> Tensor {
        precondition(x.rank == 4, "area resize expects [B, C, H, W], got \(x.shape)")
        let planes = x.dim(0) * x.dim(1), inH = x.dim(2), inW = x.dim(3)
        if height == inH && width == inW { return x.copy() }
        let rows = taps(input: inH, output: height), cols = taps(input: inW, output: width)
        let out = Tensor(uninitialized: [x.dim(0), x.dim(1), height, width])
        let src = x.pointer, dst = out.pointer
        Parallel.forRanges(planes) { range in
            var rowBuffer = [Float](repeating: 0, count: inH * width)   // [H, width]: columns averaged first
            for p in range {
                let plane = src + p * inH * inW
                for y in 0 ..< inH {
                    let line = plane + y * inW
                    for (xo, taps) in cols.enumerated() {
                        var s: Float = 0
                        for t in taps { s += t.weight * line[t.index] }
                        rowBuffer[y * width + xo] = s
                    }
                }
                let target = dst + p * height * width
                for (yo, taps) in rows.enumerated() {
                    for xo in 0 ..< width {
                        var s: Float = 0
                        for t in taps { s += t.weight * rowBuffer[t.index * width + xo] }
                        target[yo * width + xo] = s
                    }
                }
            }
        }
        return out
    }
}
