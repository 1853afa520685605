import AnySize
import AnySizeServer
import Foundation
import XCTest

/// The list, options, progress, interrupt and skip routes.
final class ControlRouteTests: XCTestCase {
    func testListsPingAndOptionsSwitchTheModel() async throws {
        let server = try await TestServer.start { $0.modelsDirectory = TestServer.fixtures.path }
        let ping = try await server.get("/internal/ping")
        XCTAssertEqual(ping.status, 200)
        XCTAssertEqual(String(decoding: ping.body, as: UTF8.self), "{}")
        let samplers = try JSONSerialization.jsonObject(with: try await server.get("/sdapi/v1/samplers").body) as? [[String: Any]]
        XCTAssertEqual(samplers?.compactMap { $0["name"] as? String }, ["DPM++ 2M", "Euler a", "Euler", "Heun", "DDIM"])
        let schedulers = try JSONSerialization.jsonObject(with: try await server.get("/sdapi/v1/schedulers").body) as? [[String: Any]]
        XCTAssertEqual(schedulers?.compactMap { $0["label"] as? String }, ["Automatic", "Karras"])
        let models = try JSONSerialization.jsonObject(with: try await server.get("/sdapi/v1/sd-models").body) as? [[String: Any]]
        let titles = models?.compactMap { $0["title"] as? String } ?? []
        XCTAssertEqual(titles.first, "tiny-sd1")
        XCTAssertTrue(titles.contains("tiny-sd2"), "\(titles)")
        XCTAssertEqual(titles.filter { $0 == "tiny-sd1" }.count, 1, "the --model listed twice: \(titles)")

        let value1 = try await server.get("/sdapi/v1/options").object()["sd_model_checkpoint"] as? String
        XCTAssertEqual(value1, "tiny-sd1")
        let unknown = try await server.post("/sdapi/v1/options", ["sd_model_checkpoint": "no-such-model"])
        XCTAssertEqual(unknown.status, 422)
        XCTAssertTrue(unknown.detail.hasPrefix("sd_model_checkpoint:"), unknown.detail)
        let set = try await server.post("/sdapi/v1/options", ["sd_model_checkpoint": "tiny-sd2 [0123abcd]", "CLIP_stop_at_last_layers": 2,
                                                               "samples_save": true] as [String: Any])
        XCTAssertEqual(set.status, 200, set.detail)
        let options = try await server.get("/sdapi/v1/options").object()
        XCTAssertEqual(options["sd_model_checkpoint"] as? String, "tiny-sd2")
        XCTAssertEqual(options["CLIP_stop_at_last_layers"] as? Int, 2)
        let onSD2 = try await server.post("/sdapi/v1/txt2img", ["prompt": "x", "width": 64, "height": 64, "steps": 1] as [String: Any])
        XCTAssertEqual(onSD2.status, 200, onSD2.detail)
        let info = try JSONSerialization.jsonObject(with: Data((try onSD2.object()["info"] as? String ?? "").utf8)) as? [String: Any]
        XCTAssertEqual(info?["sd_model_name"] as? String, "tiny-sd2")
        XCTAssertEqual(info?["clip_skip"] as? Int, 2)
        // Per request, back to the first model without changing the option.
        let onSD1 = try await server.post("/sdapi/v1/txt2img", ["prompt": "x", "width": 64, "height": 64, "steps": 1,
                                                                 "override_settings": ["sd_model_checkpoint": "tiny-sd1"]] as [String: Any])
        let info1 = try JSONSerialization.jsonObject(with: Data((try onSD1.object()["info"] as? String ?? "").utf8)) as? [String: Any]
        XCTAssertEqual(info1?["sd_model_name"] as? String, "tiny-sd1")
        await server.stop()
    }

    /// The web page and its script and style are served from the target's resources, behind the same auth.
    func testWebPageIsServed() async throws {
        let server = try await TestServer.start { $0.credentials = [("u", "p")] }
        let anonymous = try await server.get("/")
        XCTAssertEqual(anonymous.status, 401)
        server.credentials = "u:p"
        for (path, type, marker) in [("/", "text/html", "<form id=\"form\">"), ("/anysize.js", "text/javascript", "/sdapi/v1/txt2img"),
                                     ("/anysize.css", "text/css", "#gallery")] {
            let answer = try await server.get(path)
            XCTAssertEqual(answer.status, 200, path)
            XCTAssertTrue(answer.header("Content-Type")?.hasPrefix(type) == true, "\(path): \(answer.header("Content-Type") ?? "")")
            XCTAssertTrue(String(decoding: answer.body, as: UTF8.self).contains(marker), path)
        }
        await server.stop()
    }

