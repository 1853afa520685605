import AnySize
import Foundation
import XCTest

/// End-to-end latents against diffusers' StableDiffusionPipeline / StableDiffusionImg2ImgPipeline
/// (tools/fixtures_e2e.py): every sampler, with and without Karras sigmas, both fixtures, square and
/// non-square sizes (25x17 latents), batch 2 with negative prompts, img2img, and the single-file layout
/// (StableDiffusionPipeline.from_single_file) for three samplers in txt2img and img2img.
/// Bound: max-abs <= 1e-3 * max(1, max|reference|) for every case. The generator measured each reference's
/// own float32 error against a float64 run (`float64_error`, at most a quarter of the bound) so the bound
/// judges our arithmetic, not the tiny models' chaos.
final class GenerationParityTests: XCTestCase {
    private func pipeline(model: String, singleFile: Bool) throws -> StableDiffusionPipeline {
        try Fixtures.pipeline(singleFile ? model + ".safetensors" : model)
    }

    private func e2e() throws -> [String: Any] {
        guard let e = try Fixtures.referenceIndex()["e2e"] as? [String: Any] else {
            throw AnySizeError(.missingComponent, "reference/index.json has no e2e section; run tools/fixtures_e2e.py")
        }
        return e
    }

    /// "dpmpp_2m_karras" -> (.dpmpp2m, true)
    private func sampler(_ name: String) throws -> (SamplerKind, Bool) {
        let karras = name.hasSuffix("_karras")
        let base = karras ? String(name.dropLast("_karras".count)) : name
        guard let kind = SamplerKind(rawValue: base) else { throw AnySizeError(.invalidArgument, "unknown sampler \(name)") }
        return (kind, karras)
    }

    func testInitialNoiseIsTorchRandn() throws {
        let e = try e2e()
        let inputs = try SafeTensorsFile(path: try Fixtures.path("reference/" + (e["inputs_file"] as? String ?? "")))
        let seed = UInt64(e["seed"] as? Int ?? 0)
        for name in inputs.names where name.hasPrefix("noise.") {
            let reference = try inputs.tensor(name)
            let ours = TorchRandom(seed: seed).randn(reference.shape)
            XCTAssertEqual(ours.scalars, reference.scalars, "\(name) differs from torch.randn")
        }
    }

    func testLatentsMatchDiffusers() throws {
        let e = try e2e()
        let cases = e["cases"] as? [[String: Any]] ?? []
        XCTAssertGreaterThanOrEqual(cases.count, 32, "expected every sampler x karras x model x size")
        let singleFileModels = Set(cases.filter { ($0["weights"] as? String) == "single_file" }.compactMap { $0["model"] as? String })
        XCTAssertEqual(singleFileModels, ["tiny-sd1", "tiny-sd2"], "expected single-file cases for both fixtures")
        let inputs = try SafeTensorsFile(path: try Fixtures.path("reference/" + (e["inputs_file"] as? String ?? "")))
        let prompts = e["prompts"] as? [String] ?? []
        let negatives = e["negative_prompts"] as? [String] ?? []
        let seed = UInt64(e["seed"] as? Int ?? 0)
        let steps = e["steps"] as? Int ?? 0
        let cfg = e["guidance_scale"] as? Double ?? 0
        let strength = e["strength"] as? Double ?? 0
        var worst: Float = 0, savedCases = 0
        for c in cases {
            let name = c["name"] as? String ?? "?"
            let model = c["model"] as? String ?? ""
            let singleFile = (c["weights"] as? String) == "single_file"
            // tiny-sd1-saved (tiny-sd1 saved again by today's diffusers/transformers: tokenizer.json only, the same
            // weights) must match the same references; a few cases (txt2img and img2img) keep the test short.
            let alsoSaved = model == "tiny-sd1" && !singleFile && savedCases < 3
                && (savedCases < 2 || (c["mode"] as? String) == "img2img")
            if alsoSaved { savedCases += 1 }
            for (pipe, label) in try [(pipeline(model: model, singleFile: singleFile), "")]
                + (alsoSaved ? [(Fixtures.pipeline("tiny-sd1-saved"), " (tiny-sd1-saved)")] : []) {
            let name = name + label
            var options = GenerationOptions(prompt: prompts.first ?? "", width: c["width"] as? Int ?? 0,
                                            height: c["height"] as? Int ?? 0, seed: seed)
            options.batchPrompts = zip(prompts, negatives).map { ($0, $1) }
            options.steps = steps
            options.cfgScale = cfg
            (options.sampler, options.karras) = try sampler(c["sampler"] as? String ?? "")
            options.attention = .standard
            if let ids = c["input_ids"] as? [[Int]], let first = ids.first {
                XCTAssertEqual(pipe.tokenizer.tokenize(prompts[0]), first, "\(name): prompt ids")
            }
            if (c["mode"] as? String) == "img2img" {
                let pixels = try inputs.tensor("init_image")            // uint8 values as float
                let image = Tensor(zeros: pixels.shape)
                for i in 0 ..< image.count { image.pointer[i] = pixels.pointer[i] / 255 * 2 - 1 }
                options.initImage = Elementwise.concatBatch([image, image])  // diffusers got [image, image]
                options.strength = strength
            }
            let result = try pipe.generate(options)
            let reference = try SafeTensorsFile(path: try Fixtures.path("reference/" + (c["file"] as? String ?? "")))
                .tensor(c["output"] as? String ?? "")
            XCTAssertEqual(result.latents.shape, reference.shape, name)
            guard result.latents.shape == reference.shape else { continue }
            let comparison = compare(result.latents, reference, tolerance: 1e-3)
            let conditioning = (c["float64_error"] as? Double).map { String(format: "%.1e", $0) } ?? "?"
            print("[e2e] \(name)\(singleFile ? " (single file)" : ""): \(comparison)"
                  + " [diffusers float32 vs float64: \(conditioning)]")
            XCTAssertTrue(comparison.passes, "\(name)\(singleFile ? " (single file)" : ""): \(comparison)")
            worst = max(worst, comparison.relative)
            }
        }
        XCTAssertEqual(savedCases, 3, "tiny-sd1-saved cases")
        print("[e2e] worst normalised error: \(worst)")
    }

