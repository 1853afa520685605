import AnySize
import Foundation
import XCTest

/// Properties of the attention formulations (METHODS.md), on masks directly and through the tiny UNet.
final class AttentionFormulationTests: XCTestCase {
    private func site(_ level: Int, _ h: Int, _ w: Int, trained: (Int, Int) = (64, 64)) -> AttentionSite {
        AttentionSite(layer: level, level: level,
                      height: UNetGeometry.grid(h, level: level), width: UNetGeometry.grid(w, level: level),
                      trainedHeight: UNetGeometry.grid(trained.0, level: level),
                      trainedWidth: UNetGeometry.grid(trained.1, level: level))
    }

    func testScaledFactorsMatchMethodsExamples() {
        let small = (0 ..< 4).map { ScaledAttention.factor(site: site($0, 32, 32)) }
        let large = (0 ..< 4).map { ScaledAttention.factor(site: site($0, 96, 96)) }
        for (got, want) in zip(small, [0.913, 0.894, 0.866, 0.816]) { XCTAssertEqual(got, want, accuracy: 5e-4) }
        for (got, want) in zip(large, [1.048, 1.057, 1.071, 1.093]) { XCTAssertEqual(got, want, accuracy: 5e-4) }
        XCTAssertEqual(ScaledAttention.factor(site: site(2, 64, 64)), 1)
        // Odd sizes use the real ceil-halved grids: 200x136 px = 25x17 latents -> 13x9, 7x5, 4x3.
        XCTAssertEqual(site(3, 25, 17).tokens, 12)
        // A 1-token grid is clamped to 2 tokens (ln 1 = 0).
        XCTAssertEqual(ScaledAttention.factor(site: site(3, 8, 8, trained: (8, 8))), 1)
    }

    func testGridsHalveWithCeiling() {
        XCTAssertEqual((0 ..< 4).map { UNetGeometry.grid(25, level: $0) }, [25, 13, 7, 4])
        XCTAssertEqual((0 ..< 4).map { UNetGeometry.grid(96, level: $0) }, [96, 48, 24, 12])
    }

    /// The mask of `local` against a direct transcription of METHODS.md on the full N x N matrix.
    func testLocalMaskMatchesDefinition() {
        for (h, w, th, tw, edge) in [(12, 20, 8, 8, 0), (12, 20, 8, 8, 2), (9, 5, 6, 8, 1), (10, 10, 4, 4, 1), (7, 13, 7, 6, 0)] {
            let s = AttentionSite(layer: 0, level: 0, height: h, width: w, trainedHeight: th, trainedWidth: tw)
            let local = LocalAttention(edge: edge)
            guard let modifier = local.modifier(site: s, sigma: 1) else { XCTFail("no modifier"); continue }
            let n = h * w
            var logits = [Float](repeating: 1, count: n * n)
            logits.withUnsafeMutableBufferPointer { modifier.adjust($0.baseAddress!, stride: n, queries: 0 ..< n, keys: 0 ..< n) }
            func window(_ p: Int, size: Int, trained: Int) -> Range<Int> {
                guard size > trained else { return 0 ..< size }
                let win = max(1, trained - 2 * edge)
                let start = min(max(p - win / 2, 0), size - win)
                return start ..< start + win
            }
            for q in 0 ..< n {
                let qy = q / w, qx = q % w
                let rows = window(qy, size: h, trained: th), cols = window(qx, size: w, trained: tw)
                var allowed = 0
                var expectedMask = [Bool](repeating: false, count: n)
                for k in 0 ..< n {
                    let ky = k / w, kx = k % w
                    let sink = edge > 0 && (ky < edge || ky >= h - edge || kx < edge || kx >= w - edge)
                    expectedMask[k] = (rows.contains(ky) && cols.contains(kx)) || sink
                    if expectedMask[k] { allowed += 1 }
                }
                let factor = Float((log(Double(max(allowed, 2))) / log(Double(max(th * tw, 2)))).squareRoot())
                for k in 0 ..< n {
                    let v = logits[q * n + k]
                    if expectedMask[k] {
                        XCTAssertEqual(v, factor, accuracy: 1e-6, "h\(h) w\(w) edge \(edge) q\(q) k\(k)")
                    } else {
                        XCTAssertEqual(v, -.infinity, "h\(h) w\(w) edge \(edge) q\(q) k\(k) should be masked")
                    }
                }
            }
        }
    }

    func testLocalBlockSkippingNeverDropsAnAllowedKey() {
        let s = AttentionSite(layer: 0, level: 0, height: 30, width: 11, trainedHeight: 8, trainedWidth: 8)
        guard let modifier = LocalAttention().modifier(site: s, sigma: 1) else { return XCTFail("no modifier") }
        let n = 330
        for q0 in stride(from: 0, to: n, by: 17) {
            for k0 in stride(from: 0, to: n, by: 23) {
                let qs = q0 ..< min(n, q0 + 17), ks = k0 ..< min(n, k0 + 23)
                if modifier.isBlockActive(queries: qs, keys: ks) { continue }
                var logits = [Float](repeating: 0, count: qs.count * ks.count)
                logits.withUnsafeMutableBufferPointer { modifier.adjust($0.baseAddress!, stride: ks.count, queries: qs, keys: ks) }
                XCTAssertTrue(logits.allSatisfy { $0 == -.infinity }, "skipped block \(qs) x \(ks) holds allowed keys")
            }
        }
    }