    /// A long run reports progress and a live preview; interrupt ends it at the next step with the image so far;
    /// skip ends the current batch and the next one runs.
    func testProgressPreviewSkipAndInterrupt() async throws {
        let server = try await TestServer.start()
        let idle = try await server.get("/sdapi/v1/progress").object()
        XCTAssertEqual(idle["progress"] as? Double, 0)
        XCTAssertEqual(idle.state["job_count"] as? Int, 0)
        XCTAssertTrue(idle["current_image"] is NSNull)

        let run = Task {
            // compose none: the preview is the canvas itself (a resize or hires pass previews its own render size).
            try await server.post("/sdapi/v1/txt2img", ["prompt": "x", "width": 128, "height": 96, "steps": 500, "n_iter": 2,
                                                        "sampler_name": "Euler", "anysize_compose": "none"] as [String: Any])
        }
        _ = try await server.waitForProgress { ($0.state["sampling_step"] as? Int ?? 0) >= 2 }
        let running = try await server.get("/sdapi/v1/progress").object()
        XCTAssertEqual(running.state["job_count"] as? Int, 2)
        XCTAssertEqual(running.state["sampling_steps"] as? Int, 500)
        let progress = try XCTUnwrap(running["progress"] as? Double)
        XCTAssertTrue(progress > 0 && progress < 0.5, "\(progress)")
        let preview = try decodePNG(running["current_image"]).image
        XCTAssertEqual([preview.width, preview.height], [128, 96])

        let value2 = try await server.request("POST", "/sdapi/v1/skip").status
        XCTAssertEqual(value2, 200)
        _ = try await server.waitForProgress { ($0.state["job_no"] as? Int) == 1 && ($0.state["sampling_step"] as? Int ?? 0) >= 1 }
        let value3 = try await server.request("POST", "/sdapi/v1/interrupt").status
        XCTAssertEqual(value3, 200)
        let answer = try await run.value
        XCTAssertEqual(answer.status, 200, answer.detail)
        let body = try answer.object()
        XCTAssertEqual((body["images"] as? [String])?.count, 2)
        let info = try JSONSerialization.jsonObject(with: Data((body["info"] as? String ?? "").utf8)) as? [String: Any]
        XCTAssertEqual(info?["anysize_interrupted"] as? Bool, true)
        let after = try await server.get("/sdapi/v1/progress").object()
        XCTAssertEqual(after.state["job_count"] as? Int, 0)
        await server.stop()
    }

    /// A hires (two-pass) request interrupted in its first pass answers that pass's image at its size, as A1111's
    /// hires fix does; interrupted in the second pass, the image at the target size. The infotext says the size.
    func testHiresInterruptedInAPassAnswersThatPassesImage() async throws {
        // ood-toy is trained at 128x128: hires at 256x256 runs pass 1 at 128x128, pass 2 at 256x256.
        let server = try await TestServer.start { $0.modelsDirectory = TestServer.fixtures.path }
        for (stopAfter, side) in [(2, 128), (402, 256)] {
            let run = Task {
                try await server.post("/sdapi/v1/txt2img", ["prompt": "x", "width": 256, "height": 256, "steps": 400, "sampler_name": "Euler",
                                                            "anysize_compose": "hires", "anysize_hires_strength": 0.5,
                                                            "override_settings": ["sd_model_checkpoint": "ood-toy"]] as [String: Any])
            }
            let progress = try await server.waitForProgress(seconds: 300) { ($0.state["sampling_step"] as? Int ?? 0) >= stopAfter }
            XCTAssertEqual(progress.state["sampling_steps"] as? Int, 600, "400 steps in pass 1, 200 in pass 2")
            let interrupted = try await server.request("POST", "/sdapi/v1/interrupt").status
            XCTAssertEqual(interrupted, 200)
            let answer = try await run.value
            XCTAssertEqual(answer.status, 200, answer.detail)
            let body = try answer.object()
            let image = try decodePNG((body["images"] as? [String])?.first).image
            XCTAssertEqual([image.width, image.height], [side, side], "interrupted after step \(stopAfter)")
            let info = try JSONSerialization.jsonObject(with: Data((body["info"] as? String ?? "").utf8)) as? [String: Any]
            XCTAssertEqual(info?["anysize_interrupted"] as? Bool, true)
            let text = (info?["infotexts"] as? [String])?.first ?? ""
            XCTAssertTrue(text.contains("Size: \(side)x\(side)"), text)
        }
        await server.stop()
    }
}
