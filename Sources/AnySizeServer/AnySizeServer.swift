import AnySize
import Foundation
import Hummingbird
import Logging

/// `anysize serve`: the AUTOMATIC1111 web API (`/sdapi/v1/...`) over the AnySize library, so A1111 clients
/// (webuiapi, Krita and Photoshop plug-ins, bots) can use AnySize as their back end.
///
/// One generation runs at a time on a dedicated thread; requests wait in a FIFO queue (see `GenerationWorker`).
public final class AnySizeServer: @unchecked Sendable {
    let configuration: ServerConfiguration
    let catalog: ModelCatalog
    let worker: GenerationWorker
    let store: JobStore
    let hashes: ModelHashes
    let settings = ServerSettings()
    let preview: (any PixelwiseLatentDecoder)?

    /// Checks the configuration and loads the `--model` (so a bad one fails before the server listens).
    public init(configuration: ServerConfiguration) throws {
        try configuration.validate()
        self.configuration = configuration
        catalog = ModelCatalog(modelPath: configuration.modelPath, modelsDirectory: configuration.modelsDirectory)
        store = try JobStore(directory: configuration.stateDirectory)
        hashes = ModelHashes(store: store)
        worker = try GenerationWorker(model: catalog.entries[0], queueLimit: configuration.queueLimit,
                                      outputDirectory: URL(fileURLWithPath: configuration.stateDirectory).appendingPathComponent("outputs").path,
                                      store: store, hashes: hashes, precision: configuration.precision)
        hashes.start(catalog.entries)
        preview = try? ApproximateDecoder.bundledSD15()
        try store.expire(olderThan: configuration.resultLifetime)
        // Jobs accepted before a stop run again, in their order, ahead of new requests.
        for record in try store.unfinished() {
            do {
                let job = try GenerationJob(A1111Request.decode(record.body), kind: record.kind, catalog: catalog, defaultClipSkip: 1)
                worker.recover(job, jobID: record.id)
            } catch let error as APIError {
                try store.finish(record.id, result: nil, error: error.detail, status: error.status)
            }
        }
    }

