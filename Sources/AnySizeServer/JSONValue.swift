import Foundation

/// Any JSON value, for A1111's free-form fields (`override_settings`, `alwayson_scripts`, `script_args`).
enum JSONValue: Decodable, Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let n = try? c.decode(Double.self) {
            self = .number(n)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }

    /// What A1111 treats as "not set": null, false, 0, "", [], {}.
    var isEmpty: Bool {
        switch self {
        case .null: return true
        case .bool(let b): return !b
        case .number(let n): return n == 0
        case .string(let s): return s.isEmpty
        case .array(let a): return a.isEmpty
        case .object(let o): return o.isEmpty
        }
    }

    /// The value for JSONSerialization.
    var foundation: Any {
        switch self {
        case .null: return NSNull()
        case .bool(let b): return b
        case .number(let n): return n == n.rounded() && abs(n) < 1e15 ? Int(n) as Any : n as Any
        case .string(let s): return s
        case .array(let a): return a.map(\.foundation)
        case .object(let o): return o.mapValues(\.foundation)
        }
    }
}

/// An answer other than 200, in A1111's shape `{"detail": "..."}`.
struct APIError: Error, Sendable {
    /// HTTP status code.
    let status: Int
    let detail: String

    init(_ status: Int, _ detail: String) {
        self.status = status
        self.detail = detail
    }

    /// 422 for a value the request got wrong, naming the field.
    static func invalid(_ field: String, _ problem: String) -> APIError {
        APIError(422, "\(field): \(problem)")
    }

    /// The one-line message of a JSON decoding failure, naming the field at fault.
    static func decoding(_ error: any Error) -> APIError {
        if let error = error as? APIError { return error }
        guard let error = error as? DecodingError else { return APIError(422, "request body: \(error)") }
        func path(_ context: DecodingError.Context) -> String {
            let parts = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return parts.hasPrefix(".") ? String(parts.dropFirst()) : parts
        }
        switch error {
        case .typeMismatch(let type, let context):
            return context.codingPath.isEmpty ? APIError(422, "request body: expected a JSON object")
                : .invalid(path(context), "expected \(typeName(type))")
        case .valueNotFound(let type, let context):
            return .invalid(path(context), "expected \(typeName(type)), got null")
        case .keyNotFound(let key, let context):
            let prefix = path(context)
            return .invalid(prefix.isEmpty ? key.stringValue : prefix + "." + key.stringValue, "field required")
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? APIError(422, "request body is not valid JSON")
                : .invalid(path(context), "invalid value (\(context.debugDescription))")
        @unknown default:
            return APIError(422, "request body: \(error)")
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is Int64.Type: return "an integer"
        case is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        case is String.Type: return "a string"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") { return "a list" }
            if name.hasPrefix("Dictionary") { return "an object" }
            return name
        }
    }
}
