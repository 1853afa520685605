import Foundation

/// Conversions between VAE tensors and 8-bit images, matching diffusers' `VaeImageProcessor`.
public enum ImageConversion {
    /// Batch element `index` of a decoded image tensor `[B, 3, H, W]` in [-1, 1] as an 8-bit image,
    /// as `VaeImageProcessor.postprocess(..., output_type="pil")`: `(x * 0.5 + 0.5).clamp(0, 1)`,
    /// then `(v * 255).round()` (NumPy: half to even) to `uint8`.
    public static func image(fromDecoded decoded: Tensor, index: Int) -> RGBImage {
        precondition(decoded.rank == 4 && decoded.shape[1] == 3, "decoded image must be [B, 3, H, W], got \(decoded.shape)")
        precondition(index >= 0 && index < decoded.shape[0], "batch index \(index) out of range for \(decoded.shape)")
        let height = decoded.shape[2], width = decoded.shape[3]
        let plane = height * width
        let base = decoded.pointer + index * 3 * plane
        var pixels = [UInt8](repeating: 0, count: plane * 3)
        for c in 0 ..< 3 {
            for p in 0 ..< plane {
                pixels[p * 3 + c] = byte(fromSigned: base[c * plane + p])
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// An image as a `[1, 3, H, W]` tensor in [-1, 1], as `VaeImageProcessor.preprocess`:
    /// `2 * (pixel / 255) - 1` in float32.
    public static func tensor(from image: RGBImage) -> Tensor {
        let plane = image.width * image.height
        let out = Tensor(zeros: [1, 3, image.height, image.width])  // [1, 3, H, W]
        let dst = out.pointer
        for p in 0 ..< plane {
            for c in 0 ..< 3 {
                let unit = Float(image.pixels[p * 3 + c]) / 255
                dst[c * plane + p] = 2 * unit - 1
            }
        }
        return out
    }

    /// Maps a value in [-1, 1] to 0...255 exactly as diffusers' postprocess does (NaN gives 0).
    @inline(__always)
    public static func byte(fromSigned x: Float) -> UInt8 {
        let v = x * 0.5 + 0.5
        guard v > 0 else { return 0 }  // also catches NaN
        guard v < 1 else { return 255 }
        return UInt8((v * 255).rounded(.toNearestOrEven))
    }

    /// `image` resized to `width` x `height` with a Lanczos-3 filter, computed as PIL's
    /// `Image.resize(..., Image.LANCZOS)` (the filter diffusers' `VaeImageProcessor` uses for init
    /// images): separable, horizontal pass first; when shrinking, the filter is widened by the scale
    /// factor (antialiasing); weights normalised per output pixel and quantised to 22-bit fixed point;
    /// each pass rounds and clamps to 8 bits. Pillow 13 runs the vertical pass first when the height
    /// shrinks much more than the width (a speed change); near hard edges that can move values by a
    /// few levels, so parity is with Pillow 12 and earlier, and with Pillow 13 in all other cases.
    public static func resize(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        precondition(width > 0 && height > 0, "resize target \(width)x\(height) must be positive")
        var current = image
        if width != image.width {
            let weights = LanczosWeights(inSize: image.width, outSize: width)
            var out = RGBImage(width: width, height: image.height)
            for y in 0 ..< image.height {
                let row = y * image.width * 3
                for x in 0 ..< width {
                    let start = weights.starts[x], taps = weights.counts[x], k = x * weights.stride
                    var r = LanczosWeights.half, g = LanczosWeights.half, b = LanczosWeights.half
                    for t in 0 ..< taps {
                        let w = Int(weights.coefficients[k + t]), src = row + (start + t) * 3
                        r += Int(image.pixels[src]) * w
                        g += Int(image.pixels[src + 1]) * w
                        b += Int(image.pixels[src + 2]) * w
                    }
                    let dst = (y * width + x) * 3
                    out.pixels[dst] = LanczosWeights.clip(r)
                    out.pixels[dst + 1] = LanczosWeights.clip(g)
                    out.pixels[dst + 2] = LanczosWeights.clip(b)
                }
            }
            current = out
        }
        if height != image.height {
            let weights = LanczosWeights(inSize: image.height, outSize: height)
            let rowBytes = current.width * 3
            var out = RGBImage(width: current.width, height: height)
            for y in 0 ..< height {
                let start = weights.starts[y], taps = weights.counts[y], k = y * weights.stride
                for i in 0 ..< rowBytes {
                    var acc = LanczosWeights.half
                    for t in 0 ..< taps {
                        acc += Int(current.pixels[(start + t) * rowBytes + i]) * Int(weights.coefficients[k + t])
                    }
                    out.pixels[y * rowBytes + i] = LanczosWeights.clip(acc)
                }
            }
            current = out
        }
        return current
    }
}

/// Per-output-pixel Lanczos-3 taps along one axis, as PIL's `precompute_coeffs` and
/// `normalize_coeffs_8bpc` compute them.
struct LanczosWeights {
    static let precisionBits = 22  // 32 - 8 - 2: room for 8-bit samples and negative lobes in Int32
    static let half = 1 << (precisionBits - 1)

    let stride: Int
    var starts: [Int] = []
    var counts: [Int] = []
    var coefficients: [Int32] = []

    /// lanczos(x) = sinc(x) * sinc(x / 3) for -3 <= x < 3, else 0.
    static func lanczos(_ x: Double) -> Double {
        guard -3 <= x && x < 3 else { return 0 }
        return sinc(x) * sinc(x / 3)
    }

    static func sinc(_ x: Double) -> Double {
        if x == 0 { return 1 }
        let px = x * Double.pi
        return sin(px) / px
    }

    init(inSize: Int, outSize: Int) {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = 3 * filterScale
        let inverseScale = 1 / filterScale
        stride = Int(support.rounded(.up)) * 2 + 1
        coefficients = [Int32](repeating: 0, count: outSize * stride)
        for o in 0 ..< outSize {
            let center = (Double(o) + 0.5) * scale
            // C casts truncate toward zero; the lower bound is clamped to 0 anyway.
            let lo = max(Int(center - support + 0.5), 0)
            let hi = min(Int(center + support + 0.5), inSize)
            var taps = (lo ..< hi).map { LanczosWeights.lanczos((Double($0) - center + 0.5) * inverseScale) }
            let total = taps.reduce(0, +)
            if total != 0 { taps = taps.map { $0 / total } }
            for (t, w) in taps.enumerated() {
                let fixed = w * Double(1 << LanczosWeights.precisionBits)
                coefficients[o * stride + t] = Int32(w < 0 ? fixed - 0.5 : fixed + 0.5)  // truncation toward zero
            }
            starts.append(lo)
            counts.append(hi - lo)
        }
    }

    /// Rounded fixed-point sum to a byte, clamped to 0...255 (`acc` already holds the rounding half).
    @inline(__always)
    static func clip(_ acc: Int) -> UInt8 {
        UInt8(clamping: acc >> precisionBits)
    }
}
