import AnySize
import AnySizeServer
import Foundation
import XCTest

/// Bad requests answer as A1111 does (422 naming the field), and the limits: body size (413), authentication
/// (401) and the queue (429).
final class RequestLimitTests: XCTestCase {
    func testBadInputsAnswer422NamingTheField() async throws {
        let server = try await TestServer.start()
        let base: [String: Any] = ["prompt": "x", "width": 64, "height": 64, "steps": 1]
        let cases: [(path: String, change: [String: Any], field: String)] = [
            ("txt2img", ["width": "wide"], "width"),
            ("txt2img", ["width": 65], "width"),
            ("txt2img", ["height": 8192], "height"),
            ("txt2img", ["width": 32], "width"),
            ("txt2img", ["steps": 0], "steps"),
            ("txt2img", ["steps": 2.5], "steps"),
            ("txt2img", ["cfg_scale": "high"], "cfg_scale"),
            ("txt2img", ["batch_size": 0], "batch_size"),
            ("txt2img", ["n_iter": 1000], "n_iter"),
            ("txt2img", ["seed": -5], "seed"),
            ("txt2img", ["prompt": 12], "prompt"),
            ("txt2img", ["sampler_name": "LMS"], "sampler_name"),
            ("txt2img", ["scheduler": "Exponential"], "scheduler"),
            ("txt2img", ["sampler_name": "Euler a", "scheduler": "Karras"], "scheduler"),
            ("txt2img", ["enable_hr": true], "enable_hr"),
            ("txt2img", ["alwayson_scripts": ["controlnet": ["args": [1]]]], "alwayson_scripts"),
            ("txt2img", ["styles": ["cinematic"]], "styles"),
            ("txt2img", ["anysize_attention": "fast"], "anysize_attention"),
            ("txt2img", ["anysize_prompt_syntax": "comfy"], "anysize_prompt_syntax"),
            ("txt2img", ["anysize_compose": "tile"], "anysize_compose"),
            ("txt2img", ["anysize_hires_strength": 1.5], "anysize_hires_strength"),
            ("txt2img", ["override_settings": ["CLIP_stop_at_last_layers": 0]], "override_settings.CLIP_stop_at_last_layers"),
            ("txt2img", ["override_settings": ["sd_model_checkpoint": "nope"]], "override_settings.sd_model_checkpoint"),
            ("txt2img", ["override_settings": "none"], "override_settings"),
            ("img2img", [:], "init_images"),
            ("img2img", ["init_images": ["!!!"]], "init_images[0]"),
            ("img2img", ["init_images": [Data("GIF89a".utf8).base64EncodedString()]], "init_images[0]"),
            ("img2img", ["init_images": [Data([0x89, 0x50, 0x4E, 0x47, 1, 2, 3]).base64EncodedString()]], "init_images[0]"),
            ("img2img", ["init_images": [Data(try PNGWriter.encode(RGBImage(width: 8, height: 8))).base64EncodedString()], "resize_mode": 1], "resize_mode"),
            ("img2img", ["init_images": [Data(try PNGWriter.encode(RGBImage(width: 8, height: 8))).base64EncodedString()], "denoising_strength": 0], "denoising_strength"),
            ("img2img", ["init_images": [Data(try PNGWriter.encode(RGBImage(width: 8, height: 8))).base64EncodedString()], "mask": "abc"], "mask"),
        ]
        for c in cases {
            let answer = try await server.post("/sdapi/v1/\(c.path)", base.merging(c.change) { $1 })
            XCTAssertEqual(answer.status, 422, "\(c.change): \(answer.detail)")
            XCTAssertTrue(answer.detail.hasPrefix(c.field + ":"), "\(c.change): '\(answer.detail)' does not name \(c.field)")
        }
        for (body, detail) in [("{\"prompt\": ", "request body is not valid JSON"), ("[1, 2]", "request body: expected a JSON object"),
                               ("", "request body is not valid JSON")] {
            let answer = try await server.request("POST", "/sdapi/v1/txt2img", body: Data(body.utf8))
            XCTAssertEqual(answer.status, 422, body)
            XCTAssertEqual(answer.detail, detail)
        }
        let notFound = try await server.get("/sdapi/v1/no-such-route")
        XCTAssertEqual(notFound.status, 404)
        XCTAssertEqual(notFound.detail, "Not Found")
        // Nothing above reached the generation thread.
        let value1 = try await server.get("/sdapi/v1/progress").object().state["job_count"] as? Int
        XCTAssertEqual(value1, 0)
        await server.stop()
    }

    func testBodyLargerThanTheLimitAnswers413() async throws {
        let server = try await TestServer.start { $0.bodyLimit = 1 << 20 }
        let image = String(repeating: "A", count: (1 << 20) + 100)
        let answer = try await server.post("/sdapi/v1/img2img", ["init_images": [image], "prompt": "x"] as [String: Any])
        XCTAssertEqual(answer.status, 413)
        XCTAssertTrue(answer.detail.contains("larger than 1 MB"), answer.detail)
        let value2 = try await server.get("/internal/ping").status
        XCTAssertEqual(value2, 200)
        await server.stop()
    }

