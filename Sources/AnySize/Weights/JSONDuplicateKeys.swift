import Foundation

/// Finds a key that appears twice in one JSON object (at any depth), which `JSONDecoder` and
/// `JSONSerialization` accept silently, keeping one of the values.
enum JSONDuplicateKeys {
    /// The first repeated key, or nil. Malformed JSON yields nil here; the decoder reports it.
    static func first(in data: Data) -> String? {
        let bytes = [UInt8](data)
        // One entry per open container: the keys seen so far (objects) or nil (arrays).
        var stack: [Set<String>?] = []
        var expectingKey = false
        var i = 0
        while i < bytes.count {
            let byte = bytes[i]
            switch byte {
            case UInt8(ascii: "{"):
                stack.append([])
                expectingKey = true
            case UInt8(ascii: "["):
                stack.append(nil)
                expectingKey = false
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if !stack.isEmpty { stack.removeLast() }
                expectingKey = false
            case UInt8(ascii: ","):
                expectingKey = stack.last.map { $0 != nil } ?? false
            case UInt8(ascii: "\""):
                var end = i + 1
                while end < bytes.count && bytes[end] != UInt8(ascii: "\"") {
                    end += bytes[end] == UInt8(ascii: "\\") ? 2 : 1
                }
                guard end < bytes.count else { return nil }
                if expectingKey, var keys = stack.last ?? nil {
                    let key = decodeString(Array(bytes[i ... end]))
                    guard keys.insert(key).inserted else { return key }
                    stack[stack.count - 1] = keys
                    expectingKey = false
                }
                i = end
            default:
                break
            }
            i += 1
        }
        return nil
    }

    /// A JSON string token (with its quotes) as the string it denotes; escapes are decoded by Foundation.
    private static func decodeString(_ token: [UInt8]) -> String {
        guard token.contains(UInt8(ascii: "\\")) else { return String(decoding: token.dropFirst().dropLast(), as: UTF8.self) }
        return (try? JSONSerialization.jsonObject(with: Data(token), options: .fragmentsAllowed)) as? String
            ?? String(decoding: token, as: UTF8.self)
    }
}
