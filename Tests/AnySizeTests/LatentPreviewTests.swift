import AnySize
import Foundation
import XCTest

/// `Fixtures/image/preview_reference.json`, written by `tools/fixtures_preview.py`.
enum PreviewReference {
    static func load() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixturePath("image/preview_reference.json")))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func section(_ name: String) throws -> [String: Any] {
        try XCTUnwrap(load()[name] as? [String: Any], "reference section \(name)")
    }

    static func tensor(_ entry: Any?) throws -> Tensor {
        let dict = try XCTUnwrap(entry as? [String: Any])
        let shape = try XCTUnwrap(dict["shape"] as? [Int])
        let values = try XCTUnwrap(dict["data"] as? [Double]).map(Float.init)
        return Tensor(shape: shape, values: values)
    }

    static func bytes(_ entry: Any?) throws -> [UInt8] {
        try XCTUnwrap(entry as? [Int]).map(UInt8.init)
    }
}

func maxAbsDifference(_ a: Tensor, _ b: Tensor) -> Float {
    precondition(a.shape == b.shape, "\(a.shape) vs \(b.shape)")
    return zip(a.scalars, b.scalars).map { abs($0 - $1) }.max() ?? 0
}

final class LatentPreviewTests: XCTestCase {
    func testDecoderKinds() {
        XCTAssertEqual(LatentDecoderKind.allCases.map(\.rawValue), ["vae", "approx", "linear"])
        XCTAssertEqual(LatentDecoderKind(rawValue: "approx"), .approx)
    }

    /// Bundled weights vs Birch's module run in torch on the same latents.
    func testApproximateDecoderMatchesTorchReference() throws {
        let reference = try PreviewReference.section("approx")
        let latents = try PreviewReference.tensor(reference["latents"])  // [2, 4, 5, 7]
        let expected = try PreviewReference.tensor(reference["rgb"])  // [2, 3, 5, 7]
        let decoder = try ApproximateDecoder.bundledSD15()
        let rgb = decoder.rgb(fromLatents: latents)
        XCTAssertEqual(rgb.shape, [2, 3, 5, 7])
        let error = maxAbsDifference(rgb, expected)
        print("approximate decoder vs torch: max abs error \(error), reference max |x| \(expected.maxAbs)")
        XCTAssertLessThan(error, 1e-5)
        XCTAssertGreaterThan(expected.maxAbs, 1, "the reference exercises clamping")

        let image = decoder.image(fromLatents: latents, index: 1)
        XCTAssertEqual([image.height, image.width, 3], try XCTUnwrap(reference["image1_shape"] as? [Int]))
        let small = try PreviewReference.bytes(reference["image1_small"])  // [5, 7, 3]
        var worst = 0, sum = 0
        for y in 0 ..< image.height {
            for x in 0 ..< image.width {
                for c in 0 ..< 3 {
                    worst = max(worst, abs(Int(image[x, y, c]) - Int(small[((y / 8) * 7 + x / 8) * 3 + c])))
                    sum += Int(image[x, y, c])
                }
            }
        }
        XCTAssertEqual(worst, 0, "8x nearest-upsampled preview differs from the reference by \(worst) levels")
        XCTAssertEqual(sum, try XCTUnwrap(reference["image1_sum"] as? Int))
    }

