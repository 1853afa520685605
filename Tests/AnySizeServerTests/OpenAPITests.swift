import AnySize
import AnySizeServer
import Foundation
import XCTest

/// `GET /openapi.json`: well-formed OpenAPI 3.0 listing every route; each documented request field is read by the
/// decoder (a value of the wrong type answers 422 naming it) and checked against the documented range and enum.
/// (The other direction, every decoded field documented, holds by construction: the document is built from the
/// decoder's keys through an exhaustive switch.)
final class OpenAPITests: XCTestCase {
    /// The routes the server answers, by (method, OpenAPI path).
    static let routes: Set<String> = [
        "get /internal/ping", "post /sdapi/v1/txt2img", "post /sdapi/v1/img2img", "get /sdapi/v1/progress",
        "post /sdapi/v1/interrupt", "post /sdapi/v1/skip", "get /anysize/v1/jobs/{id}", "get /sdapi/v1/sd-models",
        "get /sdapi/v1/samplers", "get /sdapi/v1/schedulers", "get /sdapi/v1/options", "post /sdapi/v1/options",
        "get /sdapi/v1/scripts", "get /openapi.json", "get /", "get /anysize.css", "get /anysize.js",
    ]

    func testDocumentListsEveryRouteAndItsReferencesResolve() async throws {
        let server = try await TestServer.start { $0.credentials = [("u", "p")] }
        server.credentials = "u:p"
        let answer = try await server.get("/openapi.json")
        XCTAssertEqual(answer.status, 200)
        XCTAssertEqual(answer.header("Content-Type"), "application/json")
        let document = try answer.object()
        XCTAssertEqual(document["openapi"] as? String, "3.0.3")
        XCTAssertEqual((document["info"] as? [String: Any])?["version"] as? String, AnySizeVersion.string)
        let paths = try XCTUnwrap(document["paths"] as? [String: [String: Any]])
        var listed = Set<String>()
        for (path, operations) in paths { for method in operations.keys { listed.insert("\(method) \(path)") } }
        XCTAssertEqual(listed, Self.routes)
        XCTAssertNotNil((document["components"] as? [String: Any])?["securitySchemes"], "with --api-auth the document says basic")

        // Every route the document lists answers (not 404): GETs as they are, POSTs with a body that is not JSON.
        for route in listed.sorted() {
            let parts = route.split(separator: " ", maxSplits: 1).map(String.init)
            let path = parts[1].replacingOccurrences(of: "{id}", with: "no-such-job")
            let reply = parts[0] == "get" ? try await server.get(path) : try await server.request("POST", path, body: Data("{".utf8))
            if path.contains("no-such-job") {
                XCTAssertEqual(reply.status, 404, route)
                XCTAssertTrue(reply.detail.contains("not found"), reply.detail)
            } else if ["post /sdapi/v1/interrupt", "post /sdapi/v1/skip"].contains(route) {
                XCTAssertEqual(reply.status, 200, route)
            } else if parts[0] == "post" {
                XCTAssertEqual(reply.status, 422, route)
            } else {
                XCTAssertEqual(reply.status, 200, route)
            }
        }
        await server.stop()

        // Every $ref points at a schema of the document.
        let schemas = try XCTUnwrap((document["components"] as? [String: Any])?["schemas"] as? [String: Any])
        var references: [String] = []
        func collect(_ value: Any) {
            if let object = value as? [String: Any] {
                if let ref = object["$ref"] as? String { references.append(ref) }
                object.values.forEach(collect)
            } else if let list = value as? [Any] {
                list.forEach(collect)
            }
        }
        collect(document)
        XCTAssertFalse(references.isEmpty)
        for ref in references {
            XCTAssertTrue(ref.hasPrefix("#/components/schemas/") && schemas[String(ref.dropFirst(21))] != nil, ref)
        }
    }

