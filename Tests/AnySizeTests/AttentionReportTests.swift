import AnySize
import Foundation
import XCTest

/// The attention-entropy report: recorded entropies against diffusers (tools/fixtures_entropy.py) and a naive
/// Double-precision softmax, the CSV and chart outputs, and the argument checks.
final class AttentionReportTests: XCTestCase {
    // MARK: entropy against references

    /// Per-layer entropies of one tiny-sd1 UNet call against diffusers with an entropy-recording attention processor,
    /// for every formulation (the reference implements them from METHODS.md independently): within 1e-4 relative.
    func testUNetEntropyMatchesDiffusers() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.path("entropy/tiny_sd1_unet_entropy.json")))
        guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let cases = json["cases"] as? [[String: Any]], !cases.isEmpty else {
            return XCTFail("entropy fixture has no cases")
        }
        func tensor(_ key: String) throws -> Tensor {
            guard let entry = json[key] as? [String: Any], let shape = entry["shape"] as? [Int],
                  let values = entry["data"] as? [Double] else { throw AnySizeError(.corruptFile, "entropy fixture: no \(key)") }
            return Tensor(shape: shape, values: values.map { Float($0) })
        }
        let sample = try tensor("sample")                   // [2, 4, 16, 24]
        let context = try tensor("encoder_hidden_states")   // [2, 77, 8]
        let timestep = Float(json["timestep"] as? Double ?? Double(json["timestep"] as? Int ?? -1))
        let checkpoint = try Fixtures.checkpoint("tiny-sd1")
        let unet = try UNet2DConditionModel(config: checkpoint.unetConfig, parameters: checkpoint.unet)
        let canvasTokens = sample.dim(2) * sample.dim(3)
        var worst = 0.0
        for c in cases {
            let name = c["name"] as? String ?? "?"
            let trained = c["trained_latent"] as? Int ?? 0
            let edge = c["edge"] as? Int ?? 0
            let formulation: any AttentionFormulation
            switch c["attention"] as? String {
            case "standard": formulation = StandardAttention()
            case "scaled": formulation = ScaledAttention()
            case "local": formulation = LocalAttention(edge: edge)
            case "log-bias": formulation = LogBiasAttention(canvasTokens: canvasTokens, trainedTokens: trained * trained)
            default: XCTFail("\(name): unknown attention"); continue
            }
            let attention = AttentionContext(formulation: formulation, trainedLatentHeight: trained, trainedLatentWidth: trained)
            attention.sigma = c["sigma"] as? Double ?? 0
            attention.entropySamples = []
            _ = unet(sample, timesteps: [timestep, timestep], context: context, attention: attention)
            let got = attention.entropySamples ?? []
            let want = c["layers"] as? [[String: Any]] ?? []
            XCTAssertEqual(got.count, want.count, "\(name): self-attention layer count")
            XCTAssertEqual(got.count, unet.selfAttentionLayerCount, "\(name)")
            var caseWorst = 0.0
            for (i, (g, w)) in zip(got, want).enumerated() {
                XCTAssertEqual(g.site.layer, i, "\(name): layer order")
                XCTAssertEqual(g.site.level, w["level"] as? Int, "\(name) layer \(i): level")
                XCTAssertEqual(g.site.height, w["height"] as? Int, "\(name) layer \(i): grid height")
                XCTAssertEqual(g.site.width, w["width"] as? Int, "\(name) layer \(i): grid width")
                let reference = w["entropy"] as? Double ?? .nan
                let relative = abs(g.entropy - reference) / abs(reference)
                caseWorst = max(caseWorst, relative)
                XCTAssertLessThanOrEqual(relative, 1e-4, "\(name) layer \(i) (\(w["module"] ?? "")): \(g.entropy) vs \(reference)")
            }
            print(String(format: "[entropy] %@: %d layers, worst relative error %.2e vs diffusers", name, got.count, caseWorst))
            worst = max(worst, caseWorst)
        }
        print(String(format: "[entropy] all cases: worst relative error %.2e", worst))
    }

    /// The kernel's chunked entropy (as the UNet records it) with each formulation's modifier at a site, against a
    /// naive softmax over the full logits matrix in Double.
    func testChunkedEntropyWithFormulationsMatchesNaiveSoftmax() {
        let site = AttentionSite(layer: 0, level: 0, height: 10, width: 14, trainedHeight: 6, trainedWidth: 6)
        let n = site.tokens, heads = 2, d = 8, batch = 2
        let random = TorchRandom(seed: 3)
        let q = random.randn([batch, n, heads * d]), k = random.randn([batch, n, heads * d]), v = random.randn([batch, n, heads * d])
        Elementwise.scaleInPlace(q, 2)  // sharper probabilities: entropies well below ln N
        let formulations: [(String, (any AttentionLogitModifier)?)] = [
            ("standard", nil),
            ("scaled", ScaledAttention().modifier(site: site, sigma: 10)),
            ("local", LocalAttention().modifier(site: site, sigma: 10)),
            ("local edge 1", LocalAttention(edge: 1).modifier(site: site, sigma: 10)),
            ("log-bias", LogBiasAttention(canvasTokens: n, trainedTokens: site.trainedTokens).modifier(site: site, sigma: 2)),
        ]
        for (name, modifier) in formulations {
            // naive: full [N, N] logits per (batch, head), modifier on the whole matrix, softmax and entropy in Double
            var total = 0.0
            var logits = [Float](repeating: 0, count: n * n)
            for b in 0 ..< batch {
                for h in 0 ..< heads {
                    for i in 0 ..< n {
                        for j in 0 ..< n {
                            var dot = 0.0
                            for c in 0 ..< d {
                                dot += Double(q.pointer[(b * n + i) * heads * d + h * d + c]) * Double(k.pointer[(b * n + j) * heads * d + h * d + c])
                            }
                            logits[i * n + j] = Float(dot / Double(d).squareRoot())
                        }
                    }
                    if let modifier {
                        logits.withUnsafeMutableBufferPointer { modifier.adjust($0.baseAddress!, stride: n, queries: 0 ..< n, keys: 0 ..< n) }
                    }
                    for i in 0 ..< n {
                        let row = logits[i * n ..< (i + 1) * n].map(Double.init)
                        let m = row.max() ?? 0
                        let e = row.map { Foundation.exp($0 - m) }
                        let s = e.reduce(0, +)
                        total -= e.reduce(0.0) { $0 + ($1 > 0 ? ($1 / s) * Foundation.log($1 / s) : 0) }
                    }
                }
            }
            let naive = total / Double(batch * heads * n)
            for chunking in [AttentionChunking.unbounded, AttentionChunking(queryChunk: 7, keyChunk: 16)] {
                var entropy = 0.0
                _ = ScaledDotProductAttention.compute(query: q, key: k, value: v, heads: heads, modifier: modifier,
                                                      chunking: chunking, entropy: &entropy)
                let relative = abs(entropy - naive) / naive
                print(String(format: "[entropy] kernel %@ %d x %d: %.6f vs naive %.6f (relative %.2e)", name,
                             min(chunking.queryChunk, n), min(chunking.keyChunk, n), entropy, naive, relative))
                XCTAssertLessThanOrEqual(relative, 1e-5, "\(name) \(chunking)")
                XCTAssertLessThan(naive, Foundation.log(Double(n)), "\(name): entropy must be below ln N")
            }
        }
    }

    // MARK: the report

    private func pipeline() throws -> StableDiffusionPipeline {
        // A fresh load: the pipeline releases the checkpoint's tensors, so the shared test cache is not used.
        try StableDiffusionPipeline(checkpoint: StableDiffusionCheckpoint.load(path: try Fixtures.path("tiny-sd1")))
    }

    private func temporaryFolder() -> String {
        let path = NSTemporaryDirectory() + "anysize-report-\(UInt32.random(in: 0 ... .max))/nested"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        return path
    }

    /// Sizes without the trained one: a baseline run is added; CSV shape and values, summary, chart.
    func testReportWritesCSVSummaryAndChart() throws {
        var options = AttentionReportOptions(prompt: "a cat", sizes: [(64, 64), (192, 128)], modes: [.standard, .scaled, .local])
        options.generation.steps = 2
        options.generation.trainedSize = (128, 128)
        let plan = AttentionReport.plan(options, trainedSize: (128, 128))
        XCTAssertEqual(plan.count, 7)
        XCTAssertTrue(plan.last.map { $0.width == 128 && $0.height == 128 && $0.mode == .standard && $0.added } ?? false)

        var notices: [String] = [], runEvents = 0
        let report = try AttentionReport.run(pipeline: try pipeline(), options: options) { event in
            if case .notice(let text) = event { notices.append(text) }
            if case .run = event { runEvents += 1 }
        }
        XCTAssertEqual(runEvents, 7)
        XCTAssertTrue(notices.contains { $0.contains("128x128") }, "\(notices)")
        let layers = report.layerCount
        XCTAssertEqual(layers, 16)
        let folder = temporaryFolder()
        let paths = try report.write(to: folder, chartTitle: "test chart")
        XCTAssertEqual(paths.map { ($0 as NSString).lastPathComponent }, ["entropy.csv", "summary.csv", "entropy.png"])

        let csv = try String(contentsOfFile: folder + "/entropy.csv", encoding: .utf8).split(separator: "\n").map(String.init)
        XCTAssertEqual(csv.first, "size,attention,step,sigma,layer,level,tokens,keys_per_query,entropy")
        XCTAssertEqual(csv.count - 1, 7 * 2 * layers, "rows = runs x model calls x layers")
        for line in csv.dropFirst() {
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            XCTAssertEqual(f.count, 9, line)
            guard f.count == 9, let tokens = Double(f[6]), let keys = Double(f[7]), let h = Double(f[8]) else { continue }
            // 0 <= H <= ln(attendable keys) (0 for a 1-token grid); local at 192x128 on a 128x128 model attends fewer keys than tokens
            XCTAssertGreaterThanOrEqual(h, 0, line)
            XCTAssertLessThanOrEqual(h, Foundation.log(keys) + 1e-4, line)
            if f[0] == "192x128" && f[1] == "local" && f[5] == "0" { XCTAssertLessThan(keys, tokens, line) }
            if f[1] != "local" { XCTAssertEqual(keys, tokens, line) }
        }
        let summary = try String(contentsOfFile: folder + "/summary.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(summary.first, "size,attention,runs_as,mean_abs_gap,mean_gap,baseline")
        XCTAssertEqual(summary.count, 8)
        let gaps = report.gaps
        XCTAssertEqual(gaps.filter(\.isBaseline).count, 1)
        XCTAssertEqual(gaps.first(where: \.isBaseline)?.meanAbsGap, 0)
        // fewer tokens than trained -> lower entropy than the baseline with standard attention
        XCTAssertLessThan(gaps.first { $0.width == 64 && $0.attention == "standard" }?.meanGap ?? 0, 0)
        let table = report.gapTable()
        XCTAssertTrue(table.contains("192x128") && table.contains("(baseline)"), table)
        print(table)

        let chart = try PNGReader.read(path: folder + "/entropy.png")
        XCTAssertEqual(chart.width, 960)
        XCTAssertEqual(chart.height, 600)
        var black = 0, coloured = 0
        for i in stride(from: 0, to: chart.pixels.count, by: 3) {
            let (r, g, b) = (chart.pixels[i], chart.pixels[i + 1], chart.pixels[i + 2])
            if r == 0 && g == 0 && b == 0 { black += 1 }
            if (r, g, b) == (EntropyChart.palette[0].r, EntropyChart.palette[0].g, EntropyChart.palette[0].b) { coloured += 1 }
        }
        XCTAssertGreaterThan(black, 2000, "axes, text and the baseline line are black")
        XCTAssertGreaterThan(coloured, 100, "the first run's line")
    }

    /// With the trained size requested no run is added, and at the trained size `scaled` is `standard` exactly.
    func testTrainedSizeRequestedNeedsNoExtraRun() throws {
        var options = AttentionReportOptions(prompt: "a cat", sizes: [(128, 128), (96, 64)], modes: [.scaled, .standard])
        options.generation.steps = 1
        options.generation.cfgScale = 1  // no unconditional half
        options.generation.trainedSize = (128, 128)
        XCTAssertEqual(AttentionReport.plan(options, trainedSize: (128, 128)).count, 4)
        let report = try AttentionReport.run(pipeline: try pipeline(), options: options)
        XCTAssertEqual(report.runs.count, 4)
        XCTAssertFalse(report.runs.contains(where: \.wasAdded))
        let gaps = report.gaps
        XCTAssertEqual(gaps.first { $0.width == 128 && $0.attention == "scaled" }?.meanAbsGap, 0)
        // at 96x64 the scaled logits soften the attention: higher entropy than standard at the same size
        let standard = gaps.first { $0.width == 96 && $0.attention == "standard" }?.meanGap ?? 0
        let scaled = gaps.first { $0.width == 96 && $0.attention == "scaled" }?.meanGap ?? 0
        XCTAssertGreaterThan(scaled, standard)
        XCTAssertEqual(report.entropyCSV().split(separator: "\n").count, 1 + 4 * 1 * 16)
    }

    // MARK: arguments and font

    func testSizeAndModeListsAreValidated() throws {
        let sizes = try AttentionReportOptions.parseSizes("256x256, 512x768,256x256")
        XCTAssertEqual(sizes.map(\.width), [256, 512])
        XCTAssertEqual(sizes.map(\.height), [256, 768])
        for (bad, named) in [("100x64", "100x64"), ("256x256,64", "'64'"), ("5000x64", "5000x64"), ("56x64", "56x64"), ("", "''")] {
            XCTAssertThrowsError(try AttentionReportOptions.parseSizes(bad), bad) { error in
                let message = String(describing: error)
                XCTAssertTrue(message.contains(named) && message.contains("--sizes"), message)
                XCTAssertFalse(message.contains("\n"), "one line: \(message)")
            }
        }
        XCTAssertEqual(try AttentionReportOptions.parseModes("standard,scaled,local,log-bias,auto"), AttentionMode.allCases)
        XCTAssertThrowsError(try AttentionReportOptions.parseModes("standard,flat")) { error in
            XCTAssertTrue(String(describing: error).contains("'flat'"), "\(error)")
        }
        var options = AttentionReportOptions(prompt: "x", sizes: [(64, 64)], modes: [])
        XCTAssertThrowsError(try options.validate())
        options.modes = [.standard]
        options.generation.steps = 0
        XCTAssertThrowsError(try options.validate())
    }

    func testBitmapFontCoversPrintableASCII() {
        var seen: [[UInt8]: Character] = [:]
        for code in UInt8(32) ... 126 {
            let c = Character(UnicodeScalar(code))
            let rows = Array(BitmapFont.rows(of: c))
            XCTAssertEqual(rows.count, 7)
            XCTAssertTrue(rows.allSatisfy { $0 < 32 }, "\(c): 5 columns")
            XCTAssertEqual(rows.allSatisfy { $0 == 0 }, c == " ", "\(c): only space is blank")
            let key = rows + [UInt8(BitmapFont.drop(of: c))]
            if let other = seen[key] { XCTFail("\(c) and \(other) have the same glyph") }
            seen[key] = c
        }
        XCTAssertEqual(Array(BitmapFont.rows(of: "é")), Array(BitmapFont.rows(of: "?")))
        XCTAssertEqual(BitmapFont.width(of: "abc", scale: 2), 34)
        // descenders sit below the baseline row 6; other glyphs stay within rows 0 ... 6
        XCTAssertTrue((0 ..< 5).contains { BitmapFont.isSet("p", x: $0, y: 8) })
        XCTAssertFalse((0 ..< 5).contains { BitmapFont.isSet("P", x: $0, y: 7) || BitmapFont.isSet("P", x: $0, y: 8) })
    }
}
