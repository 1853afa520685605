import AnySize
import Foundation
import XCTest

/// Parity of the in-UNet composition methods (`redilate`, `deep-shrink`) with the independent diffusers reference
/// (tools/composition_reference.py; fixtures from tools/fixtures_unet_composition.py): one UNet call on canvases larger
/// than the (overridden) trained grid, square and non-square, integer and fractional factors, and smaller canvases
/// where the methods are inert; the gate's decision on both sides of its threshold; the resize kernels against
/// torch's F.interpolate.
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

    struct Index: Decodable {
        let trainedLatent: [Int]
        let redilateUntil: Double
        let deepShrinkEnd: Double
        let unetCases: [UNetCase]
        let resizeCases: [ResizeCase]
    }

    static func index() throws -> Index {
        let data = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.path("unet-composition/index.json")))
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(Index.self, from: data)
    }

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

    func testTinySD1UNetCalls() throws { try checkModel("tiny-sd1") }

    func testTinySD2UNetCalls() throws { try checkModel("tiny-sd2") }

    /// The fixtures can tell a method from the plain UNet (otherwise the parity above would prove nothing), and
    /// the inert cases (smaller canvases, gated-off calls) are the plain UNet.
    func testFixturesSeparateMethodsFromThePlainUNet() throws {
        for c in try Self.index().unetCases {
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