    func testEnumsAndDefaultsAreTheLibrarysAndTheListRoutes() async throws {
        let server = try await TestServer.start()
        let document = try await server.get("/openapi.json").object()
        let samplers = try JSONSerialization.jsonObject(with: try await server.get("/sdapi/v1/samplers").body) as? [[String: Any]] ?? []
        let schedulers = try JSONSerialization.jsonObject(with: try await server.get("/sdapi/v1/schedulers").body) as? [[String: Any]] ?? []
        await server.stop()
        let txt2img = try Self.properties(document, "Txt2ImgRequest")
        func choices(_ field: String) -> [String] { (txt2img[field]?["enum"] as? [Any])?.compactMap { $0 as? String } ?? [] }
        XCTAssertEqual(choices("anysize_attention"), AttentionMode.allCases.map(\.rawValue))
        XCTAssertEqual(choices("anysize_compose"), CompositionMode.allCases.map(\.rawValue))
        XCTAssertEqual(choices("anysize_prompt_syntax"), PromptSyntax.allCases.map(\.rawValue))
        XCTAssertEqual(choices("scheduler"), schedulers.compactMap { $0["label"] as? String })
        let samplerNames = Set(choices("sampler_name"))
        for sampler in samplers {
            for name in [sampler["name"] as Any] + (sampler["aliases"] as? [Any] ?? []) {
                XCTAssertTrue(samplerNames.contains(name as? String ?? ""), "\(String(describing: name)) missing from sampler_name's enum")
            }
        }
        let defaults = GenerationOptions(prompt: "", width: 8, height: 8, seed: 0)
        XCTAssertEqual(txt2img["steps"]?["default"] as? Int, defaults.steps)
        XCTAssertEqual(txt2img["cfg_scale"]?["default"] as? Double, defaults.cfgScale)
        XCTAssertEqual(txt2img["anysize_attention"]?["default"] as? String, defaults.attention.rawValue)
        XCTAssertEqual(txt2img["anysize_compose"]?["default"] as? String, "auto", "as anysize generate")
        XCTAssertEqual(txt2img["anysize_hires_strength"]?["default"] as? Double, CompositionOptions().hiresStrength)
        XCTAssertEqual(txt2img["sampler_name"]?["default"] as? String, samplers.first?["name"] as? String)
        for field in ["anysize_attention", "anysize_compose", "anysize_prompt_syntax", "anysize_local_edge", "anysize_hires_strength",
                      "anysize_redilate_until", "anysize_deep_shrink_end"] {
            XCTAssertNotNil(txt2img[field], field)
        }
        XCTAssertNil(txt2img["init_images"], "img2img's fields are not txt2img's")
        let img2img = try Self.properties(document, "Img2ImgRequest")
        XCTAssertEqual(Set(img2img.keys).subtracting(txt2img.keys),
                       ["init_images", "denoising_strength", "resize_mode", "include_init_images", "mask"])
    }