    /// Serves until the task is cancelled (or, with `handleSignals`, until SIGINT/SIGTERM). `onRunning` receives
    /// the port once the server listens.
    public func run(handleSignals: Bool = false, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        worker.start()
        defer { worker.shutdown() }
        let worker = self.worker
        var logger = Logger(label: "anysize-serve")
        logger.logLevel = .warning
        let app = Application(
            router: makeRouter(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "anysize"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
        // A stop answers the waiting requests 503 at once (their jobs stay in the store) instead of waiting for them.
        try await withTaskCancellationHandler {
            try await app.runService(gracefulShutdownSignals: handleSignals ? [.sigterm, .sigint] : [])
        } onCancel: {
            worker.shutdown()
        }
    }

    /// `run` for a synchronous caller (the CLI): blocks until SIGINT/SIGTERM.
    public func runUntilTerminated(onRunning: @escaping @Sendable (Int) -> Void = { _ in }) throws {
        let finished = DispatchSemaphore(value: 0)
        let failure = FailureBox()
        let task = Task {
            do {
                try await run { onRunning($0) }
            } catch {
                failure.set(error)
            }
            finished.signal()
        }
        var sources: [any DispatchSourceSignal] = []
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { task.cancel() }
            source.resume()
            sources.append(source)
        }
        finished.wait()
        sources.forEach { $0.cancel() }
        if let error = failure.get() { throw error }
    }

    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: A1111ErrorMiddleware())
        if !configuration.credentials.isEmpty { router.add(middleware: BasicAuthMiddleware(credentials: configuration.credentials)) }
        for route in routes { router.on(RouterPath(route.path), method: route.method, use: route.handler) }
        return router
    }

    /// Every route, as registered and as `GET /openapi.json` lists it.
    var routes: [Route] {
        func json(_ body: @escaping @Sendable (Request, BasicRequestContext) async throws -> JSONBody)
            -> @Sendable (Request, BasicRequestContext) async throws -> Response {
            { request, context in try await body(request, context).response(from: request, context: context) }
        }
        let ref = OpenAPIDocument.ref
        var routes = [
            Route(method: .get, path: "/internal/ping", summary: "Liveness: {}", handler: json { _, _ in JSONBody([String: String]()) }),
            Route(method: .post, path: "/sdapi/v1/txt2img", summary: "Text to image (A1111); waits for the images",
                  requestSchema: "Txt2ImgRequest", response: ref("GenerationResponse"),
                  handler: json { request, _ in try await self.generate(request, kind: .txt2img) }),
            Route(method: .post, path: "/sdapi/v1/img2img", summary: "Image to image (A1111); waits for the images",
                  requestSchema: "Img2ImgRequest", response: ref("GenerationResponse"),
                  handler: json { request, _ in try await self.generate(request, kind: .img2img) }),
            Route(method: .get, path: "/sdapi/v1/progress", summary: "Progress of the running request, with a live preview",
                  response: ref("ProgressResponse"),
                  query: [("skip_current_image", "boolean", "true: no preview image")],
                  handler: json { request, _ in
                      let skipImage = request.uri.queryParameters["skip_current_image"].map { $0 == "true" || $0 == "1" } ?? false
                      return JSONBody(A1111Responses.progress(self.worker.progress, preview: self.preview, includeImage: !skipImage))
                  }),
            Route(method: .post, path: "/sdapi/v1/interrupt", summary: "Stop the running request at its next step; it answers with what it has",
                  handler: json { _, _ in
                      self.worker.interrupt()
                      return JSONBody([String: String]())
                  }),
            Route(method: .post, path: "/sdapi/v1/skip", summary: "Stop the running batch; the request's next n_iter batch runs",
                  handler: json { _, _ in
                      self.worker.skip()
                      return JSONBody([String: String]())
                  }),
            Route(method: .get, path: "/anysize/v1/jobs/:id", summary: "A stored job: its state, place in the queue, and answer once done",
                  response: ref("Job"), handler: json { _, context in try self.jobStatus(context.parameters.require("id")) }),
            Route(method: .get, path: "/sdapi/v1/sd-models", summary: "The models --model and --models-dir offer",
                  response: ["type": "array", "items": ref("SDModel")],
                  handler: json { _, _ in JSONBody(self.catalog.entries.map(self.hashes.json)) }),
            Route(method: .get, path: "/sdapi/v1/samplers", summary: "Samplers (A1111 names and aliases)",
                  response: ["type": "array", "items": ref("Sampler")], handler: json { _, _ in JSONBody(A1111Responses.samplers) }),
            Route(method: .get, path: "/sdapi/v1/schedulers", summary: "Schedulers", response: ["type": "array", "items": ref("Scheduler")],
                  handler: json { _, _ in JSONBody(A1111Responses.schedulers) }),
            Route(method: .get, path: "/sdapi/v1/options", summary: "Settings: the loaded model, clip skip, ...", response: ref("Options"),
                  handler: json { _, _ in JSONBody(self.options()) }),
            Route(method: .post, path: "/sdapi/v1/options", summary: "Switch the model (sd_model_checkpoint) or the default clip skip",
                  requestSchema: "OptionsUpdate", response: ["nullable": true, "description": "null"],
                  handler: json { request, _ in try await self.setOptions(request) }),
            // A1111 lists its scripts here; clients (webuiapi) look for extensions. AnySize runs none.
            Route(method: .get, path: "/sdapi/v1/scripts", summary: "Scripts (none)", response: ref("Scripts"),
                  handler: json { _, _ in JSONBody(["txt2img": [String](), "img2img": [String]()]) }),
            Route(method: .get, path: "/openapi.json", summary: "This document (OpenAPI \(OpenAPIDocument.version))",
                  response: ["type": "object", "description": "OpenAPI document"],
                  handler: json { _, _ in JSONBody(OpenAPIDocument.document(routes: self.routes, authenticated: !self.configuration.credentials.isEmpty)) }),
        ]
        for (path, file, type, summary) in [("/", "index.html", "text/html; charset=utf-8", "The web page"),
                                            ("/anysize.css", "anysize.css", "text/css", "The web page's style"),
                                            ("/anysize.js", "anysize.js", "text/javascript", "The web page's script")] {
            routes.append(Route(method: .get, path: path, summary: summary, response: ["type": "string"],
                                responseType: String(type.prefix { $0 != ";" }), handler: { _, _ in try Self.webFile(file, type: type) }))
        }
        return routes
    }

    private func generate(_ request: Request, kind: GenerationJob.Kind) async throws -> JSONBody {
        let body = try await readBody(request)
        let parsed = try A1111Request.decode(body)
        let job = try GenerationJob(parsed, kind: kind, catalog: catalog, defaultClipSkip: settings.clipSkip)
        let id = parsed.forceTaskID ?? UUID().uuidString.lowercased()
        guard !id.isEmpty, id.count <= 200 else { throw APIError.invalid("force_task_id", "use 1 to 200 characters") }
        if try store.record(id) != nil { throw APIError.invalid("force_task_id", "'\(id)' is taken; use a new id") }
        let outcome = try await worker.perform(.generate(job), jobID: id, body: try Self.storedBody(body, job: job))
        guard case .generated(let output) = outcome else {
            throw APIError(500, "the generation thread answered a txt2img request without images")
        }
        return JSONBody(A1111Responses.generation(job, output, jobID: id))
    }

    /// The body kept in the store: the request as sent, with the seed and clip skip it runs with, so a rerun
    /// after a restart makes the same images.
    static func storedBody(_ body: Data, job: GenerationJob) throws -> Data {
        guard var object = try JSONSerialization.jsonObject(with: body) as? [String: Any] else { return body }
        object["seed"] = Int64(bitPattern: job.options.seed)
        var overrides = object["override_settings"] as? [String: Any] ?? [:]
        overrides["CLIP_stop_at_last_layers"] = job.options.clipSkip
        object["override_settings"] = overrides
        return try JSONSerialization.data(withJSONObject: object)
    }

    /// `GET /anysize/v1/jobs/{id}`: a job's state (queued with its place, running, done, failed) and, once done,
    /// its A1111 answer.
    private func jobStatus(_ id: String) throws -> JSONBody {
        guard let record = try store.record(id) else { throw APIError(404, "job '\(id)' not found (finished jobs expire after \(Int(configuration.resultLifetime)) s)") }
        var answer: [String: Any] = ["id": record.id, "state": record.state.rawValue, "kind": record.kind.rawValue,
                                     "created": record.created.timeIntervalSince1970]
        if let position = worker.position(of: id) { answer["position"] = position }
        if let data = record.result { answer["result"] = try JSONSerialization.jsonObject(with: data) }
        if let error = record.error { answer["error"] = error }
        if let status = record.status { answer["status"] = status }
        return JSONBody(answer)
    }

    /// A file of the web page (Sources/AnySizeServer/Web, bundled as a resource).
    static func webFile(_ name: String, type: String) throws -> Response {
        guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Web"),
              let data = FileManager.default.contents(atPath: url.path) else {
            throw APIError(500, "the web page's \(name) is missing from the AnySizeServer resources")
        }
        return Response(status: .ok, headers: [.contentType: type, .cacheControl: "no-cache"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    private func options() -> [String: Any] {
        [
            "sd_model_checkpoint": hashes.title(worker.currentModel), "sd_checkpoint_hash": hashes.sha256(worker.currentModel) ?? NSNull(),
            "CLIP_stop_at_last_layers": settings.clipSkip, "samples_format": "png",
            "outdir_samples": URL(fileURLWithPath: configuration.stateDirectory).appendingPathComponent("outputs").path,
            "live_previews_enable": true, "show_progress_every_n_steps": 1,
        ]
    }

    /// A1111's POST /options: `sd_model_checkpoint` loads that model (in the queue, after the jobs before it),
    /// `CLIP_stop_at_last_layers` sets the default clip skip; other settings are accepted and ignored.
    private func setOptions(_ request: Request) async throws -> JSONBody {
        let body = try await readBody(request)
        let values: [String: JSONValue]
        do {
            values = try JSONDecoder().decode([String: JSONValue].self, from: body)
        } catch {
            throw APIError.decoding(error)
        }
        var model: ModelEntry?
        var clipSkip: Int?
        if let value = values["sd_model_checkpoint"] {
            guard case .string(let name) = value else { throw APIError.invalid("sd_model_checkpoint", "expected a model title") }
            guard let entry = catalog.entry(named: name) else {
                throw APIError.invalid("sd_model_checkpoint", "model '\(name)' not found; GET /sdapi/v1/sd-models lists the models")
            }
            model = entry
        }
        if let value = values["CLIP_stop_at_last_layers"] {
            guard case .number(let n) = value, n == n.rounded(), (1 ... 12).contains(n) else {
                throw APIError.invalid("CLIP_stop_at_last_layers", "use a whole number from 1 (last layer) to 12")
            }
            clipSkip = Int(n)
        }
        if let model { _ = try await worker.perform(.loadModel(model)) }
        if let clipSkip { settings.clipSkip = clipSkip }
        return JSONBody(NSNull())
    }

    /// The request body, at most `bodyLimit` bytes (413 beyond).
    private func readBody(_ request: Request) async throws -> Data {
        let limit = configuration.bodyLimit
        let tooLarge = APIError(413, "request body larger than \(limit >> 20) MB; raise --body-limit or send a smaller init image")
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit { throw tooLarge }
        do {
            let buffer = try await request.body.collect(upTo: limit)
            return Data(buffer.readableBytesView)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw tooLarge
        }
    }
}

/// Settings `POST /sdapi/v1/options` changes.
final class ServerSettings: @unchecked Sendable {
    private let lock = NSLock()
    private var _clipSkip = 1

    var clipSkip: Int {
        get { lock.withLock { _clipSkip } }
        set { lock.withLock { _clipSkip = newValue } }
    }
}

private final class FailureBox: @unchecked Sendable {
    private let lock = NSLock()
    private var error: (any Error)?
    func set(_ e: any Error) { lock.withLock { error = e } }
    func get() -> (any Error)? { lock.withLock { error } }
}