    /// Progress events count sampler steps: Heun's 3 steps (5 model calls) report 1/3, 2/3, 3/3, and an img2img
    /// run at strength 0.6 reports the steps it runs.
    func testProgressCountsSamplerSteps() throws {
        let pipe = try Fixtures.pipeline("tiny-sd1")
        var options = GenerationOptions(prompt: "a red cube", width: 64, height: 64, seed: 7)
        options.steps = 3
        options.sampler = .heun
        var steps: [String] = [], previews: [Int] = []
        _ = try pipe.generate(options) { event in
            if case .step(let i, let n, _) = event { steps.append("\(i)/\(n)") }
            if case .latents(let i, _, _) = event { previews.append(i) }
        }
        XCTAssertEqual(steps, ["1/3", "2/3", "3/3"])
        XCTAssertEqual(previews, [1, 2, 3])
        options.steps = 5
        options.strength = 0.6
        options.initImage = TorchRandom(seed: 1).randn([1, 3, 64, 64])
        steps = []
        _ = try pipe.generate(options) { event in
            if case .step(let i, let n, _) = event { steps.append("\(i)/\(n)") }
        }
        XCTAssertEqual(steps, ["1/3", "2/3", "3/3"])
    }

    /// The text encoder is dropped after encoding and rebuilt from the checkpoint on the next call: two
    /// generations on one pipeline give bit-identical latents, and the encoder's weights were read twice.
    func testGenerateTwiceOnOnePipelineRebuildsTheTextEncoder() throws {
        let checkpoint = try StableDiffusionCheckpoint.load(path: try Fixtures.path("tiny-sd1"))
        let pipe = try StableDiffusionPipeline(checkpoint: checkpoint)
        let textBytes = 4 * checkpoint.textEncoder.parameterCount
        XCTAssertTrue(pipe.isTextEncoderResident)
        XCTAssertEqual(checkpoint.textEncoder.materializedBytes, textBytes)
        var options = GenerationOptions(prompt: "a red cube", width: 64, height: 64, seed: 7)
        options.steps = 3
        let first = try pipe.generate(options)
        XCTAssertFalse(pipe.isTextEncoderResident, "text encoder kept after encoding")
        let second = try pipe.generate(options)
        XCTAssertEqual(checkpoint.textEncoder.materializedBytes, 2 * textBytes, "text encoder not rebuilt once")
        XCTAssertEqual(first.latents.scalars, second.latents.scalars)
        pipe.releasesTextEncoderAfterEncoding = false
        _ = try pipe.generate(options)
        XCTAssertTrue(pipe.isTextEncoderResident)
    }

    /// `shouldStop` ends sampling before the next model call: stopping after call 2 of 4 returns exactly the
    /// latents the full run reported after its call 2, with `stoppedEarly` set; a full run does not set it.
    func testShouldStopReturnsTheLatentsReachedSoFar() throws {
        let pipe = try Fixtures.pipeline("tiny-sd1")
        var options = GenerationOptions(prompt: "a red cube", width: 64, height: 64, seed: 11)
        options.steps = 4
        options.sampler = .euler
        options.karras = false
        var afterSecond: [Float] = []
        let full = try pipe.generate(options) { event in
            if case .latents(2, _, let latents) = event { afterSecond = latents.scalars }
        }
        XCTAssertFalse(full.stoppedEarly)
        let calls = CallCounter()
        options.shouldStop = { calls.next() > 2 }
        var steps = 0
        let stopped = try pipe.generate(options) { event in
            if case .step = event { steps += 1 }
        }
        XCTAssertTrue(stopped.stoppedEarly)
        XCTAssertEqual(steps, 2)
        XCTAssertEqual(stopped.latents.scalars, afterSecond)
        XCTAssertNotEqual(stopped.latents.scalars, full.latents.scalars)
    }
}

/// Counts `shouldStop` questions (1-based).
private final class CallCounter: @unchecked Sendable {
    private var count = 0
    func next() -> Int {
        count += 1
        return count
    }
}