    /// Each documented field, sent with a value of the wrong type, out of its range, or outside its enum, answers
    /// 422 naming that field; values at the composition fields' bounds are accepted.
    func testEveryDocumentedFieldIsReadAndChecked() async throws {
        let server = try await TestServer.start()
        let document = try await server.get("/openapi.json").object()
        // img2img checks init_images first: its requests carry a valid one unless that is the field under test.
        let initImage = Data(try PNGWriter.encode(RGBImage(width: 8, height: 8))).base64EncodedString()
        for (route, schema) in [("/sdapi/v1/txt2img", "Txt2ImgRequest"), ("/sdapi/v1/img2img", "Img2ImgRequest")] {
            for (field, property) in try Self.properties(document, schema).sorted(by: { $0.key < $1.key }) {
                let wrong: Any = property["type"] as? String == "string" ? 12345 : "x"
                var bad: [(Any, String)] = [(wrong, "type")]
                if let minimum = property["minimum"] as? Double {
                    bad.append((property["exclusiveMinimum"] as? Bool == true ? minimum : minimum - 1, "minimum"))
                    if let step = property["multipleOf"] as? Int { bad.append((minimum + 1 + Double(step) / 2, "multipleOf")) }
                }
                if let maximum = property["maximum"] as? Double { bad.append((maximum + 1, "maximum")) }
                if let choices = property["enum"] as? [Any] { bad.append((choices.first is String ? "no-such-choice" : 99, "enum")) }
                for (value, what) in bad {
                    var body: [String: Any] = route.hasSuffix("img2img") ? ["init_images": [initImage]] : [:]
                    body[field] = value
                    let reply = try await server.post(route, body)
                    XCTAssertEqual(reply.status, 422, "\(route) \(field) \(what) \(value)")
                    XCTAssertTrue(reply.detail.hasPrefix(field + ":"), "\(route) \(field) \(what): \(reply.detail)")
                }
            }
        }
        for bounds in [(1e-6, 0.0, 0.0), (1.0, 1000.0, 1.0)] {
            let reply = try await server.post("/sdapi/v1/txt2img", [
                "prompt": "x", "width": 64, "height": 64, "steps": 1, "anysize_compose": "none", "anysize_hires_strength": bounds.0,
                "anysize_redilate_until": bounds.1, "anysize_deep_shrink_end": bounds.2, "seed": -1,
            ] as [String: Any])
            XCTAssertEqual(reply.status, 200, reply.detail)
        }
        await server.stop()
    }

    /// The answers of the JSON routes carry only documented keys.
    func testAnswersCarryTheDocumentedKeys() async throws {
        let server = try await TestServer.start()
        let document = try await server.get("/openapi.json").object()
        let generation = try await server.post("/sdapi/v1/txt2img", ["prompt": "x", "width": 64, "height": 64, "steps": 1,
                                                                      "force_task_id": "openapi-keys"] as [String: Any]).object()
        let info = try XCTUnwrap(JSONSerialization.jsonObject(with: Data((generation["info"] as? String ?? "").utf8)) as? [String: Any])
        var answers: [(String, Any)] = [("GenerationResponse", generation), ("GenerationInfo", info)]
        let progress = try await server.get("/sdapi/v1/progress").object()
        answers += [("ProgressResponse", progress), ("ProgressState", progress.state)]
        answers.append(("Options", try await server.get("/sdapi/v1/options").object()))
        answers.append(("Job", try await server.get("/anysize/v1/jobs/openapi-keys").object()))
        for (path, schema) in [("/sdapi/v1/sd-models", "SDModel"), ("/sdapi/v1/samplers", "Sampler"), ("/sdapi/v1/schedulers", "Scheduler")] {
            let list = try JSONSerialization.jsonObject(with: try await server.get(path).body) as? [Any] ?? []
            XCTAssertFalse(list.isEmpty, path)
            answers += list.map { (schema, $0) }
        }
        await server.stop()
        for (schema, answer) in answers {
            let documented = Set(try Self.properties(document, schema).keys)
            let keys = Set((answer as? [String: Any] ?? [:]).keys)
            XCTAssertFalse(keys.isEmpty, schema)
            XCTAssertTrue(keys.isSubset(of: documented), "\(schema): undocumented \(keys.subtracting(documented).sorted())")
            if schema != "Job" && schema != "Options" {
                XCTAssertEqual(keys, documented, "\(schema): documented but not sent \(documented.subtracting(keys).sorted())")
            }
        }
    }

    static func properties(_ document: [String: Any], _ schema: String) throws -> [String: [String: Any]] {
        let schemas = (document["components"] as? [String: Any])?["schemas"] as? [String: Any]
        let object = try XCTUnwrap(schemas?[schema] as? [String: Any], "schema \(schema) missing")
        return try XCTUnwrap(object["properties"] as? [String: [String: Any]], "schema \(schema) has no properties")
    }
}
