import AnySizeKernels

/// ScaleCrafter re-dilation of one 3x3 padding-1 convolution (METHODS.md, "Composition methods", item 1;
/// ScaleCrafter's `ReDilateConvProcessor`): for a factor d > 1, k = ceil(d);
///   x' = bilinear(x, round(H * k / d), round(W * k / d))     (align_corners false; Python's round, half to even)
///   y' = conv(x', dilation k, padding k)
///   y  = bilinear(y', H, W)
/// For integer d both resizes are the identity and are skipped: y = conv(x, dilation d, padding d), by
/// `DilatedConvolution` (the layer's own fast algorithm on the d x d interleaved sub-grids).
/// Cost: integer d about an undilated call; fractional d about (ceil(d) / d)^2 of one plus two resizes (measured at
/// d = 1.5 for 640->640 at 64x64, batch 2: 2.07 s against 0.93 s undilated, of which the resizes 0.14 s).
/// Memory beyond an undilated call: the sub-grid groups (`DilatedConvolution.maxScratchBytes`) and, for
/// fractional d, the resized input and its convolution ((ceil(d) / d)^2 times the input's and output's size).
extension Conv2D {
    func redilated(_ x: Tensor, factor d: Double) -> Tensor {
        guard d > 1 else { return self(x) }
        let k = Int(d.rounded(.up))
        let dilated = DilatedConvolution()
        let scale = Double(k) / d
        if scale == 1 { return dilated.forward(x, layer: self, dilation: k) }
        let height = x.dim(2), width = x.dim(3)
        let resized = Elementwise.resizeBilinear(x, height: Self.pythonRound(Double(height) * scale),
                                                 width: Self.pythonRound(Double(width) * scale))
        let y = dilated.forward(resized, layer: self, dilation: k)  // [B, O, H', W']
        return Elementwise.resizeBilinear(y, height: height, width: width)
    }

    /// Python 3's `round(x)` for a float: the nearest integer, ties to even; at least 1 (a side of a tensor).
    static func pythonRound(_ x: Double) -> Int { max(1, Int(x.rounded(.toNearestOrEven))) }
}