    func testBasicAuthGuardsEveryRoute() async throws {
        let server = try await TestServer.start { $0.credentials = [("alice", "s3cret"), ("bob", "pw:with:colons")] }
        for path in ["/internal/ping", "/sdapi/v1/progress", "/sdapi/v1/sd-models", "/sdapi/v1/options"] {
            let anonymous = try await server.get(path)
            XCTAssertEqual(anonymous.status, 401, path)
            XCTAssertEqual(anonymous.detail, "Incorrect username or password")
            XCTAssertEqual(anonymous.header("WWW-Authenticate"), "Basic")
        }
        let wrong = "Basic " + Data("alice:wrong".utf8).base64EncodedString()
        let value3 = try await server.request("GET", "/internal/ping", authorization: wrong).status
        XCTAssertEqual(value3, 401)
        let value4 = try await server.request("POST", "/sdapi/v1/txt2img", json: ["prompt": "x"], authorization: wrong).status
        XCTAssertEqual(value4, 401)
        let value5 = try await server.request("GET", "/internal/ping", authorization: "Bearer abc").status
        XCTAssertEqual(value5, 401)
        server.credentials = "bob:pw:with:colons"
        let value6 = try await server.get("/internal/ping").status
        XCTAssertEqual(value6, 200)
        server.credentials = "alice:s3cret"
        let answer = try await server.post("/sdapi/v1/txt2img", ["prompt": "x", "width": 64, "height": 64, "steps": 1] as [String: Any])
        XCTAssertEqual(answer.status, 200, answer.detail)
        await server.stop()
        XCTAssertThrowsError(try ServerConfiguration.parseCredentials("alice")) { error in
            XCTAssertEqual("\(error)", "--api-auth 'alice' is not USER:PASS; e.g. --api-auth alice:secret")
        }
        let parsed = try ServerConfiguration.parseCredentials("a:b,c:d:e")
        XCTAssertEqual(parsed.map { "\($0.user)|\($0.password)" }, ["a|b", "c|d:e"])
        XCTAssertThrowsError(try ServerConfiguration.parseCredentials(":pw"))
    }

    /// 20 requests at once with room for 4: each is answered, with its own images or 429; none is lost, and the
    /// answered ones carry their own seeds.
    func testTwentyConcurrentRequestsAreAllAnsweredOr429() async throws {
        let server = try await TestServer.start { $0.queueLimit = 3 }
        let answers = try await withThrowingTaskGroup(of: (Int, TestServer.Answer).self) { group in
            for i in 0 ..< 20 {
                group.addTask {
                    (i, try await server.post("/sdapi/v1/txt2img", ["prompt": "cube \(i)", "width": 64, "height": 64, "steps": 6,
                                                                    "seed": 1000 + i] as [String: Any]))
                }
            }
            var all: [(Int, TestServer.Answer)] = []
            for try await a in group { all.append(a) }
            return all
        }
        XCTAssertEqual(answers.count, 20)
        var generated = 0
        for (i, answer) in answers {
            XCTAssertTrue([200, 429].contains(answer.status), "\(answer.status): \(answer.detail)")
            if answer.status == 200 {
                generated += 1
                let info = try JSONSerialization.jsonObject(with: Data((try answer.object()["info"] as? String ?? "").utf8)) as? [String: Any]
                XCTAssertEqual(info?["seed"] as? Int, 1000 + i)
                XCTAssertEqual(info?["prompt"] as? String, "cube \(i)")
            } else {
                XCTAssertTrue(answer.detail.contains("queue is full"), answer.detail)
            }
        }
        XCTAssertGreaterThanOrEqual(generated, 4)
        let value7 = try await server.get("/sdapi/v1/progress").object().state["anysize_queued"] as? Int
        XCTAssertEqual(value7, 0)
        await server.stop()
    }

    /// With no room to wait, a request made while one runs answers 429 at once.
    func testQueueLimitZeroRefusesWhileBusy() async throws {
        let server = try await TestServer.start { $0.queueLimit = 0 }
        let run = Task { try await server.post("/sdapi/v1/txt2img", ["prompt": "x", "width": 64, "height": 64, "steps": 500] as [String: Any]) }
        _ = try await server.waitForProgress { ($0.state["sampling_step"] as? Int ?? 0) >= 1 }
        let refused = try await server.post("/sdapi/v1/txt2img", ["prompt": "y", "width": 64, "height": 64, "steps": 1] as [String: Any])
        XCTAssertEqual(refused.status, 429)
        XCTAssertEqual(refused.header("Retry-After"), "5")
        _ = try await server.request("POST", "/sdapi/v1/interrupt")
        let value8 = try await run.value.status
        XCTAssertEqual(value8, 200)
        await server.stop()
    }
}
