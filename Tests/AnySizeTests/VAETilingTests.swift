import AnySize
import XCTest

/// Tiled VAE decode and encode on the tiny SD1 fixture's VAE (channels 8, 16, 16, 16; mid-block attention).
///
/// The decoder's mid-block attention and every GroupNorm see one tile instead of the whole image, so tiled and
/// untiled results differ; the bounds below are measured on this VAE with random latents (worst case: no spatial
/// smoothness) and 128 px tiles (16 latents, 4 of overlap), far smaller than the 512 px tiles used for real images.
final class VAETilingTests: XCTestCase {
    /// Tiled vs untiled decode: max-abs difference / max|untiled| (measured 0.41) and mean-abs difference /
    /// mean|untiled| (measured 0.37). Large because this fixture's attention is sharp (query/key weights 1.5x) and
    /// the latents are white noise: a 16 x 16 tile attends to other tokens than the 32 x 40 whole.
    static let decodeBound: Float = 0.5, decodeMeanBound: Float = 0.45
    /// Tiled vs untiled encode of the mean and logvar, same normalisations (measured 0.22 / 0.32 max-abs,
    /// 0.19 / 0.24 mean-abs).
    static let encodeBound: Float = 0.4, encodeMeanBound: Float = 0.3
    /// Seams: excess of the tiled image's mean pixel step across a border over the untiled image's step there,
    /// as a fraction of the untiled image's mean step (measured at most 0.093; hard cuts between the same tiles
    /// measure up to 0.28 at the cuts).
    static let seamBound: Float = 0.15

    private func vae() throws -> AutoencoderKL {
        let checkpoint = try Fixtures.checkpoint("tiny-sd1")
        return try AutoencoderKL(config: checkpoint.vaeConfig, parameters: checkpoint.vae)
    }

    /// (max-abs difference / max|b|, mean-abs difference / mean|b|).
    private func relativeDifference(_ a: Tensor, _ b: Tensor) -> (max: Float, mean: Float) {
        precondition(a.shape == b.shape)
        var m: Float = 0, sum: Double = 0, magnitude: Double = 0
        for i in 0 ..< a.count {
            m = max(m, abs(a.pointer[i] - b.pointer[i]))
            sum += Double(abs(a.pointer[i] - b.pointer[i]))
            magnitude += Double(abs(b.pointer[i]))
        }
        return (m / max(b.maxAbs, 1e-6), Float(sum / max(magnitude, 1e-12)))
    }

    /// z[0, :, y ..< y + size, x ..< x + size].
    private func crop(_ z: Tensor, y: Int, x: Int, size: Int) -> Tensor {
        let channels = z.dim(1), height = z.dim(2), width = z.dim(3)
        let out = Tensor(zeros: [1, channels, size, size])
        for c in 0 ..< channels {
            for row in 0 ..< size {
                for col in 0 ..< size {
                    out.pointer[(c * size + row) * size + col] = z.pointer[(c * height + y + row) * width + x + col]
                }
            }
        }
        return out
    }

    func testTileLayoutCoversTheAxisWithOverlapAndWeightsSumToOne() {
        for (length, tile, overlap) in [(64, 64, 16), (65, 64, 16), (100, 64, 16), (127, 64, 16), (128, 64, 16),
                                        (256, 64, 16), (40, 16, 4), (17, 16, 4), (33, 16, 8)] {
            let layout = TileLayout(length: length, tile: tile, overlap: overlap)
            XCTAssertEqual(layout.starts.first, 0)
            XCTAssertEqual((layout.starts.last ?? 0) + layout.tile, length, "\(length)/\(tile)")
            for (a, b) in zip(layout.starts, layout.starts.dropFirst()) {
                XCTAssertGreaterThanOrEqual(a + layout.tile - b, overlap, "overlap of \(length)/\(tile): \(layout.starts)")
            }
            if length > tile { XCTAssertEqual(layout.starts.count, (length - overlap + tile - overlap - 1) / (tile - overlap)) }
            for scale in [1, 8] {
                var sum = [Float](repeating: 0, count: length * scale)
                for i in layout.starts.indices {
                    for (p, w) in layout.weights(tile: i, scale: scale).enumerated() {
                        XCTAssertGreaterThan(w, 0)
                        sum[layout.starts[i] * scale + p] += w
                    }
                }
                // Neighbouring ramps are complementary wherever no third tile reaches.
                if layout.starts.count <= 2 || zip(layout.starts, layout.starts.dropFirst(2)).allSatisfy({ $0.0 + layout.tile <= $0.1 }) {
                    for s in sum { XCTAssertEqual(s, 1, accuracy: 1e-5, "\(length)/\(tile)x\(scale): \(layout.starts)") }
                }
            }
        }
    }

