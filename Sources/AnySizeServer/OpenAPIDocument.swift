import AnySize
import Foundation
import Hummingbird

/// One route of the server: what `makeRouter` registers and what `GET /openapi.json` lists, from the same value.
struct Route {
    let method: HTTPRequest.Method
    /// Hummingbird's syntax (`/anysize/v1/jobs/:id`); the document writes `{id}`.
    let path: String
    let summary: String
    /// Name of the request body's schema in `components.schemas` (POST routes with a body).
    var requestSchema: String? = nil
    /// The 200 answer: a schema object, and its media type.
    var response: [String: Any] = OpenAPIDocument.ref("Empty")
    var responseType = "application/json"
    /// Query parameters: (name, JSON type, description).
    var query: [(name: String, type: String, description: String)] = []
    let handler: @Sendable (Request, BasicRequestContext) async throws -> Response

    /// The path as OpenAPI writes it.
    var openAPIPath: String {
        path.split(separator: "/", omittingEmptySubsequences: false)
            .map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }.joined(separator: "/")
    }
}

/// The OpenAPI 3.0 document of the server (`GET /openapi.json`, as A1111's FastAPI serves), built from the route
/// table and the request field table (`A1111Request.Key.schema`), so every route and every accepted field is
/// listed with its type, default and allowed values.
enum OpenAPIDocument {
    static let version = "3.0.3"

    static func ref(_ name: String) -> [String: Any] { ["$ref": "#/components/schemas/\(name)"] }

    static func document(routes: [Route], authenticated: Bool) -> [String: Any] {
        var paths: [String: [String: Any]] = [:]
        for route in routes {
            var operation: [String: Any] = [
                "summary": route.summary,
                "operationId": route.method.rawValue.lowercased() + route.openAPIPath.map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined(),
                "responses": responses(route),
            ]
            var parameters: [[String: Any]] = route.query.map {
                ["name": $0.name, "in": "query", "required": false, "description": $0.description, "schema": ["type": $0.type]]
            }
            for part in route.path.split(separator: "/") where part.hasPrefix(":") {
                parameters.append(["name": String(part.dropFirst()), "in": "path", "required": true, "schema": ["type": "string"]])
            }
            if !parameters.isEmpty { operation["parameters"] = parameters }
            if let schema = route.requestSchema {
                operation["requestBody"] = ["required": true, "content": ["application/json": ["schema": ref(schema)]]]
            }
            paths[route.openAPIPath, default: [:]][route.method.rawValue.lowercased()] = operation
        }
        var components: [String: Any] = ["schemas": schemas]
        var document: [String: Any] = [
            "openapi": version,
            "info": [
                "title": "AnySize",
                "version": AnySizeVersion.string,
                "description": "The AUTOMATIC1111 web API (/sdapi/v1) served by anysize serve, with AnySize's own fields "
                    + "(anysize_*) and job store (/anysize/v1). Errors answer {\"detail\": \"field: problem\"} as A1111's FastAPI.",
            ],
            "paths": paths,
        ]
        if authenticated {
            components["securitySchemes"] = ["basic": ["type": "http", "scheme": "basic"]]
            document["security"] = [["basic": [String]()]]
        }
        document["components"] = components
        return document
    }

    private static func responses(_ route: Route) -> [String: Any] {
        let error = ["description": "{\"detail\": ...}", "content": ["application/json": ["schema": ref("HTTPError")]]] as [String: Any]
        var answers: [String: Any] = ["200": ["description": "OK", "content": [route.responseType: ["schema": route.response]]]]
        if route.requestSchema != nil {
            answers["422"] = ["description": "A field is invalid (the detail names it), or the body is not JSON", "content": error["content"] as Any]
            answers["413"] = ["description": "Body larger than --body-limit", "content": error["content"] as Any]
        }
        if route.requestSchema == "Txt2ImgRequest" || route.requestSchema == "Img2ImgRequest" {
            answers["429"] = ["description": "Queue full (--queue-limit); Retry-After says when to retry", "content": error["content"] as Any]
            answers["503"] = ["description": "The server is stopping; the job runs again after the restart", "content": error["content"] as Any]
            answers["500"] = ["description": "The generation failed", "content": error["content"] as Any]
        }
        if route.path.contains(":") { answers["404"] = ["description": "Not found (or expired)", "content": error["content"] as Any] }
        answers["401"] = ["description": "Missing or wrong credentials (with --api-auth)", "content": error["content"] as Any]
        return answers
    }

    /// The request schema of txt2img (`img2img: false`) or img2img: every decoder key, from its field schema.
    static func requestSchema(img2img: Bool) -> [String: Any] {
        var properties: [String: Any] = [:]
        for key in A1111Request.Key.allCases where img2img || !key.schema.img2imgOnly {
            properties[key.stringValue] = key.schema.openAPI
        }
        var schema: [String: Any] = [
            "type": "object", "properties": properties, "additionalProperties": true,
            "description": "Every field is optional unless required; null takes the default. Other A1111 fields "
                + "(eta, s_churn, ...) are accepted and ignored.",
        ]
        if img2img { schema["required"] = ["init_images"] }
        return schema
    }

    private static func object(_ properties: [String: Any], description: String? = nil, additional: Bool = false) -> [String: Any] {
        var s: [String: Any] = ["type": "object", "properties": properties, "additionalProperties": additional]
        if let description { s["description"] = description }
        return s
    }

