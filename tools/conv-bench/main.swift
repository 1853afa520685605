// Micro-benchmark of single 3x3 stride-1 padding-1 convolution layers: im2col + GEMM vs Winograd F(4x4, 3x3).
//
//   swift build -c release --product conv-bench
//   .build/release/conv-bench                       # the default layer list
//   .build/release/conv-bench 320:320:64:64:2 ...   # in:out:height:width:batch
//   options: --repeats N (default 3), --tiles T (Winograd tiles per block), --scratch-mb S,
//            --winograd-only (skip im2col, e.g. under a profiler),
//            --blocked (BlockedWinogradConvolution instead of WinogradConvolution; --out-block N, --in-block N)
//   .build/release/conv-bench --dilation D 640:640:64:64:2 ...
//            re-dilated layers (ScaleCrafter, D > 1, may be fractional): the undilated call (AutomaticConvolution)
//            against dilation k = ceil(D) by im2col with dilated taps and by DilatedConvolution's sub-grids; for a
//            fractional D also the whole re-dilated call (bilinear resize by k / D, sub-grids, resize back), as
//            AnySize's `Conv2D.redilated` composes it.
//
// Runs the two algorithms alternately (the machine is shared), prints the median seconds of each and the
// effective GFLOP/s = direct-convolution FLOPs (2 * O * I * 9 * H * W * B) / seconds, plus the max difference
// between the two outputs relative to max|im2col output|. Set OPENBLAS_CORETYPE=SkylakeX (or Haswell) on a
// DYNAMIC_ARCH OpenBLAS that misdetects the CPU, as `anysize` does for itself.
import AnySizeKernels
import Foundation

struct Case { let inChannels, outChannels, height, width, batch: Int }

var cases: [Case] = []
var repeats = 3
var tilesPerBlock = WinogradConvolution().tilesPerBlock
var scratchBytes = WinogradConvolution().maxScratchBytes
var winogradOnly = false
var blocked = false
var dilation: Double? = nil
var outBlock = BlockedWinogradConvolution().outBlock
var inBlock = BlockedWinogradConvolution().inBlock
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--repeats": repeats = Int(arguments.popFirst() ?? "") ?? repeats
    case "--tiles": tilesPerBlock = Int(arguments.popFirst() ?? "") ?? tilesPerBlock
    case "--winograd-only": winogradOnly = true
    case "--blocked": blocked = true
    case "--out-block": outBlock = Int(arguments.popFirst() ?? "") ?? outBlock
    case "--in-block": inBlock = Int(arguments.popFirst() ?? "") ?? inBlock
    case "--scratch-mb": scratchBytes = (Int(arguments.popFirst() ?? "") ?? 64) << 20
    case "--dilation":
        guard let d = Double(arguments.popFirst() ?? ""), d > 1 else {
            FileHandle.standardError.write(Data("--dilation needs a factor above 1\n".utf8))
            exit(2)
        }
        dilation = d
    default:
        let v = argument.split(separator: ":").compactMap { Int($0) }
        guard v.count == 5 else {
            FileHandle.standardError.write(Data("expected in:out:height:width:batch, got \(argument)\n".utf8))
            exit(2)
        }
        cases.append(Case(inChannels: v[0], outChannels: v[1], height: v[2], width: v[3], batch: v[4]))
    }
}
if cases.isEmpty {
    cases = [
        // UNet 512x512, batch 2 (CFG): levels 0..3, including the up path's concatenated inputs.
        Case(inChannels: 320, outChannels: 320, height: 64, width: 64, batch: 2),
        Case(inChannels: 640, outChannels: 320, height: 64, width: 64, batch: 2),
        Case(inChannels: 640, outChannels: 640, height: 32, width: 32, batch: 2),
        Case(inChannels: 1280, outChannels: 1280, height: 16, width: 16, batch: 2),
        Case(inChannels: 2560, outChannels: 1280, height: 16, width: 16, batch: 2),
        Case(inChannels: 1280, outChannels: 1280, height: 8, width: 8, batch: 2),
        Case(inChannels: 4, outChannels: 320, height: 64, width: 64, batch: 2),
        // VAE decode 512x512.
        Case(inChannels: 512, outChannels: 512, height: 64, width: 64, batch: 1),
        Case(inChannels: 512, outChannels: 512, height: 128, width: 128, batch: 1),
        Case(inChannels: 256, outChannels: 256, height: 256, width: 256, batch: 1),
        Case(inChannels: 128, outChannels: 128, height: 512, width: 512, batch: 1),
        Case(inChannels: 128, outChannels: 3, height: 512, width: 512, batch: 1),
        Case(inChannels: 4, outChannels: 512, height: 64, width: 64, batch: 1),
    ]
}

/// Deterministic uniform values in [-scale, scale).
func randomTensor(_ shape: [Int], seed: UInt64, scale: Float) -> Tensor {
    var state = seed
    let t = Tensor(zeros: shape)
    for i in 0 ..< t.count {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        t.pointer[i] = scale * (Float(state >> 40) / Float(1 << 23) - 1)
    }
    return t
}

func seconds(_ body: () -> Tensor) -> (Double, Tensor) {
    let start = DispatchTime.now().uptimeNanoseconds
    let out = body()
    return (Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9, out)
}

/// Median seconds of `body` over `repeats` runs after one warm-up, and its last result.
func median(_ body: () -> Tensor) -> (Double, Tensor) {
    _ = body()
    var times: [Double] = [], last = Tensor(zeros: [1])
    for _ in 0 ..< repeats {
        let (t, r) = seconds(body)
        times.append(t)
        last = r
    }
    return (times.sorted()[repeats / 2], last)
}