    func testLogBiasMatchesDefinition() {
        let bias = LogBiasAttention(canvasTokens: 96 * 96, trainedTokens: 64 * 64)
        XCTAssertEqual(bias.coefficient(sigma: 4.5), 1)
        XCTAssertEqual(bias.coefficient(sigma: 4), -0.1)
        XCTAssertEqual(LogBiasAttention(canvasTokens: 32 * 32, trainedTokens: 64 * 64).coefficient(sigma: 0.1), 1)
        XCTAssertEqual(LogBiasAttention(canvasTokens: 4096, trainedTokens: 4096).coefficient(sigma: 10), 0)
        let s = AttentionSite(layer: 0, level: 0, height: 5, width: 7, trainedHeight: 4, trainedWidth: 4)
        guard let modifier = bias.modifier(site: s, sigma: 2) else { return XCTFail("no modifier") }
        let n = 35
        var logits = [Float](repeating: 0.5, count: n * n)
        logits.withUnsafeMutableBufferPointer { modifier.adjust($0.baseAddress!, stride: n, queries: 0 ..< n, keys: 0 ..< n) }
        for q in 0 ..< n {
            for k in 0 ..< n {
                let dy = Double(q / 7 - k / 7), dx = Double(q % 7 - k % 7)
                let d = (dy * dy + dx * dx).squareRoot()
                let expected = 0.5 + -0.1 * max(0, d > 0 ? log(d) : -.infinity)
                XCTAssertEqual(Double(logits[q * n + k]), expected, accuracy: 1e-6)
            }
        }
    }

    func testAutoChoice() {
        func pick(_ h: Int, _ w: Int) -> String {
            AttentionSelection.resolve(.auto, latentHeight: h, latentWidth: w, trainedHeight: 64, trainedWidth: 64).formulation.name
        }
        XCTAssertEqual(pick(64, 64), "standard")
        XCTAssertEqual(pick(32, 32), "scaled")
        XCTAssertEqual(pick(25, 17), "scaled")
        XCTAssertEqual(pick(96, 96), "local")
        XCTAssertEqual(pick(96, 48), "local")
        let summary = AttentionSelection.resolve(.auto, latentHeight: 32, latentWidth: 32, trainedHeight: 64, trainedWidth: 64).summary
        XCTAssertTrue(summary.contains("0.913") && summary.contains("0.816"), summary)
    }

    // MARK: through the tiny UNet

    private func unetRun(_ formulation: any AttentionFormulation, h: Int, w: Int, trained: Int,
                         memory: Int = 1 << 30, sigma: Double = 10) throws -> Tensor {
        let checkpoint = try Fixtures.checkpoint("tiny-sd1")
        let unet = try UNet2DConditionModel(config: checkpoint.unetConfig, parameters: checkpoint.unet)
        let random = TorchRandom(seed: 7)
        let sample = random.randn([1, 4, h, w])
        let context = random.randn([1, 77, checkpoint.unetConfig.crossAttentionDim])
        let attention = AttentionContext(formulation: formulation, trainedLatentHeight: trained,
                                         trainedLatentWidth: trained, memoryBudget: memory)
        attention.sigma = sigma
        return unet(sample, timesteps: [500], context: context, attention: attention)
    }

    private func assertIdentical(_ a: Tensor, _ b: Tensor, _ label: String) {
        XCTAssertEqual(a.shape, b.shape)
        let c = compare(a, b, tolerance: 0)
        print("[formulation] \(label): max-abs difference \(c.maxAbs)")
        XCTAssertEqual(c.maxAbs, 0, label)
    }

    func testScaledAndLogBiasEqualStandardAtTrainedSize() throws {
        let standard = try unetRun(StandardAttention(), h: 16, w: 16, trained: 16)
        assertIdentical(try unetRun(ScaledAttention(), h: 16, w: 16, trained: 16), standard, "scaled at trained size")
        assertIdentical(try unetRun(LogBiasAttention(canvasTokens: 256, trainedTokens: 256), h: 16, w: 16, trained: 16),
                        standard, "log-bias at trained size")
    }

    func testLocalEqualsScaledWhenNotLarger() throws {
        let scaled = try unetRun(ScaledAttention(), h: 12, w: 16, trained: 16)
        assertIdentical(try unetRun(LocalAttention(), h: 12, w: 16, trained: 16), scaled, "local at 12x16 on 16x16")
        assertIdentical(try unetRun(LocalAttention(edge: 2), h: 12, w: 16, trained: 16), scaled, "local edge 2 at 12x16")
        // and it differs from standard there, so the comparison means something
        let standard = try unetRun(StandardAttention(), h: 12, w: 16, trained: 16)
        XCTAssertGreaterThan(compare(scaled, standard, tolerance: 0).maxAbs, 1e-4)
    }

    func testChunkedEqualsUnchunkedForEveryFormulation() throws {
        let formulations: [(String, any AttentionFormulation)] = [
            ("standard", StandardAttention()), ("scaled", ScaledAttention()),
            ("local", LocalAttention()), ("local edge 2", LocalAttention(edge: 2)),
            ("log-bias", LogBiasAttention(canvasTokens: 24 * 20, trainedTokens: 12 * 12)),
        ]
        for (name, f) in formulations {
            let whole = try unetRun(f, h: 24, w: 20, trained: 12)
            // 16 KB forces chunks of a few dozen queries and keys per worker.
            let chunked = try unetRun(f, h: 24, w: 20, trained: 12, memory: 16 << 10)
            let c = compare(chunked, whole, tolerance: 1e-5)
            print("[formulation] \(name) chunked vs unchunked: \(c)")
            XCTAssertTrue(c.passes, "\(name): \(c)")
        }
    }
}
