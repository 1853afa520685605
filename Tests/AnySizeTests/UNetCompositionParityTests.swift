import AnySize
import Foundation
import XCTest

/// Parity of the in-UNet composition methods (`redilate`, `deep-shrink`) with the independent diffusers reference
/// (tools/composition_reference.py; fixtures from tools/fixtures_unet_composition.py): one UNet call on canvases larger
/// than the (overridden) trained grid, square and non-square, integer and fractional factors, and smaller canvases
/// where the methods are inert; the gate's decision on both sides of its threshold; txt2img end to end with the
/// method forced (Euler and DDIM, both families); the resize kernels against torch's F.interpolate.
final class UNetCompositionParityTests: XCTestCase {
    struct Gate: Decodable {
        let timestep: Double
        let dilation: Double
        let deepShrinkFactor: Double
    }

    struct Output: Decodable {
        let timestep: Double
        let tensor: String
        let dilation: Double
        let deepShrinkFactor: Double
        let distanceFromPlain: Double
    }

    struct UNetCase: Decodable {
        let id: String
        let model: String
        let method: String
        let height: Int
        let width: Int
        let batch: Int
        let seed: UInt64
        let contextTokens: Int
        let gates: [Gate]
        let outputs: [Output]
    }

    struct ResizeCase: Decodable {
        let name: String
        let height: Int
        let width: Int
    }

    struct E2ECase: Decodable {
        let id: String
        let model: String
        let method: String
        let width: Int
        let height: Int
        let sampler: String
        let steps: Int
        let seed: UInt64
        let prompt: String
        let negativePrompt: String
        let cfgScale: Double
        let trainedSize: [Int]
        let redilateUntil: Double
        let deepShrinkEnd: Double
        let tensor: String
        let calls: [Gate]
        let distanceFromPlain: Double
    }

    struct Index: Decodable {
        let trainedLatent: [Int]
        let redilateUntil: Double
        let deepShrinkEnd: Double
        let unetCases: [UNetCase]
        let resizeCases: [ResizeCase]
        let e2eCases: [E2ECase]
    }

    static func index() throws -> Index { try Fixtures.decode(Index.self, "unet-composition/index.json") }

    static func outputs() throws -> SafeTensorsFile {
        try SafeTensorsFile(path: try Fixtures.path("unet-composition/outputs.safetensors"))
    }

    /// The composition the library's gate picks for one call of a case.
    static func gate(_ c: UNetCase, _ index: Index, timestep: Double) -> UNetCallComposition {
        let (th, tw) = (index.trainedLatent[0], index.trainedLatent[1])
        switch c.method {
        case "redilate":
            return .redilation(latentHeight: c.height, latentWidth: c.width, trainedLatentHeight: th,
                               trainedLatentWidth: tw, timestep: timestep, until: index.redilateUntil)
        default:
            return .deepShrink(latentHeight: c.height, latentWidth: c.width, trainedLatentHeight: th,
                               trainedLatentWidth: tw, timestep: timestep, end: index.deepShrinkEnd)
        }
    }

    func checkModel(_ model: String) throws {
        let index = try Self.index()
        let cases = index.unetCases.filter { $0.model == model }
        XCTAssertGreaterThanOrEqual(cases.count, 6, "\(model): too few composition cases in the fixture index")
        let references = try Self.outputs()
        let checkpoint = try Fixtures.checkpoint(model)
        let unet = try UNet2DConditionModel(config: checkpoint.unetConfig, parameters: checkpoint.unet)
        let attention = AttentionContext(trainedLatentHeight: index.trainedLatent[0],
                                         trainedLatentWidth: index.trainedLatent[1])
        for c in cases {
            // The gate on both sides of its threshold: the factors the reference used.
            for g in c.gates {
                let composition = Self.gate(c, index, timestep: g.timestep)
                XCTAssertEqual(composition.dilation, g.dilation, "\(c.id) t\(g.timestep): dilation")
                XCTAssertEqual(composition.deepShrinkFactor, g.deepShrinkFactor, "\(c.id) t\(g.timestep): shrink")
                XCTAssertEqual(composition.isNone, g.dilation == 1 && g.deepShrinkFactor == 1, "\(c.id): isNone")
            }
            let random = TorchRandom(seed: c.seed)
            let sample = random.randn([c.batch, 4, c.height, c.width])
            let context = random.randn([c.batch, c.contextTokens, checkpoint.unetConfig.crossAttentionDim])
            for o in c.outputs {
                let composition = Self.gate(c, index, timestep: o.timestep)
                let start = Date()
                let out = unet(sample, timesteps: Array(repeating: Float(o.timestep), count: c.batch), context: context,
                               attention: attention, composition: composition)
                print(String(format: "[parity] %@ t%.0f (d %g, f %g): %.3f s", c.id, o.timestep, composition.dilation,
                             composition.deepShrinkFactor, Date().timeIntervalSince(start)))
                assertClose(out, try references.tensor(o.tensor), tolerance: 1e-3, "\(c.id) t\(Int(o.timestep))")
            }
        }
    }