func maxRelativeDifference(_ a: Tensor, _ b: Tensor) -> Float {
    var maxDiff: Float = 0, maxRef: Float = 0
    for i in 0 ..< a.count {
        maxDiff = max(maxDiff, abs(a.pointer[i] - b.pointer[i]))
        maxRef = max(maxRef, abs(a.pointer[i]))
    }
    return maxDiff / max(maxRef, 1e-30)
}

if let d = dilation {
    let k = Int(d.rounded(.up)), scale = Double(k) / d
    print("BLAS core \(MatMul.blasCoreName), \(Parallel.threadCount) threads, dilation \(d) (k = \(k)), "
          + "\(repeats) repeats (median)")
    print("layer (in->out @ HxW xB)          undilated s   im2col k s   sub-grids k s"
          + (scale == 1 ? "" : "   re-dilated s (resizes s)") + "   sub-grids vs im2col diff")
    for c in cases {
        let x = randomTensor([c.batch, c.inChannels, c.height, c.width], seed: 1, scale: 1)
        let w = randomTensor([c.outChannels, c.inChannels, 3, 3], seed: 2, scale: 1 / Float(c.inChannels * 9).squareRoot())
        let b = randomTensor([c.outChannels], seed: 3, scale: 0.1)
        let layer = Conv2D(weight: w, bias: b, stride: 1, padding: 1)
        let (plain, _) = median { layer(x) }
        let (im2col, byTaps) = median { Im2ColConvolution().forward(x, layer: layer, dilation: k) }
        let (subGrids, bySubGrids) = median { DilatedConvolution().forward(x, layer: layer, dilation: k) }
        var fractional = ""
        if scale != 1 {
            let h = Int((Double(c.height) * scale).rounded(.toNearestOrEven))
            let wd = Int((Double(c.width) * scale).rounded(.toNearestOrEven))
            let (whole, _) = median {
                let resized = Elementwise.resizeBilinear(x, height: h, width: wd)
                let y = DilatedConvolution().forward(resized, layer: layer, dilation: k)
                return Elementwise.resizeBilinear(y, height: c.height, width: c.width)
            }
            let convolved = Tensor(zeros: [c.batch, c.outChannels, h, wd])
            let (resizeIn, _) = median { Elementwise.resizeBilinear(x, height: h, width: wd) }
            let (resizeOut, _) = median { Elementwise.resizeBilinear(convolved, height: c.height, width: c.width) }
            fractional = String(format: "   %12.4f (%.4f)", whole, resizeIn + resizeOut)
        }
        let name = "\(c.inChannels)->\(c.outChannels) @ \(c.height)x\(c.width) x\(c.batch)"
        print(name.padding(toLength: 33, withPad: " ", startingAt: 0)
              + String(format: " %11.4f   %10.4f   %13.4f", plain, im2col, subGrids) + fractional
              + String(format: "   %.2e", maxRelativeDifference(byTaps, bySubGrids)))
    }
    exit(0)
}

let winograd: ConvolutionAlgorithm = blocked ? BlockedWinogradConvolution(outBlock: outBlock, inBlock: inBlock)
    : WinogradConvolution(maxScratchBytes: scratchBytes, tilesPerBlock: tilesPerBlock)
print("BLAS core \(MatMul.blasCoreName), \(Parallel.threadCount) threads, Winograd tiles/block \(tilesPerBlock), "
      + "scratch \(scratchBytes >> 20) MB, \(repeats) repeats (median)")
print("layer (in->out @ HxW xB)         tiles   im2col s  GFLOP/s   winograd s  GFLOP/s   speed-up  max rel diff")
for c in cases {
    let x = randomTensor([c.batch, c.inChannels, c.height, c.width], seed: 1, scale: 1)
    let w = randomTensor([c.outChannels, c.inChannels, 3, 3], seed: 2, scale: 1 / Float(c.inChannels * 9).squareRoot())
    let b = randomTensor([c.outChannels], seed: 3, scale: 0.1)
    let direct = Conv2D(weight: w, bias: b, stride: 1, padding: 1, algorithm: Im2ColConvolution())
    let fast = Conv2D(weight: w, bias: b, stride: 1, padding: 1, algorithm: winograd)
    if !winogradOnly { _ = direct(x) }
    _ = fast(x)
    var tDirect: [Double] = [], tFast: [Double] = []
    var reference = Tensor(zeros: [1]), result = Tensor(zeros: [1])
    for _ in 0 ..< repeats {
        let (a, ra) = winogradOnly ? (0, Tensor(zeros: [1])) : seconds { direct(x) }
        let (f, rf) = seconds { fast(x) }
        tDirect.append(a)
        tFast.append(f)
        reference = ra
        result = rf
    }
    var maxDiff: Float = 0, maxRef: Float = 0
    for i in 0 ..< (winogradOnly ? 0 : reference.count) {
        maxDiff = max(maxDiff, abs(reference.pointer[i] - result.pointer[i]))
        maxRef = max(maxRef, abs(reference.pointer[i]))
    }
    let flops = 2.0 * Double(c.outChannels * c.inChannels * 9 * c.height * c.width * c.batch)
    let a = tDirect.sorted()[repeats / 2], f = tFast.sorted()[repeats / 2]
    let tiles = WinogradConvolution.tileCount(batch: c.batch, height: c.height, width: c.width)
    let name = "\(c.inChannels)->\(c.outChannels) @ \(c.height)x\(c.width) x\(c.batch)"
    print(name.padding(toLength: 32, withPad: " ", startingAt: 0)
          + String(format: " %6d  %9.4f  %7.1f   %10.4f  %7.1f   %7.2fx   %.2e", tiles, a, flops / a / 1e9,
                   f, flops / f / 1e9, a / f, maxDiff / max(maxRef, 1e-30)))
}