    private static func type(_ name: String, _ description: String? = nil, nullable: Bool = false) -> [String: Any] {
        var s: [String: Any] = ["type": name]
        if let description { s["description"] = description }
        if nullable { s["nullable"] = true }
        return s
    }

    private static func array(_ items: [String: Any], _ description: String? = nil) -> [String: Any] {
        var s: [String: Any] = ["type": "array", "items": items]
        if let description { s["description"] = description }
        return s
    }

    /// The answers' schemas (A1111's pydantic models, as AnySize fills them).
    static var schemas: [String: Any] {
        let string = type("string"), integer = type("integer"), number = type("number"), boolean = type("boolean")
        return [
            "Txt2ImgRequest": requestSchema(img2img: false),
            "Img2ImgRequest": requestSchema(img2img: true),
            "Empty": object([:], description: "{}"),
            "HTTPError": object(["detail": type("string", "\"field: problem\" for a 422")]),
            "GenerationResponse": object([
                "images": array(string, "base64 PNGs with the A1111 `parameters` text chunk (empty with send_images false)"),
                "parameters": object([:], description: "the request as run (seed resolved, defaults filled)", additional: true),
                "info": type("string", "a JSON string: see GenerationInfo"),
            ]),
            "GenerationInfo": object([
                "prompt": string, "all_prompts": array(string), "negative_prompt": string, "all_negative_prompts": array(string),
                "seed": integer, "all_seeds": array(integer, "one per image: seed + i"), "subseed": integer,
                "all_subseeds": array(integer), "subseed_strength": number, "width": integer, "height": integer,
                "sampler_name": string, "scheduler": string, "cfg_scale": number, "steps": integer, "batch_size": integer,
                "restore_faces": boolean, "face_restoration_model": type("string", nullable: true), "sd_model_name": string,
                "sd_model_hash": type("string", "first 10 hex digits of the file's SHA-256; null for folders or until hashed", nullable: true),
                "sd_vae_name": type("string", nullable: true), "sd_vae_hash": type("string", nullable: true),
                "seed_resize_from_w": integer, "seed_resize_from_h": integer,
                "denoising_strength": type("number", nullable: true), "extra_generation_params": object([:], additional: true),
                "index_of_first_image": integer, "infotexts": array(string, "the PNG `parameters` text of each image"),
                "styles": array(string), "job_timestamp": string, "clip_skip": integer, "is_using_inpainting_conditioning": boolean,
                "version": string, "anysize_interrupted": type("boolean", "interrupted: the images are those reached so far"),
                "anysize_notes": array(string, "fields accepted but ignored"), "anysize_job_id": type("string", "GET /anysize/v1/jobs/{id}", nullable: true),
            ], description: "The decoded `info` of a GenerationResponse."),
            "ProgressResponse": object([
                "progress": type("number", "0 to 1 over the request's n_iter batches"), "eta_relative": type("number", "seconds"),
                "state": ref("ProgressState"),
                "current_image": type("string", "live preview (approximate latent decoder), base64 PNG", nullable: true),
                "textinfo": type("string", nullable: true),
            ]),
            "ProgressState": object([
                "skipped": boolean, "interrupted": boolean, "stopping_generation": boolean, "job": string, "job_count": integer,
                "job_timestamp": string, "job_no": integer, "sampling_step": integer, "sampling_steps": integer,
                "anysize_queued": type("integer", "requests waiting behind the running one"),
            ]),
            "SDModel": object([
                "title": type("string", "name, with \" [hash]\" once a single file's hash is known, as A1111"), "model_name": string,
                "hash": type("string", "first 10 hex digits of sha256; null for folders or until hashed", nullable: true),
                "sha256": type("string", nullable: true), "filename": string, "config": type("string", nullable: true),
            ]),
            "Sampler": object(["name": string, "aliases": array(string), "options": object([:], additional: true)]),
            "Scheduler": object(["name": string, "label": string, "aliases": type("array", nullable: true),
                                 "default_rho": number, "need_inner_model": boolean]),
            "Options": object([
                "sd_model_checkpoint": type("string", "the loaded model's title"),
                "sd_checkpoint_hash": type("string", "sha256 of the loaded single file; null for folders or until hashed", nullable: true),
                "CLIP_stop_at_last_layers": integer, "samples_format": string, "outdir_samples": string,
                "live_previews_enable": boolean, "show_progress_every_n_steps": integer,
            ], additional: true),
            "OptionsUpdate": object([
                "sd_model_checkpoint": type("string", "a title, model name or path from /sdapi/v1/sd-models (loads it, in queue order)"),
                "CLIP_stop_at_last_layers": ["type": "integer", "minimum": 1, "maximum": 12, "description": "default clip skip"],
            ], description: "Other A1111 settings are accepted and ignored.", additional: true),
            "Scripts": object(["txt2img": array(string), "img2img": array(string)]),
            "Job": object([
                "id": string, "state": ["type": "string", "enum": ["queued", "running", "done", "failed"]],
                "kind": ["type": "string", "enum": ["txt2img", "img2img"]], "created": type("number", "Unix time"),
                "position": type("integer", "1-based place in the queue; 0 while it runs"),
                "result": ref("GenerationResponse"), "error": string, "status": type("integer", "HTTP status of a failed job"),
            ]),
        ]
    }
}
