/// A stride-1 "same" convolution layer run with its taps `dilation` pixels apart and padding
/// `layer.padding * dilation` (PyTorch `Conv2d(dilation=d, padding=p*d)`; ScaleCrafter's re-dilation of a 3x3
/// padding-1 layer), keeping the layer's fast algorithms.
///
/// Sub-grids: output pixel (y, x) = (d*v + ry, d*u + rx) reads only input pixels (d*(v + ky - 1) + ry,
/// d*(u + kx - 1) + rx), i.e. sub-grid (ry, rx) = in[ry::d, rx::d] at (v + ky - 1, u + kx - 1). So
///   out[ry::d, rx::d] = conv_undilated(in[ry::d, rx::d])
/// exactly, for each of the d x d sub-grids, with the layer's own padding: a tap outside the sub-grid is a tap
/// outside the image. Sub-grids are gathered into the batch axis, [g * B, I, ceil(H / d), ceil(W / d)] for a
/// group of g of them (the shorter ones zero-padded at the bottom and right, which is again outside the image),
/// run through the layer's algorithm (Winograd when the grid is large enough: a dilated call costs what an
/// undilated one costs) and scattered back. Groups are sized so the gathered input and output together stay
/// within `maxScratchBytes` (at least one sub-grid per group), so scratch does not grow with the image.
///
/// `Im2ColConvolution.forward(_:layer:dilation:)` computes the same with dilated taps (its reference and the
/// choice for layers that are not stride-1 "same" convolutions).
///
/// Measured (`conv-bench --dilation D`, 2 shared cores under load, median of 5, SD1.5 layers at batch 2):
/// 640->640 at 64x64: undilated 0.96 s; d = 2: sub-grids 1.08 s, im2col 2.02 s; d = 3: 1.27 s vs 1.96 s.
/// 1280->1280 at 32x32: undilated 0.85 s; d = 2: 0.94 s vs 2.06 s; d = 3: 1.50 s vs 2.06 s.
public struct DilatedConvolution: Sendable {
    /// Upper bound on one group's gathered input and output together, in bytes.
    public let maxScratchBytes: Int

    /// Groups of at most 64 MB.
    public init() { self.init(maxScratchBytes: 64 << 20) }

    public init(maxScratchBytes: Int) {
        precondition(maxScratchBytes > 0, "maxScratchBytes must be positive")
        self.maxScratchBytes = maxScratchBytes
    }

    /// Whether `layer` has the geometry the sub-grid method handles: stride 1, odd kernel k, padding (k - 1) / 2.
    public static func supports(_ layer: Conv2D) -> Bool {
        layer.stride == 1 && layer.kernelSize % 2 == 1 && layer.padding * 2 == layer.kernelSize - 1
    }

    /// out [B, O, H, W] = bias + conv(input [B, I, H, W]) with dilation `dilation` and padding
    /// `layer.padding * dilation`; dilation 1 is the layer's own call.
    public func forward(_ input: Tensor, layer: Conv2D, dilation d: Int) -> Tensor {
        precondition(d >= 1, "DilatedConvolution: dilation \(d)")
        precondition(Self.supports(layer), "DilatedConvolution needs a stride-1 'same' layer, got "
                     + "k\(layer.kernelSize) s\(layer.stride) p\(layer.padding)")
        precondition(input.rank == 4 && input.shape[1] == layer.inChannels,
                     "Conv2D expects [B, \(layer.inChannels), H, W], got \(input.shape)")
        if d == 1 { return layer(input) }
        let batch = input.shape[0], inC = layer.inChannels, outC = layer.outChannels
        let height = input.shape[2], width = input.shape[3]
        let gridH = (height + d - 1) / d, gridW = (width + d - 1) / d
        let subGrids = d * d
        let bytesPerGrid = batch * (inC + outC) * gridH * gridW * MemoryLayout<Float>.stride
        let perGroup = max(1, min(subGrids, maxScratchBytes / max(bytesPerGrid, 1)))
        let groups = (subGrids + perGroup - 1) / perGroup
        let groupSize = (subGrids + groups - 1) / groups   // balanced groups

        let out = Tensor(uninitialized: [batch, outC, height, width])  // every pixel in exactly one sub-grid
        for first in stride(from: 0, to: subGrids, by: groupSize) {
            let grids = Array(first ..< min(first + groupSize, subGrids))
            // [g * B, O, gridH, gridW]; the gathered input is a temporary, freed once the layer has run.
            let convolved = layer(gather(input, grids: grids, dilation: d, gridHeight: gridH, gridWidth: gridW))
            scatter(convolved, into: out, grids: grids, dilation: d)
        }
        return out
    }

    /// g[(j * B + b), c, v, u] = in[b, c, d*v + ry_j, d*u + rx_j] for the sub-grids j of `grids`
    /// (index r = ry * d + rx), 0 past the image.
    func gather(_ input: Tensor, grids: [Int], dilation d: Int, gridHeight gh: Int, gridWidth gw: Int) -> Tensor {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.elementwise, profileStart) }
        let batch = input.shape[0], channels = input.shape[1], height = input.shape[2], width = input.shape[3]
        let planes = batch * channels
        let out = Tensor(uninitialized: [grids.count * batch, channels, gh, gw])
        let src = UnsafePointer(input.pointer), dst = out.pointer
        Parallel.forRanges(grids.count * planes, minimumPerThread: max(1, (1 << 16) / max(gh * gw, 1))) { range in
            for job in range {
                let j = job / planes, plane = job % planes, ry = grids[j] / d, rx = grids[j] % d
                let s = src + plane * height * width, t = dst + job * gh * gw
                let rows = (height - ry + d - 1) / d, columns = (width - rx + d - 1) / d
                for v in 0 ..< gh {
                    let row = t + v * gw
                    guard v < rows else { row.update(repeating: 0, count: gw); continue }
                    let from = s + (d * v + ry) * width + rx
                    for u in 0 ..< columns { row[u] = from[d * u] }
                    if columns < gw { (row + columns).update(repeating: 0, count: gw - columns) }
                }
            }
        }
        return out
    }

    /// out[b, c, d*v + ry_j, d*u + rx_j] = g[(j * B + b), c, v, u] for the pixels inside the image.
    func scatter(_ grids: Tensor, into out: Tensor, grids indices: [Int], dilation d: Int) {
        let profileStart = Profiler.begin()
        defer { Profiler.end(.elementwise, profileStart) }
        let batch = out.shape[0], channels = out.shape[1], height = out.shape[2], width = out.shape[3]
        let gh = grids.shape[2], gw = grids.shape[3]
        let planes = batch * channels
        let src = UnsafePointer(grids.pointer), dst = out.pointer
        Parallel.forRanges(indices.count * planes, minimumPerThread: max(1, (1 << 16) / max(gh * gw, 1))) { range in
            for job in range {
                let j = job / planes, plane = job % planes, ry = indices[j] / d, rx = indices[j] % d
                let s = src + job * gh * gw, t = dst + plane * height * width
                let rows = (height - ry + d - 1) / d, columns = (width - rx + d - 1) / d
                for v in 0 ..< rows {
                    let from = s + v * gw, row = t + (d * v + ry) * width + rx
                    for u in 0 ..< columns { row[d * u] = from[u] }
                }
            }
        }
    }
}