    static func options(_ c: E2ECase) throws -> GenerationOptions {
        var o = GenerationOptions(prompt: c.prompt, width: c.width, height: c.height, seed: c.seed)
        o.negativePrompt = c.negativePrompt
        o.steps = c.steps
        o.cfgScale = c.cfgScale
        o.sampler = try XCTUnwrap(SamplerKind(rawValue: c.sampler), "\(c.id): sampler \(c.sampler)")
        o.karras = false  // diffusers' default schedules
        o.trainedSize = (c.trainedSize[0], c.trainedSize[1])
        o.attention = .standard
        o.composition.mode = try XCTUnwrap(CompositionMode(rawValue: c.method), "\(c.id): method \(c.method)")
        o.composition.redilateUntil = c.redilateUntil
        o.composition.deepShrinkEnd = c.deepShrinkEnd
        return o
    }

    /// txt2img through the pipeline with the method forced: the per-call compositions the plan hands the UNet are
    /// the reference's (timesteps on both sides of the gate), and the final latents match.
    func checkEndToEnd(_ model: String) throws {
        let cases = try Self.index().e2eCases.filter { $0.model == model }
        XCTAssertGreaterThanOrEqual(cases.count, 6, "\(model): too few end-to-end composition cases")
        let references = try SafeTensorsFile(path: try Fixtures.path("unet-composition/e2e.safetensors"))
        let pipeline = try Fixtures.pipeline(model)
        for c in cases {
            let options = try Self.options(c)
            let plan = try pipeline.compositionPlan(for: options)
            XCTAssertEqual(plan.method.rawValue, c.method, "\(c.id): method")
            XCTAssertEqual(plan.passes.map { [$0.width, $0.height] }, [[c.width, c.height]], "\(c.id): one pass")
            let scheduler = try options.sampler.makeScheduler(config: pipeline.schedulerConfig, steps: options.steps,
                                                              karras: options.karras)
            XCTAssertEqual(scheduler.timesteps.map { Double($0) }, c.calls.map(\.timestep), "\(c.id): timesteps")
            for call in c.calls {
                XCTAssertEqual(plan.passes.first?.unetCall(call.timestep),
                               UNetCallComposition(dilation: call.dilation, deepShrinkFactor: call.deepShrinkFactor),
                               "\(c.id) t\(call.timestep): composition")
            }
            let start = Date()
            let result = try pipeline.generate(options) { _ in }
            print(String(format: "[parity] %@: %.2f s, %@", c.id, Date().timeIntervalSince(start),
                         result.composition.summary))
            XCTAssertEqual(result.attentionName, "standard", "\(c.id): attention")
            assertClose(result.latents, try references.tensor(c.tensor), tolerance: 1e-3, "\(c.id) latents")
        }
    }

    func testTinySD1UNetCalls() throws { try checkModel("tiny-sd1") }

    func testTinySD2UNetCalls() throws { try checkModel("tiny-sd2") }

    func testTinySD1EndToEnd() throws { try checkEndToEnd("tiny-sd1") }

    func testTinySD2EndToEnd() throws { try checkEndToEnd("tiny-sd2") }

    /// The fixtures can tell a method from the plain UNet / pipeline (otherwise the parity above would prove
    /// nothing), and the inert cases (smaller canvases, gated-off calls) are the plain UNet / pipeline.
    func testFixturesSeparateMethodsFromThePlainUNet() throws {
        let index = try Self.index()
        for c in index.e2eCases {
            if c.calls.allSatisfy({ $0.dilation == 1 && $0.deepShrinkFactor == 1 }) {
                XCTAssertEqual(c.distanceFromPlain, 0, "\(c.id): an inert run must be the plain pipeline")
            } else {
                XCTAssertGreaterThan(c.distanceFromPlain, 0.05, "\(c.id): too close to the plain pipeline")
            }
        }
        for c in index.unetCases {
            for o in c.outputs {
                if o.dilation == 1 && o.deepShrinkFactor == 1 {
                    XCTAssertEqual(o.distanceFromPlain, 0, "\(c.id) t\(o.timestep): an inert call must be the plain UNet")
                } else {
                    XCTAssertGreaterThan(o.distanceFromPlain, 0.05, "\(c.id) t\(o.timestep): too close to the plain UNet")
                }
            }
        }
    }

    /// Elementwise.resizeBilinear / resizeBicubic against torch's F.interpolate(align_corners=False).
    func testResizeMatchesTorch() throws {
        let index = try Self.index()
        let references = try Self.outputs()
        XCTAssertFalse(index.resizeCases.isEmpty)
        for c in index.resizeCases {
            let input = try references.tensor(c.name + ".input")
            assertClose(Elementwise.resizeBilinear(input, height: c.height, width: c.width),
                        try references.tensor(c.name + ".bilinear"), tolerance: 1e-6, "\(c.name) bilinear")
            assertClose(Elementwise.resizeBicubic(input, height: c.height, width: c.width),
                        try references.tensor(c.name + ".bicubic"), tolerance: 1e-6, "\(c.name) bicubic")
        }
    }
}
