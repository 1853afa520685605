import AnySize
import Foundation
import XCTest

/// End-to-end parity of the pipeline-level composition methods (`hires`, `cascade`, `resize`, `auto`) with the independent
/// diffusers reference (tools/composition_pipeline_reference.py, fixtures from tools/fixtures_composition.py), and
/// of the two resize kernels they use with torch / the reference area average.
final class CompositionParityTests: XCTestCase {
    /// One case of Fixtures/composition/index.json.
    struct Case: Decodable {
        let id: String
        let model: String
        let compose: String
        let method: String
        let width: Int
        let height: Int
        let sampler: String
        let karras: Bool
        let hiresStrength: Double
        let prompt: String
        let negativePrompt: String
        let cfgScale: Double
        let steps: Int
        let seed: UInt64
        let trainedSize: [Int]
        let firstPass: [Int]?
        let passes: [[Int]]?
        let render: [Int]?
        let latentsTensor: String
        let imageTensor: String?
    }

    struct Index: Decodable {
        let bicubicSizes: [[Int]]
        let areaSizes: [[Int]]
        let cases: [Case]
    }

    static func index() throws -> Index { try Fixtures.decode(Index.self, "composition/index.json") }

    static func options(_ c: Case) throws -> GenerationOptions {
        var o = GenerationOptions(prompt: c.prompt, width: c.width, height: c.height, seed: c.seed)
        o.negativePrompt = c.negativePrompt
        o.steps = c.steps
        o.cfgScale = c.cfgScale
        o.sampler = try XCTUnwrap(SamplerKind(rawValue: c.sampler), "\(c.id): sampler \(c.sampler)")
        o.karras = c.karras
        o.trainedSize = (c.trainedSize[0], c.trainedSize[1])
        o.composition.mode = try XCTUnwrap(CompositionMode(rawValue: c.compose), "\(c.id): compose \(c.compose)")
        o.composition.hiresStrength = c.hiresStrength
        o.attention = .auto  // composition methods run standard attention under `auto`, as the reference does
        return o
    }

    func checkModel(_ model: String) throws {
        let cases = try Self.index().cases.filter { $0.model == model }
        XCTAssertGreaterThanOrEqual(cases.count, 4, "\(model): too few composition cases")
        XCTAssertTrue(cases.contains { ($0.passes?.count ?? 0) >= 3 && $0.width != $0.height },
                      "\(model): no non-square case with three or more passes")
        let references = try SafeTensorsFile(path: try Fixtures.path("composition/references.safetensors"))
        let pipeline = try Fixtures.pipeline(model)
        for c in cases {
            let options = try Self.options(c)
            let start = Date()
            let result = try pipeline.generate(options) { _ in }
            print(String(format: "[parity] %@: %.2f s, %@", c.id, Date().timeIntervalSince(start), result.composition.summary))
            XCTAssertEqual(result.composition.method.rawValue, c.method, "\(c.id): method")
            XCTAssertEqual(result.attentionName, "standard", "\(c.id): attention")
            if let first = c.firstPass {
                XCTAssertEqual(result.composition.passes.map { [$0.width, $0.height] }, [first, [c.width, c.height]], "\(c.id): passes")
            }
            if let passes = c.passes {
                XCTAssertEqual(result.composition.passes.map { [$0.width, $0.height] }, passes, "\(c.id): passes")
            }
            if let render = c.render {
                XCTAssertEqual(result.composition.passes.map { [$0.width, $0.height] }, [render], "\(c.id): render")
            }
            assertClose(result.latents, try references.tensor(c.latentsTensor), tolerance: 1e-3, "\(c.id) latents")
            if let image = c.imageTensor {
                let decoded = pipeline.decodeImages(result, tiling: .automatic)
                assertClose(decoded, try references.tensor(image), tolerance: 1e-3, "\(c.id) image")
            }
        }
    }

    func testTinySD1Epsilon() throws { try checkModel("tiny-sd1") }

    func testTinySD2VPrediction() throws { try checkModel("tiny-sd2") }

    /// `Elementwise.resizeBicubic` against torch `interpolate(mode="bicubic", align_corners=False)`, and
    /// `AreaResize.shrink` against the reference's float64 weight matrices, on a seeded [2, 3, 7, 9] tensor.
    func testResizeKernelsMatchReferences() throws {
        let index = try Self.index()
        let file = try SafeTensorsFile(path: try Fixtures.path("composition/kernels.safetensors"))
        let source = try file.tensor("source")
        for size in index.bicubicSizes {
            let out = Elementwise.resizeBicubic(source, height: size[0], width: size[1])
            assertClose(out, try file.tensor("bicubic.\(size[0])x\(size[1])"), tolerance: 1e-5, "bicubic \(size)")
        }
        for size in index.areaSizes {
            let out = AreaResize.shrink(source, height: size[0], width: size[1])
            assertClose(out, try file.tensor("area.\(size[0])x\(size[1])"), tolerance: 1e-5, "area \(size)")
        }
    }
}
