extension Elementwise {
    /// Zero-pads [B, C, H, W] by one row at the bottom and one column at the right -> [B, C, H+1, W+1]
    /// (`F.pad(x, (0, 1, 0, 1))`, as the VAE encoder's downsamplers do before a stride-2 convolution).
    public static func padBottomRight(_ x: Tensor) -> Tensor {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.elementwise, profileStart) }
        precondition(x.rank == 4, "padBottomRight needs [B, C, H, W], got \(x.shape)")
        let planes = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
        let out = Tensor(zeros: [x.shape[0], x.shape[1], h + 1, w + 1])
        let src = x.pointer, dst = out.pointer
        Parallel.forRanges(planes, minimumPerThread: max(1, grain / max(h * w, 1))) { range in
            for p in range {
                for y in 0 ..< h {
                    (dst + (p * (h + 1) + y) * (w + 1)).update(from: src + (p * h + y) * w, count: w)
                }
            }
        }
        return out
    }
}
