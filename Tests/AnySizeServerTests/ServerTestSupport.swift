import AnySize
import AnySizeServer
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest

/// An `AnySizeServer` on a free port of 127.0.0.1 in this process, with the tiny fixture model, and a plain
/// HTTP client (URLSession) for it.
final class TestServer: @unchecked Sendable {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("AnySizeTests/Fixtures")
    static var tinyModel: String { fixtures.appendingPathComponent("tiny-sd1").path }

    let port: Int
    let stateDirectory: String
    private let task: Task<Void, any Error>
    private let session: URLSession
    var credentials: String?

    static func start(_ configure: (inout ServerConfiguration) -> Void = { _ in }) async throws -> TestServer {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("anysize-serve-\(UUID().uuidString)").path
        var configuration = ServerConfiguration(modelPath: tinyModel)
        configuration.port = 0
        configuration.stateDirectory = state
        configure(&configuration)
        let server = try AnySizeServer(configuration: configuration)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let task = Task {
            defer { continuation.finish() }
            try await server.run { continuation.yield($0) }
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            _ = try await task.value
            throw AnySizeError(.io, "the test server stopped before listening")
        }
        return TestServer(port: port, stateDirectory: state, task: task)
    }

    private init(port: Int, stateDirectory: String, task: Task<Void, any Error>) {
        self.port = port
        self.stateDirectory = stateDirectory
        self.task = task
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = 64
        configuration.timeoutIntervalForRequest = 600
        session = URLSession(configuration: configuration)
    }

    func stop(keepState: Bool = false) async {
        task.cancel()
        _ = try? await task.value
        if !keepState { try? FileManager.default.removeItem(atPath: stateDirectory) }
    }

    /// Polls `/anysize/v1/jobs/{id}` until the job is done or failed (at most `seconds`).
    func waitForJob(_ id: String, seconds: Double = 300) async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(seconds)
        var last = ""
        while Date() < deadline {
            let answer = try await get("/anysize/v1/jobs/\(id)")
            if answer.status == 200, let job = try? answer.object(), ["done", "failed"].contains(job["state"] as? String ?? "") { return job }
            last = String(decoding: answer.body.prefix(300), as: UTF8.self)
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        let progress = (try? await get("/sdapi/v1/progress?skip_current_image=true")).map { String(decoding: $0.body, as: UTF8.self) } ?? ""
        throw AnySizeError(.io, "job \(id) did not finish in \(seconds) s: \(last); progress \(progress)")
    }

    struct Answer {
        let status: Int
        let body: Data
        let headers: [AnyHashable: Any]

        /// The body as a JSON object (fails the test otherwise).
        func object(file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
            let value = try JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed])
            return try XCTUnwrap(value as? [String: Any], "not a JSON object: \(String(decoding: body, as: UTF8.self))", file: file, line: line)
        }

        /// A header, by case-insensitive name.
        func header(_ name: String) -> String? {
            headers.first { ($0.key as? String)?.lowercased() == name.lowercased() }?.value as? String
        }

        /// `detail` of an error answer.
        var detail: String {
            ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any])?["detail"] as? String ?? ""
        }
    }

    func request(_ method: String, _ path: String, json: Any? = nil, body: Data? = nil,
                 authorization: String? = nil) async throws -> Answer {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        if let json {
            request.httpBody = try JSONSerialization.data(withJSONObject: json)
        } else {
            request.httpBody = body
        }
        if request.httpBody != nil { request.setValue("application/json", forHTTPHeaderField: "Content-Type") }
        if let value = authorization ?? credentials.map({ "Basic " + Data($0.utf8).base64EncodedString() }) {
            request.setValue(value, forHTTPHeaderField: "Authorization")
        }
        let (data, response) = try await session.data(for: request)
        let http = try XCTUnwrap(response as? HTTPURLResponse)
        return Answer(status: http.statusCode, body: data, headers: http.allHeaderFields)
    }

    func get(_ path: String) async throws -> Answer { try await request("GET", path) }
    func post(_ path: String, _ json: Any) async throws -> Answer { try await request("POST", path, json: json) }

    /// Polls `/sdapi/v1/progress` until `condition` holds (at most `seconds`).
    func waitForProgress(seconds: Double = 120, _ condition: ([String: Any]) -> Bool) async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let progress = try await get("/sdapi/v1/progress?skip_current_image=true").object()
            if condition(progress) { return progress }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        throw AnySizeError(.io, "progress condition not reached in \(seconds) s")
    }
}

extension Dictionary where Key == String, Value == Any {
    var state: [String: Any] { self["state"] as? [String: Any] ?? [:] }
}

/// Decodes one base64 PNG of an answer.
func decodePNG(_ base64: Any?, file: StaticString = #filePath, line: UInt = #line) throws -> (image: RGBImage, bytes: [UInt8]) {
    let text = try XCTUnwrap(base64 as? String, "not a base64 string", file: file, line: line)
    let data = try XCTUnwrap(Data(base64Encoded: text), "not base64", file: file, line: line)
    return (try PNGReader.decode([UInt8](data), source: "answer"), [UInt8](data))
}
