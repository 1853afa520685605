import AnySize
import Foundation

/// What one finished txt2img/img2img job produced.
struct GenerationOutput: @unchecked Sendable {
    /// PNG files with the A1111 `parameters` text, one per image.
    var pngs: [[UInt8]]
    var seeds: [UInt64]
    var infotexts: [String]
    /// The options of the first iteration with the canvas resolved.
    var options: GenerationOptions
    var modelName: String
    /// A1111's short model hash (nil: a folder, or not hashed yet).
    var modelHash: String?
    /// What ran, e.g. "auto -> scaled".
    var attention: String
    var interrupted: Bool
    var jobTimestamp: String
}

/// The state `/sdapi/v1/progress` reports.
struct ProgressSnapshot {
    var busy = false
    /// The stored job running now.
    var jobID: String?
    /// Iteration (`n_iter` batch) running now, 0-based, and their count.
    var jobNumber = 0
    var jobCount = 0
    var step = 0
    var steps = 0
    var started = Date()
    var jobName = ""
    var jobTimestamp = ""
    var interrupted = false
    var skipped = false
    /// Requests waiting behind the running one.
    var waiting = 0
    /// A copy of the latest latents (sampler space), for the live preview.
    var latents: Tensor?
}

/// Runs every generation and model load, one at a time in FIFO order, on one dedicated thread (each uses every
/// core; none runs on the HTTP event loops). Requests wait in the queue; more than `queueLimit` waiting answer 429.
final class GenerationWorker: @unchecked Sendable {
    enum Work {
        case generate(GenerationJob)
        case loadModel(ModelEntry)
    }

    enum Outcome {
        case generated(GenerationOutput)
        case loaded
    }

    private struct Queued {
        let work: Work
        /// The job's id in the store (txt2img/img2img; model loads are not stored).
        let jobID: String?
        let finish: (Result<Outcome, any Error>) -> Void
    }

    private let condition = NSCondition()
    private var waiting: [Queued] = []
    private var state = ProgressSnapshot()
    private var shuttingDown = false
    private var thread: Thread?
    private let queueLimit: Int
    private let outputDirectory: String
    private let store: JobStore
    private let hashes: ModelHashes
    // Touched only on the worker thread after `init`.
    private var pipeline: StableDiffusionPipeline
    /// The UNet's number format for every model loaded (`ServerConfiguration.precision`).
    private let precision: Precision
    private var footprints: [String: ModelFootprint] = [:]
    /// The model loaded now (read from any thread under `condition`).
    private var loadedModel: ModelEntry

    /// Loads `model` (on the caller's thread, so a bad `--model` fails before the server listens).
    init(model: ModelEntry, queueLimit: Int, outputDirectory: String, store: JobStore, hashes: ModelHashes,
         precision: Precision = .fp32) throws {
        self.store = store
        self.hashes = hashes
        self.precision = precision
        pipeline = try StableDiffusionPipeline(checkpoint: StableDiffusionCheckpoint.load(path: model.path),
                                               precision: precision)
        loadedModel = model
        self.queueLimit = queueLimit
        self.outputDirectory = outputDirectory
    }

