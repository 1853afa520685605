import AnySize
import Foundation
import XCTest

/// End-to-end parity of every attention formulation with the independent diffusers reference
/// (tools/attention_reference.py, fixtures from tools/fixtures_attention.py): txt2img on the tiny models with the
/// trained size overridden to 256x256, on canvases smaller than, larger than, and mixed with respect to it.
final class AttentionParityTests: XCTestCase {
    /// One case of Fixtures/attention/index.json.
    struct Case: Decodable {
        let id: String
        let model: String
        let prompt: String
        let negativePrompt: String
        let width: Int
        let height: Int
        let seed: UInt64
        let steps: Int
        let cfgScale: Double
        let sampler: String
        let karras: Bool
        let attention: String
        let localEdge: Int
        let trainedSize: [Int]
        let resolved: String
        let sigmas: [Double]
        let tensor: String
    }

    struct Index: Decodable {
        let cases: [Case]
    }

    static func index() throws -> Index { try Fixtures.decode(Index.self, "attention/index.json") }

    static func options(_ c: Case) throws -> GenerationOptions {
        var o = GenerationOptions(prompt: c.prompt, width: c.width, height: c.height, seed: c.seed)
        o.negativePrompt = c.negativePrompt
        o.steps = c.steps
        o.cfgScale = c.cfgScale
        o.sampler = try XCTUnwrap(SamplerKind(rawValue: c.sampler), "\(c.id): unknown sampler \(c.sampler)")
        o.karras = c.karras
        o.attention = try XCTUnwrap(AttentionMode(rawValue: c.attention), "\(c.id): unknown attention \(c.attention)")
        o.localEdge = c.localEdge
        XCTAssertEqual(c.trainedSize.count, 2)
        o.trainedSize = (c.trainedSize[0], c.trainedSize[1])
        return o
    }

    /// Runs every case of one model and compares the final latents with max-abs <= 1e-3 * max(1, max|ref|).
    func checkModel(_ model: String) throws {
        let cases = try Self.index().cases.filter { $0.model == model }
        XCTAssertGreaterThanOrEqual(cases.count, 5, "\(model): too few attention cases in the fixture index")
        let references = try SafeTensorsFile(path: try Fixtures.path("attention/latents.safetensors"))
        let pipeline = try Fixtures.pipeline(model)
        for c in cases {
            let options = try Self.options(c)
            let start = Date()
            let result = try pipeline.generate(options) { _ in }
            print(String(format: "[parity] %@: %.2f s", c.id, Date().timeIntervalSince(start)))
            // The concrete formulation and the per-call sigmas must be those the reference ran with.
            XCTAssertEqual(result.attentionName, c.resolved, "\(c.id): formulation")
            let sigmas = try Self.callSigmas(options, pipeline: pipeline)
            XCTAssertEqual(sigmas.count, c.sigmas.count, "\(c.id): model calls")
            for (s, r) in zip(sigmas, c.sigmas) {
                XCTAssertEqual(s, r, accuracy: 1e-5 * max(1, r), "\(c.id): sigma")
            }
            let reference = try references.tensor(c.tensor)
            assertClose(result.latents, reference, tolerance: 1e-3, c.id)
        }
    }

    /// The sigma of each model call: the pipeline sets the attention context's sigma to `sigma(atStep:)` of the
    /// scheduler it builds from these options.
    static func callSigmas(_ options: GenerationOptions, pipeline: StableDiffusionPipeline) throws -> [Double] {
        let scheduler = try options.sampler.makeScheduler(config: pipeline.schedulerConfig, steps: options.steps,
                                                          karras: options.karras)
        return (0 ..< scheduler.modelCalls).map { Double(scheduler.sigma(atStep: $0)) }
    }

    func testTinySD1Epsilon() throws { try checkModel("tiny-sd1") }

    func testTinySD2VPrediction() throws { try checkModel("tiny-sd2") }
}
