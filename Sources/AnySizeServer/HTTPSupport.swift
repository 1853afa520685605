import AnySize
import Foundation
import Hummingbird

/// A JSON answer built with JSONSerialization (A1111's shapes are loose dictionaries).
struct JSONBody: ResponseGenerator, @unchecked Sendable {
    let object: Any
    var status: Int = 200
    var headers: HTTPFields = [:]

    init(_ object: Any, status: Int = 200, headers: HTTPFields = [:]) {
        self.object = object
        self.status = status
        self.headers = headers
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.fragmentsAllowed])) ?? Data("null".utf8)
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: .init(code: status), headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Every failure as A1111 answers it: `{"detail": "..."}` with the status (422 validation, 413 body too large,
/// 429 queue full, 401 authentication, 404 unknown route, 500 generation failure).
struct A1111ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            var response = try JSONBody(["detail": error.detail], status: error.status).response(from: request, context: context)
            if error.status == 401 { response.headers[.wwwAuthenticate] = "Basic" }
            if error.status == 429 { response.headers[.retryAfter] = "5" }
            return response
        } catch let error as HTTPError {
            let detail = error.body ?? error.status.reasonPhrase
            var response = try JSONBody(["detail": detail], status: error.status.code).response(from: request, context: context)
            response.headers.append(contentsOf: error.headers.filter { $0.name != .contentType && $0.name != .contentLength })
            return response
        } catch let error as AnySizeError {
            return try JSONBody(["detail": error.message], status: 500).response(from: request, context: context)
        }
    }
}

/// HTTP Basic authentication on every route, as A1111's `--api-auth` (401 otherwise).
struct BasicAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let accepted: Set<String>

    init(credentials: [(user: String, password: String)]) {
        accepted = Set(credentials.map { "\($0.user):\($0.password)" })
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("basic "),
              let data = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
              let pair = String(data: data, encoding: .utf8), Self.contains(accepted, pair) else {
            throw APIError(401, "Incorrect username or password")
        }
        return try await next(request, context)
    }

    /// Membership compared in time independent of where the strings differ.
    static func contains(_ set: Set<String>, _ candidate: String) -> Bool {
        var found = false
        let c = Array(candidate.utf8)
        for item in set {
            let a = Array(item.utf8)
            var diff = a.count ^ c.count
            for i in 0 ..< max(a.count, c.count) { diff |= Int((i < a.count ? a[i] : 0) ^ (i < c.count ? c[i] : 0)) }
            found = found || diff == 0
        }
        return found
    }
}