    /// Starts the generation thread.
    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "anysize-generation"
        thread.stackSize = 16 << 20
        self.thread = thread
        thread.start()
    }

    /// Stops the thread after the running job; waiting jobs fail with 503.
    func shutdown() {
        condition.lock()
        shuttingDown = true
        state.interrupted = true
        condition.broadcast()
        condition.unlock()
    }

    var currentModel: ModelEntry {
        condition.lock()
        defer { condition.unlock() }
        return loadedModel
    }

    var progress: ProgressSnapshot {
        condition.lock()
        defer { condition.unlock() }
        var s = state
        s.waiting = waiting.count
        return s
    }

    /// A1111's interrupt: the running request stops at its next sampler step and returns what it has.
    func interrupt() {
        condition.lock()
        if state.busy { state.interrupted = true }
        condition.unlock()
    }

    /// A1111's skip: the running batch stops at its next sampler step; the request's next batch (`n_iter`) runs.
    func skip() {
        condition.lock()
        if state.busy { state.skipped = true }
        condition.unlock()
    }

    /// Queues `work` and waits for it; throws 429 when `queueLimit` requests already wait. A generation with a
    /// `jobID` is recorded in the store (with its `body`) once accepted, and its answer when it finishes.
    func perform(_ work: Work, jobID: String? = nil, body: Data = Data()) async throws -> Outcome {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Outcome, any Error>) in
            condition.lock()
            defer { condition.unlock() }
            if shuttingDown {
                continuation.resume(throwing: APIError(503, "the server is shutting down"))
            } else if waiting.count >= queueLimit && (state.busy || !waiting.isEmpty) {
                continuation.resume(throwing: APIError(429, "the queue is full (\(waiting.count) requests waiting); retry later"))
            } else {
                if let jobID, case .generate(let job) = work {
                    do {
                        try store.insert(id: jobID, kind: job.kind, body: body)
                    } catch {
                        continuation.resume(throwing: APIError(500, "cannot record the job in the state folder: \(error)"))
                        return
                    }
                }
                waiting.append(Queued(work: work, jobID: jobID) { continuation.resume(with: $0) })
                condition.signal()
            }
        }
    }

    /// Queues a job recovered from the store after a restart (no queue limit; its answer goes to the store).
    func recover(_ job: GenerationJob, jobID: String) {
        condition.lock()
        waiting.append(Queued(work: .generate(job), jobID: jobID) { _ in })
        condition.signal()
        condition.unlock()
    }

    /// 1-based place in the queue of a waiting job, 0 when it runs, nil when not queued here.
    func position(of jobID: String) -> Int? {
        condition.lock()
        defer { condition.unlock() }
        if state.jobID == jobID { return 0 }
        return waiting.firstIndex { $0.jobID == jobID }.map { $0 + 1 }
    }

    private func run() {
        while true {
            condition.lock()
            while waiting.isEmpty && !shuttingDown { condition.wait() }
            if shuttingDown {
                let rest = waiting
                waiting = []
                condition.unlock()
                for job in rest { job.finish(.failure(APIError(503, "the server is shutting down"))) }
                return
            }
            let job = waiting.removeFirst()
            state = ProgressSnapshot()
            state.busy = true
            state.jobID = job.jobID
            state.jobTimestamp = Self.timestamp()
            condition.unlock()
            if let id = job.jobID { try? store.markRunning(id) }
            var answer: Data?
            var result = Result<Outcome, any Error> {
                switch job.work {
                case .generate(let g):
                    let output = try generate(g)
                    answer = try JSONSerialization.data(withJSONObject: A1111Responses.generation(g, output, jobID: job.jobID))
                    return .generated(output)
                case .loadModel(let entry):
                    try load(entry)
                    return .loaded
                }
            }
            condition.lock()
            state = ProgressSnapshot()
            let stopped = shuttingDown
            condition.unlock()
            if stopped {
                // Cut short by the shutdown: the store keeps it as running, and it runs again after the restart.
                result = .failure(APIError(503, "the server is shutting down; the job runs again when it restarts"))
            } else if let id = job.jobID {
                switch result {
                case .success: try? store.finish(id, result: answer, error: nil, status: 200)
                case .failure(let error as APIError): try? store.finish(id, result: nil, error: error.detail, status: error.status)
                case .failure(let error): try? store.finish(id, result: nil, error: "\(error)", status: 500)
                }
            }
            job.finish(result)
        }
    }

    private func load(_ entry: ModelEntry) throws {
        guard entry != currentModel else { return }
        condition.lock()
        state.jobName = "load \(entry.name)"
        condition.unlock()
        let checkpoint = try StableDiffusionCheckpoint.load(path: entry.path)
        pipeline = try StableDiffusionPipeline(checkpoint: checkpoint, precision: precision)
        condition.lock()
        loadedModel = entry
        condition.unlock()
    }

    private func footprint(_ entry: ModelEntry) throws -> ModelFootprint {
        if let f = footprints[entry.path] { return f }
        let f = try ModelFootprint.read(path: entry.path)
        footprints[entry.path] = f
        return f
    }

    private func generate(_ job: GenerationJob) throws -> GenerationOutput {
        if let entry = job.model { try load(entry) }
        let model = currentModel
        var options = job.options
        options.precision = precision
        if job.widthFromModel { options.width = pipeline.trainedSize.width }
        if job.heightFromModel { options.height = pipeline.trainedSize.height }
        if let refusal = MemoryEstimate.refusal(model: try footprint(model), options: options, img2img: job.kind == .img2img) {
            throw APIError(422, refusal.message)
        }
        if !job.initImages.isEmpty {
            options.initImage = Elementwise.concatBatch(job.initImages.map { image in
                let sized = image.width == options.width && image.height == options.height ? image
                    : ImageConversion.resize(image, width: options.width, height: options.height)
                return ImageConversion.tensor(from: sized)
            })
        }
        // Interrupt, skip and a server stop end sampling at the next model call.
        options.shouldStop = { [unowned self] in
            condition.lock()
            defer { condition.unlock() }
            return state.interrupted || state.skipped || shuttingDown
        }
        condition.lock()
        state.jobCount = job.iterations
        state.jobName = job.kind.rawValue
        let timestamp = state.jobTimestamp
        condition.unlock()

        let modelHash = hashes.shortHash(model)
        var output = GenerationOutput(pngs: [], seeds: [], infotexts: [], options: options, modelName: model.name, modelHash: modelHash,
                                      attention: options.attention.rawValue, interrupted: false, jobTimestamp: timestamp)
        let firstSeed = options.seed
        for n in 0 ..< job.iterations {
            condition.lock()
            let stop = state.interrupted
            state.skipped = false
            state.jobNumber = n
            state.step = 0
            state.steps = 0
            condition.unlock()
            if stop { break }
            // A1111: image i of the request (over every batch) has seed + i, drawn by its own generator.
            options.seed = firstSeed &+ UInt64(n * options.batchCount)
            let result = try pipeline.generate(options) { [self] event in
                switch event {
                case .step(let index, let total, _):
                    condition.lock()
                    state.step = index
                    state.steps = total
                    condition.unlock()
                case .latents(_, _, let latents):
                    let copy = latents.copy()
                    condition.lock()
                    state.latents = copy
                    condition.unlock()
                default: break
                }
            }
            condition.lock()
            let stopping = shuttingDown
            condition.unlock()
            if stopping {
                // A server stop: the job stays in the store and runs again after the restart; no decoding now.
                throw APIError(503, "the server is shutting down; the job runs again when it restarts")
            }
            let decoded = pipeline.decodeImages(result, tiling: options.vaeTiling)
            let attention = GenerationMetadata.attentionLabel(options.attention, result: result)
            output.attention = attention
            // A multi-pass (hires, cascade) run interrupted before its last pass returns that pass's image at its size, as A1111's
            // hires fix does; the infotext gives the size the image has.
            var imageOptions = options
            imageOptions.width = decoded.dim(3)
            imageOptions.height = decoded.dim(2)
            for b in 0 ..< decoded.dim(0) {
                let text = GenerationMetadata.parameters(options: imageOptions, modelName: model.name, attention: attention, index: b,
                                                         composition: result.composition, modelHash: modelHash)
                let png = try PNGWriter.encode(ImageConversion.image(fromDecoded: decoded, index: b), text: [("parameters", text)])
                output.pngs.append(png)
                output.seeds.append(options.seed(ofImage: b))
                output.infotexts.append(text)
                if job.saveImages { try save(png, kind: job.kind, seed: options.seed(ofImage: b), index: output.pngs.count) }
            }
        }
        condition.lock()
        output.interrupted = state.interrupted
        condition.unlock()
        return output
    }

    /// `save_images`: OUTPUT/txt2img-images/TIMESTAMP-SEED-N.png, as A1111 keeps its outputs.
    private func save(_ png: [UInt8], kind: GenerationJob.Kind, seed: UInt64, index: Int) throws {
        let dir = URL(fileURLWithPath: outputDirectory).appendingPathComponent("\(kind.rawValue)-images").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileIO.writeAtomically(png, to: dir + "/\(Self.timestamp())-\(seed)-\(index).png")
    }

    static func timestamp(_ date: Date = Date()) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyyMMddHHmmss"
        return f.string(from: date)
    }
}
