import AnySize
import AnySizeServer
import Foundation
import XCTest

/// txt2img and img2img through HTTP: A1111's answer shape, the images equal the library's at the same seed, and
/// the PNGs carry the A1111 `parameters` text.
final class GenerationRouteTests: XCTestCase {
    func testTxt2ImgAnswersA1111ShapeWithImagesEqualToTheLibrarys() async throws {
        let server = try await TestServer.start()
        let answer = try await server.post("/sdapi/v1/txt2img", [
            "prompt": "a (red:1.2) cube", "negative_prompt": "blur", "width": 64, "height": 64, "steps": 3, "seed": 42,
            "sampler_name": "Euler a", "cfg_scale": 5, "batch_size": 2, "n_iter": 2, "subseed": 7,
            "enable_hr": false, "restore_faces": false, "alwayson_scripts": [String: Any](), "styles": [String](),
            "some_future_field": "ignored", "anysize_compose": "none",
        ] as [String: Any])
        await server.stop()
        XCTAssertEqual(answer.status, 200, answer.detail)
        let body = try answer.object()
        let images = try XCTUnwrap(body["images"] as? [String])
        XCTAssertEqual(images.count, 4)
        let parameters = try XCTUnwrap(body["parameters"] as? [String: Any])
        XCTAssertEqual(parameters["width"] as? Int, 64)
        XCTAssertEqual(parameters["sampler_name"] as? String, "Euler a")
        XCTAssertEqual(parameters["seed"] as? Int, 42)
        XCTAssertEqual(parameters["anysize_compose"] as? String, "none")
        let infoText = try XCTUnwrap(body["info"] as? String)
        let info = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(infoText.utf8)) as? [String: Any])
        XCTAssertEqual(info["seed"] as? Int, 42)
        XCTAssertEqual(info["all_seeds"] as? [Int], [42, 43, 44, 45], "image i has seed + i, as A1111")
        XCTAssertEqual((info["infotexts"] as? [String])?.count, 4)
        XCTAssertEqual(info["sd_model_name"] as? String, "tiny-sd1")
        XCTAssertEqual((info["anysize_notes"] as? [String])?.first?.contains("subseed"), true)

        // The first image of the second batch (seed 44) is the library's image 0 of that batch with per-image seeds.
        var options = GenerationOptions(prompt: "a (red:1.2) cube", width: 64, height: 64, seed: 44)
        options.seedPerImage = true
        options.negativePrompt = "blur"
        options.steps = 3
        options.sampler = .eulerAncestral
        options.karras = false
        options.cfgScale = 5
        options.batchSize = 2
        let pipeline = try StableDiffusionPipeline(checkpoint: StableDiffusionCheckpoint.load(path: TestServer.tinyModel))
        let decoded = pipeline.decodeImages(try pipeline.generate(options))
        let (image, bytes) = try decodePNG(images[2])
        XCTAssertEqual(image, ImageConversion.image(fromDecoded: decoded, index: 0))
        XCTAssertNotEqual(image, try decodePNG(images[0]).image)

        let path = FileManager.default.temporaryDirectory.appendingPathComponent("serve-\(UUID().uuidString).png").path
        try FileIO.writeAtomically(bytes, to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let text = try XCTUnwrap(PNGReader.textChunks(path: path).first { $0.key == "parameters" }?.value)
        XCTAssertTrue(text.hasPrefix("a (red:1.2) cube\nNegative prompt: blur\nSteps: 3, Sampler: Euler a, CFG scale: 5, Seed: 44, Size: 64x64"), text)
        XCTAssertEqual(text, (info["infotexts"] as? [String])?[2])
    }

    /// `anysize serve --precision bf16`: the UNet runs in bfloat16 and the infotext says so; close to the fp32
    /// image (the tiny model's pixels within 24 of 255 levels; bf16 changes the UNet output by about 1e-2).
    func testBFloat16ServerSaysSoAndStaysCloseToFloat32() async throws {
        let request: [String: Any] = ["prompt": "a red cube", "width": 64, "height": 64, "steps": 3, "seed": 5,
                                      "anysize_compose": "none"]
        var answers: [[String: Any]] = []
        for precision in [Precision.fp32, .bf16] {
            let server = try await TestServer.start { $0.precision = precision }
            let answer = try await server.post("/sdapi/v1/txt2img", request)
            await server.stop()
            XCTAssertEqual(answer.status, 200, answer.detail)
            answers.append(try answer.object())
        }
        func infotext(_ body: [String: Any]) throws -> String {
            let info = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(body["info"] as? String).utf8)) as? [String: Any])
            return try XCTUnwrap((info["infotexts"] as? [String])?.first)
        }
        let fp32Text = try infotext(answers[0]), bf16Text = try infotext(answers[1])
        XCTAssertFalse(fp32Text.contains("Precision"), fp32Text)
        XCTAssertTrue(bf16Text.contains("Precision: bf16"), bf16Text)
        let fp32 = try decodePNG(try XCTUnwrap((answers[0]["images"] as? [String])?.first)).image
        let bf16 = try decodePNG(try XCTUnwrap((answers[1]["images"] as? [String])?.first)).image
        XCTAssertEqual(fp32.pixels.count, bf16.pixels.count)
        let worst = zip(fp32.pixels, bf16.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
        print("bf16 server image against fp32: worst \(worst) levels")
        XCTAssertGreaterThan(worst, 0, "the bf16 server made the fp32 image: its UNet did not run in bf16")
        XCTAssertLessThanOrEqual(worst, 24, "bf16 image against fp32")
    }

    /// As A1111: image i of a batch has seed + i and is made again alone by a request with that seed at batch size
    /// 1 (txt2img with an ancestral sampler, which draws noise at every step, and img2img with one init image).
    func testEachImageOfABatchIsReproducibleAloneWithItsSeed() async throws {
        let initImage = Data(try PNGWriter.encode(RGBImage(width: 64, height: 64, pixels: (0 ..< 64 * 64 * 3).map { UInt8(($0 * 7) % 256) })))
            .base64EncodedString()
        let server = try await TestServer.start()
        for route in ["/sdapi/v1/txt2img", "/sdapi/v1/img2img"] {
            var request: [String: Any] = ["prompt": "a red cube", "width": 64, "height": 64, "steps": 3, "seed": 100,
                                          "sampler_name": "Euler a", "anysize_compose": "none", "batch_size": 3]
            if route.hasSuffix("img2img") { request["init_images"] = [initImage]; request["denoising_strength"] = 0.6 }
            let batch = try await server.post(route, request)
            XCTAssertEqual(batch.status, 200, batch.detail)
            request["batch_size"] = 1
            request["seed"] = 102
            let alone = try await server.post(route, request)
            XCTAssertEqual(alone.status, 200, alone.detail)
            let images = try XCTUnwrap(try batch.object()["images"] as? [String])
            let info = try XCTUnwrap(JSONSerialization.jsonObject(with: Data((try batch.object()["info"] as? String ?? "").utf8)) as? [String: Any])
            XCTAssertEqual(info["all_seeds"] as? [Int], [100, 101, 102], route)
            XCTAssertTrue((info["infotexts"] as? [String])?[2].contains("Seed: 102,") == true, route)
            let third = try decodePNG(images[2]).image, single = try decodePNG((try alone.object()["images"] as? [String])?.first).image
            // The same noise; the UNet at batch 3 and 1 may round differently, so within a few levels of 255.
            let largest = zip(third.pixels, single.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 255
            XCTAssertLessThanOrEqual(largest, 2, route)
            let first = try decodePNG(images[0]).image
            XCTAssertGreaterThan(zip(first.pixels, single.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0, 20, "\(route): other seeds differ")
        }
        await server.stop()
    }

    func testTxt2ImgDefaultsToTheModelsSizeAndHonoursSendAndSaveImages() async throws {
        let server = try await TestServer.start()
        let answer = try await server.post("/sdapi/v1/txt2img", ["prompt": "x", "steps": 1, "send_images": false, "save_images": true,
                                                                  "override_settings": ["CLIP_stop_at_last_layers": 2]] as [String: Any])
        let saved = try FileManager.default.contentsOfDirectory(atPath: server.stateDirectory + "/outputs/txt2img-images")
        await server.stop()
        XCTAssertEqual(answer.status, 200, answer.detail)
        let body = try answer.object()
        XCTAssertEqual((body["images"] as? [String])?.count, 0)
        XCTAssertEqual((body["parameters"] as? [String: Any])?["width"] as? Int, 512)
        XCTAssertEqual((body["parameters"] as? [String: Any])?["anysize_compose"] as? String, "auto", "the default, as generate's")
        XCTAssertEqual(saved.filter { $0.hasSuffix(".png") }.count, 1)
        let info = try XCTUnwrap(JSONSerialization.jsonObject(with: Data((body["info"] as? String ?? "").utf8)) as? [String: Any])
        XCTAssertEqual(info["clip_skip"] as? Int, 2)
        XCTAssertTrue((info["infotexts"] as? [String])?.first?.contains("Clip skip: 2") == true)
    }

    func testImg2ImgResizesTheInitImageAndEqualsTheLibrarys() async throws {
        var initImage = RGBImage(width: 48, height: 40)
        for y in 0 ..< 40 { for x in 0 ..< 48 { for c in 0 ..< 3 { initImage.pixels[(y * 48 + x) * 3 + c] = UInt8((x * 5 + y * 3 + c * 60) % 256) } } }
        let png = try PNGWriter.encode(initImage)
        let server = try await TestServer.start()
        let answer = try await server.post("/sdapi/v1/img2img", [
            "init_images": ["data:image/png;base64," + Data(png).base64EncodedString()], "prompt": "a blue sphere",
            "width": 64, "height": 64, "steps": 4, "seed": 5, "sampler_name": "DDIM", "denoising_strength": 0.5,
            "resize_mode": 0, "mask": NSNull(),
        ] as [String: Any])
        await server.stop()
        XCTAssertEqual(answer.status, 200, answer.detail)
        let body = try answer.object()
        let images = try XCTUnwrap(body["images"] as? [String])
        XCTAssertEqual(images.count, 1)
        XCTAssertEqual((body["parameters"] as? [String: Any])?["denoising_strength"] as? Double, 0.5)

        var options = GenerationOptions(prompt: "a blue sphere", width: 64, height: 64, seed: 5)
        options.steps = 4
        options.sampler = .ddim
        options.karras = false
        options.strength = 0.5
        options.initImage = ImageConversion.tensor(from: ImageConversion.resize(initImage, width: 64, height: 64))
        let pipeline = try StableDiffusionPipeline(checkpoint: StableDiffusionCheckpoint.load(path: TestServer.tinyModel))
        let decoded = pipeline.decode(try pipeline.generate(options).latents)
        XCTAssertEqual(try decodePNG(images[0]).image, ImageConversion.image(fromDecoded: decoded, index: 0))
    }
}