    func testApproximateDecoderLoadsJSONAndChecksTensors() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("anysize-approx-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }

        // A tiny decoder written as JSON: inner width 2, identity-like in_proj.
        let json = """
        {"in_proj.weight": [[1, 0, 0, 0], [0, 0, 0, 2]], "in_proj.bias": [0.5, -0.5],
         "hidden_layers.0.weight": [[1, 0], [0, 1]], "hidden_layers.0.bias": [0, 0],
         "out_proj.weight": [[1, 0], [0, 1], [1, 1]], "out_proj.bias": [0, 0, 0.25]}
        """
        let path = folder + "/tiny.json"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(json.utf8)))
        let decoder = try ApproximateDecoder(jsonFile: path)
        let latents = Tensor(shape: [1, 4, 1, 2], values: [0.3, -2, 0, 0, 0, 0, 1.5, 0.1])
        let rgb = decoder.rgb(fromLatents: latents)
        func silu(_ x: Float) -> Float { x / (1 + exp(-x)) }
        for p in 0 ..< 2 {
            let h0 = silu(silu(latents.scalars[p] + 0.5)), h1 = silu(silu(2 * latents.scalars[6 + p] - 0.5))
            XCTAssertEqual(rgb.scalars[p], h0, accuracy: 1e-6)
            XCTAssertEqual(rgb.scalars[2 + p], h1, accuracy: 1e-6)
            XCTAssertEqual(rgb.scalars[4 + p], h0 + h1 + 0.25, accuracy: 1e-6)
        }

        // Missing, misshapen and unexpected tensors are errors naming the source.
        var tensors: [String: Tensor] = [
            "in_proj.weight": Tensor(zeros: [12, 4]), "in_proj.bias": Tensor(zeros: [12]),
            "hidden_layers.0.weight": Tensor(zeros: [12, 12]), "hidden_layers.0.bias": Tensor(zeros: [12]),
            "out_proj.weight": Tensor(zeros: [3, 12]), "out_proj.bias": Tensor(zeros: [3]),
        ]
        XCTAssertNoThrow(try ApproximateDecoder(tensors: tensors, source: "x.safetensors"))
        var broken = tensors
        broken["out_proj.bias"] = nil
        XCTAssertThrowsError(try ApproximateDecoder(tensors: broken, source: "x.safetensors")) { error in
            XCTAssertEqual((error as? AnySizeError)?.kind, .missingTensor)
            XCTAssertTrue("\(error)".contains("x.safetensors") && "\(error)".contains("out_proj"))
        }
        broken = tensors
        broken["in_proj.weight"] = Tensor(zeros: [12, 3])
        XCTAssertThrowsError(try ApproximateDecoder(tensors: broken, source: "x.safetensors")) { error in
            XCTAssertEqual((error as? AnySizeError)?.kind, .shapeMismatch)
        }
        tensors["decoder.extra"] = Tensor(zeros: [1])
        XCTAssertThrowsError(try ApproximateDecoder(tensors: tensors, source: "x.safetensors")) { error in
            XCTAssertTrue("\(error)".contains("decoder.extra"))
        }
        let notJSON = folder + "/bad.json"
        XCTAssertTrue(FileManager.default.createFile(atPath: notJSON, contents: Data("{\"in_proj.weight\": [[1, 2], [3]]}".utf8)))
        XCTAssertThrowsError(try ApproximateDecoder(jsonFile: notJSON)) { error in
            XCTAssertTrue("\(error)".contains(notJSON))
        }
    }

    /// A decoder saved as safetensors loads to the same decoder; a file lacking a tensor is an error naming it.
    func testApproximateDecoderLoadsSafetensors() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("anysize-approx-st-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var random = TestRandom(state: 17)
        func tensor(_ shape: [Int]) -> Tensor {
            Tensor(shape: shape, values: (0 ..< shape.reduce(1, *)).map { _ in Float(random.next() % 2001) / 1000 - 1 })
        }
        let named: [(String, Tensor)] = [
            ("in_proj.weight", tensor([12, 4])), ("in_proj.bias", tensor([12])),
            ("hidden_layers.0.weight", tensor([12, 12])), ("hidden_layers.0.bias", tensor([12])),
            ("out_proj.weight", tensor([3, 12])), ("out_proj.bias", tensor([3])),
        ]
        let path = folder + "/approx.safetensors"
        try SafeTensorsWriter.write(named, to: path)
        let direct = try ApproximateDecoder(tensors: Dictionary(uniqueKeysWithValues: named), source: "memory")
        let loaded = try ApproximateDecoder(file: path)
        let latents = tensor([2, 4, 3, 5])
        XCTAssertEqual(loaded.rgb(fromLatents: latents).scalars, direct.rgb(fromLatents: latents).scalars)

        let partial = folder + "/partial.safetensors"
        try SafeTensorsWriter.write(Array(named.dropLast()), to: partial)
        XCTAssertThrowsError(try ApproximateDecoder(safetensorsFile: partial)) { error in
            XCTAssertEqual((error as? AnySizeError)?.kind, .missingTensor)
            XCTAssertTrue("\(error)".contains(partial))
        }
    }

    /// ComfyUI's SD15 factors: torch reference and a naive per-pixel sum.
    func testLinearDecoderMatchesReferenceAndNaiveSum() throws {
        let reference = try PreviewReference.section("approx")
        let latents = try PreviewReference.tensor(reference["latents"])  // [2, 4, 5, 7]
        let expected = try PreviewReference.tensor(PreviewReference.section("linear")["rgb"])
        let decoder = LinearLatentDecoder.sd15
        let rgb = decoder.rgb(fromLatents: latents)
        let error = maxAbsDifference(rgb, expected)
        print("linear decoder vs torch: max abs error \(error)")
        XCTAssertLessThan(error, 1e-5)

        let biased = LinearLatentDecoder(factors: decoder.factors, bias: [0.1, -0.2, 0.3])
        let out = biased.rgb(fromLatents: latents), plane = 35
        let l = latents.scalars
        for b in 0 ..< 2 {
            for c in 0 ..< 3 {
                for p in 0 ..< plane {
                    var naive = biased.bias[c]
                    for ch in 0 ..< 4 { naive += l[(b * 4 + ch) * plane + p] * biased.factors[ch][c] }
                    XCTAssertEqual(out.scalars[(b * 3 + c) * plane + p], naive, accuracy: 1e-6)
                }
            }
        }
        let image = biased.image(fromLatents: latents, index: 0, upscale: 8)
        XCTAssertEqual(image.width, 56)
        XCTAssertEqual(image.height, 40)
        // Pixel (17, 9) comes from latent (1, 2), mapped as the VAE output is.
        XCTAssertEqual(image[17, 9, 2], ImageConversion.byte(fromSigned: out.scalars[2 * plane + 1 * 7 + 2]))
    }
}