    func testFlagParsingAndAutomaticThreshold() throws {
        XCTAssertEqual(try VAETiling(flag: nil), .automatic)
        XCTAssertEqual(try VAETiling(flag: 0), .off)
        XCTAssertEqual(try VAETiling(flag: 256), .tiles(256))
        XCTAssertThrowsError(try VAETiling(flag: 100))
        XCTAssertThrowsError(try VAETiling(flag: 32))
        XCTAssertNil(VAETiling.automatic.tileSize(width: 768, height: 768))
        XCTAssertNil(VAETiling.automatic.tileSize(width: 512, height: 1024))
        XCTAssertEqual(VAETiling.automatic.tileSize(width: 1024, height: 1024), 512)
        XCTAssertNil(VAETiling.off.tileSize(width: 4096, height: 4096))
    }

    /// One tile covering the image computes what the untiled path computes, but per batch element: OpenBLAS picks
    /// its kernels (and so the order of the sums) by matrix shape and CPU, so a batch-2 decode and two batch-1
    /// decodes may differ in the last bits (measured up to 5.2e-6 with Cooperlake kernels, 0 with Prescott's).
    /// Normalised max-abs difference, max|a - b| / max(1, max|b|).
    static let sameComputationBound: Float = 1e-5

    private func assertSameComputation(_ a: Tensor, _ b: Tensor, _ label: String,
                                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.shape, b.shape, label, file: file, line: line)
        guard a.shape == b.shape else { return }
        var worst: Float = 0
        for i in 0 ..< a.count {
            let d = abs(a.pointer[i] - b.pointer[i])
            worst = d.isFinite ? max(worst, d) : .infinity  // a NaN counts as infinitely wrong
        }
        let difference = worst / max(1, b.maxAbs)
        print("[vae tiling] \(label): normalised max-abs difference \(difference)")
        XCTAssertTrue(difference <= Self.sameComputationBound,
                      "\(label): normalised max-abs difference \(difference) > \(Self.sameComputationBound)",
                      file: file, line: line)
    }

    func testOneTileCoveringTheImageIsUntiled() throws {
        let vae = try vae()
        let z = TorchRandom(seed: 3).randn([2, 4, 12, 20])
        let untiled = vae.decode(z)
        for tiling in [VAETiling.tiles(160), .tiles(512), .automatic, .off] {
            assertSameComputation(vae.decode(z, tiling: tiling), untiled, "decode, \(tiling)")
        }
        let image = TorchRandom(seed: 4).randn([1, 3, 96, 160])
        let (mean, logvar) = vae.encode(image)
        let tiled = vae.encode(image, tiling: .tiles(160))
        assertSameComputation(tiled.mean, mean, "encode mean, one tile")
        assertSameComputation(tiled.logvar, logvar, "encode logvar, one tile")
    }

    func testTiledDecodeStaysWithinBoundOfUntiled() throws {
        let vae = try vae()
        let z = TorchRandom(seed: 5).randn([2, 4, 32, 40])  // 256 x 320 px: 3 x 3 tiles of 128 px
        let untiled = vae.decode(z)
        let tiled = vae.decode(z, tiling: .tiles(128))
        XCTAssertEqual(tiled.shape, [2, 3, 256, 320])
        let difference = relativeDifference(tiled, untiled)
        print("tiled vs untiled decode: max-abs / max|untiled| = \(difference.max), mean-abs / mean|untiled| = \(difference.mean)")
        XCTAssertLessThanOrEqual(difference.max, Self.decodeBound)
        XCTAssertLessThanOrEqual(difference.mean, Self.decodeMeanBound)
        // The batch elements are tiled independently: element 1 alone gives the same pixels (to rounding).
        let single = vae.decode(z.slice(batch: 1, count: 1), tiling: .tiles(128))
        assertSameComputation(single, tiled.slice(batch: 1, count: 1), "batch element 1 alone")
    }

    func testTiledEncodeStaysWithinBoundOfUntiled() throws {
        let vae = try vae()
        let image = TorchRandom(seed: 6).randn([1, 3, 256, 320])
        for i in 0 ..< image.count { image.pointer[i] = max(-1, min(1, 0.5 * image.pointer[i])) }
        let untiled = vae.encode(image)
        let tiled = vae.encode(image, tiling: .tiles(128))
        XCTAssertEqual(tiled.mean.shape, [1, 4, 32, 40])
        for (name, a, b) in [("mean", tiled.mean, untiled.mean), ("logvar", tiled.logvar, untiled.logvar)] {
            let difference = relativeDifference(a, b)
            print("tiled vs untiled encode \(name): max-abs / max|untiled| = \(difference.max), mean-abs / mean|untiled| = \(difference.mean)")
            XCTAssertLessThanOrEqual(difference.max, Self.encodeBound, name)
            XCTAssertLessThanOrEqual(difference.mean, Self.encodeMeanBound, name)
        }
    }

    /// Mean |I[.., x] - I[.., x - 1]| over rows and channels for each column x >= 1 (columns of a transposed
    /// image give the rows).
    private func columnSteps(_ image: Tensor, transposed: Bool) -> [Float] {
        let batch = image.dim(0), channels = image.dim(1), height = image.dim(2), width = image.dim(3)
        let lines = transposed ? height : width, along = transposed ? width : height
        var steps = [Float](repeating: 0, count: lines)
        for b in 0 ..< batch {
            for c in 0 ..< channels {
                let plane = image.pointer + (b * channels + c) * height * width
                for line in 1 ..< lines {
                    for a in 0 ..< along {
                        let here = transposed ? plane[line * width + a] : plane[a * width + line]
                        let before = transposed ? plane[(line - 1) * width + a] : plane[a * width + line - 1]
                        steps[line] += abs(here - before)
                    }
                }
            }
        }
        return steps.map { $0 / Float(batch * channels * along) }
    }

    /// Along every tile edge, ramp end and overlap middle, the mean pixel-to-pixel step of the tiled image exceeds
    /// the untiled image's step there by at most `seamBound` times the untiled image's mean step. The same tiles
    /// stitched with hard cuts at the overlap middles (no blending) must fail that check, so it can see a seam.
    func testNoSeamsAtTileBorders() throws {
        let vae = try vae()
        let z = TorchRandom(seed: 7).randn([1, 4, 32, 40])
        let untiled = vae.decode(z)
        let tiled = vae.decode(z, tiling: .tiles(128))
        let rows = TileLayout(length: 32, tile: 16, overlap: 4), columns = TileLayout(length: 40, tile: 16, overlap: 4)
        // Hard cuts: each pixel from the tile that owns it up to the middle of the overlap with the next tile.
        let hard = Tensor(zeros: untiled.shape)
        func cuts(_ layout: TileLayout) -> [Int] {
            zip(layout.starts, layout.starts.dropFirst()).map { 4 * ($0.0 + layout.tile + $0.1) }  // 8 * midpoint
        }
        let rowCuts = cuts(rows), columnCuts = cuts(columns)
        for (i, y0) in rows.starts.enumerated() {
            for (j, x0) in columns.starts.enumerated() {
                let decoded = vae.decode(crop(z, y: y0, x: x0, size: 16))  // [1, 3, 128, 128]
                let top = i == 0 ? 0 : rowCuts[i - 1], bottom = i < rowCuts.count ? rowCuts[i] : 256
                let left = j == 0 ? 0 : columnCuts[j - 1], right = j < columnCuts.count ? columnCuts[j] : 320
                for c in 0 ..< 3 {
                    for y in top ..< bottom {
                        for x in left ..< right {
                            hard.pointer[(c * 256 + y) * 320 + x] = decoded.pointer[(c * 128 + y - 8 * y0) * 128 + x - 8 * x0]
                        }
                    }
                }
            }
        }
        // Where a single tile covers a pixel the blend is that tile's own decode.
        func single(_ layout: TileLayout, _ p: Int) -> Bool { layout.starts.filter { 8 * $0 <= p && p < 8 * ($0 + layout.tile) }.count == 1 }
        var checked = 0
        for c in 0 ..< 3 {
            for y in 0 ..< 256 where single(rows, y) {
                for x in 0 ..< 320 where single(columns, x) {
                    let i = (c * 256 + y) * 320 + x
                    XCTAssertEqual(tiled.pointer[i], hard.pointer[i], accuracy: 1e-5 * max(1, abs(hard.pointer[i])), "(\(c), \(y), \(x))")
                    checked += 1
                }
            }
        }
        XCTAssertEqual(checked, 3 * 128 * 256)  // rows 0..<64 and 192..<256, columns 0..<96, 128..<192 and 224..<320
        var hardExcess: Float = 0
        for transposed in [false, true] {
            let layout = transposed ? rows : columns
            var borders = Set(cuts(layout))
            for start in layout.starts {
                borders.formUnion([start * 8, (start + layout.tile) * 8].filter { $0 > 0 && $0 < layout.length * 8 })
            }
            let stepsTiled = columnSteps(tiled, transposed: transposed)
            let stepsHard = columnSteps(hard, transposed: transposed)
            let stepsUntiled = columnSteps(untiled, transposed: transposed)
            let typical = stepsUntiled.dropFirst().reduce(0, +) / Float(stepsUntiled.count - 1)
            for x in borders.sorted() {
                let excess = (stepsTiled[x] - stepsUntiled[x]) / typical
                print("border \(transposed ? "row" : "column") \(x): step excess tiled \(excess), hard cut \((stepsHard[x] - stepsUntiled[x]) / typical)")
                XCTAssertLessThanOrEqual(excess, Self.seamBound, "seam at \(transposed ? "row" : "column") \(x)")
            }
            for x in cuts(layout) { hardExcess = max(hardExcess, (stepsHard[x] - stepsUntiled[x]) / typical) }
        }
        XCTAssertGreaterThan(hardExcess, Self.seamBound, "a hard cut between tiles should show as a seam")
    }
}
