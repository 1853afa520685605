import AnySize
import Foundation
import XCTest

/// A seeded mutation fuzzer over valid safetensors files: header lengths, offsets, dtypes, shapes, JSON structure
/// and duplicate keys. Every mutant must either load (and every tensor read) or throw `AnySizeError`; a crash ends
/// the test process, any other error fails the test. Bounded to about three seconds.
final class SafeTensorsFuzzTests: XCTestCase {
    /// SplitMix64: a small seeded generator, so a failing case reproduces from its seed and iteration.
    private struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
        mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
    }

    /// A valid header and data section of a few tensors of several dtypes.
    private static func validFile() -> (header: String, data: [UInt8]) {
        let tensors: [(String, String, [Int])] = [("a.weight", "F32", [2, 3]), ("b", "F16", [4]), ("c.bias", "BF16", [1, 2, 2]),
                                                  ("d", "F64", [2]), ("e", "U8", [3]), ("empty", "F32", [0, 5])]
        let sizes = ["F32": 4, "F16": 2, "BF16": 2, "F64": 8, "U8": 1]
        var entries: [String] = [#""__metadata__":{"format":"pt"}"#]
        var offset = 0
        for (name, dtype, shape) in tensors {
            let bytes = shape.reduce(1, *) * (sizes[dtype] ?? 1)
            entries.append(#""\#(name)":{"dtype":"\#(dtype)","shape":\#(shape),"data_offsets":[\#(offset),\#(offset + bytes)]}"#)
            offset += bytes
        }
        // Small finite values in every dtype: 0x3c00 is F16 1.0, 0x3f80 BF16 1.0.
        var data = [UInt8](repeating: 0, count: offset)
        for i in stride(from: 0, to: offset, by: 2) where i + 1 < offset { data[i + 1] = 0x3c }
        return ("{" + entries.joined(separator: ",") + "}", data)
    }

    private static let numbers = ["0", "-1", "1", "3", "8", "4294967296", "9223372036854775807", "-9223372036854775808",
                                  "18446744073709551616", "1e300", "0.5", "null", "\"7\"", "[]", "{}", "true"]
    private static let dtypes = ["F32", "F16", "BF16", "F64", "U8", "I64", "BOOL", "F8_E4M3", "f32", "", "X"]
    private static let fragments = ["{", "}", "[", "]", ",", ":", "\"", "\\", "\\u0000", "\"a.weight\":", "\"dtype\":\"F32\"",
                                    "\"shape\":[]", "\"data_offsets\":[0,0]", "\u{0}", "\u{FF}", "ü"]

    /// The first range of `needle` in `haystack` at or after `from`.
    private func find(_ needle: [UInt8], in haystack: [UInt8], from: Int = 0) -> Range<Int>? {
        guard needle.count <= haystack.count, from <= haystack.count - needle.count else { return nil }
        for i in from ... haystack.count - needle.count where haystack[i ..< i + needle.count].elementsEqual(needle) {
            return i ..< i + needle.count
        }
        return nil
    }

    /// The range of the `{...}` or `[...]` starting at `open` (no nesting inside, as in the entries here).
    private func closing(_ text: [UInt8], from open: Int, _ close: UInt8) -> Range<Int>? {
        guard let end = text[open...].firstIndex(of: close) else { return nil }
        return open ..< end + 1
    }

    private func mutate(_ header: String, _ data: [UInt8], _ g: inout Generator) -> [UInt8] {
        var text = Array(header.utf8)
        var bytes = data
        var declaredLength: UInt64?
        for _ in 0 ..< 1 + g.below(3) {
            switch g.below(9) {
            case 0:  // a number somewhere (offsets, shape entries, lengths) replaced
                let digits = text.indices.filter { (48 ... 57).contains(text[$0]) }
                if !digits.isEmpty {
                    let at = g.pick(digits)
                    text.replaceSubrange(at ... at, with: Array(g.pick(Self.numbers).utf8))
                }
            case 1:  // a dtype replaced
                let dtype = g.pick(["F32", "F16", "BF16", "F64", "U8"])
                if let range = find(Array("\"\(dtype)\"".utf8), in: text) {
                    text.replaceSubrange(range, with: Array("\"\(g.pick(Self.dtypes))\"".utf8))
                }
            case 2:  // a shape replaced
                if let start = find(Array("\"shape\":".utf8), in: text, from: g.below(text.count)) ?? find(Array("\"shape\":".utf8), in: text),
                   let range = closing(text, from: start.upperBound, UInt8(ascii: "]")) {
                    let dims = (0 ..< g.below(5)).map { _ in g.pick(["0", "1", "2", "-1", "1000000", "4611686018427387904"]) }
                    text.replaceSubrange(range, with: Array("[\(dims.joined(separator: ","))]".utf8))
                }
            case 3:  // a JSON fragment inserted
                text.insert(contentsOf: Array(g.pick(Self.fragments).utf8), at: g.below(text.count + 1))
            case 4:  // a span deleted
                guard !text.isEmpty else { break }
                let start = g.below(text.count)
                text.removeSubrange(start ..< min(text.count, start + 1 + g.below(12)))
            case 5:  // a duplicate key: an entry repeated, or renamed to another entry's name
                if let key = find(Array("\"b\":".utf8), in: text), let entry = closing(text, from: key.lowerBound, UInt8(ascii: "}")) {
                    var copy = Array(text[entry])
                    if g.below(2) == 0 { copy[1] = UInt8(ascii: "d") }
                    text.insert(contentsOf: [UInt8(ascii: ",")] + copy, at: entry.upperBound)
                }
            case 6:  // the declared header length off by a little or a lot
                let actual = UInt64(text.count)
                declaredLength = g.pick([0, 1, actual &- 1, actual + 1, actual + UInt64(bytes.count), actual + 1000, .max, 1 << 40])
            case 7:  // the data section truncated or extended
                bytes = g.below(2) == 0 ? Array(bytes.prefix(g.below(bytes.count + 1))) : bytes + [UInt8](repeating: 0xff, count: g.below(64))
            default:  // non-finite values in the data
                if !bytes.isEmpty { bytes[g.below(bytes.count)] = g.pick([0x7f, 0xff, 0x7c, 0xfc]) }
            }
        }
        var file = withUnsafeBytes(of: (declaredLength ?? UInt64(text.count)).littleEndian) { Array($0) }
        file += text + bytes
        if g.below(20) == 0 { file = Array(file.prefix(g.below(file.count + 1))) }  // truncated anywhere, even in the length
        return file
    }

    func testMutatedHeadersLoadOrThrowAnySizeError() throws {
        let folder = try WeightsTestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("fuzz.safetensors").path
        let (header, data) = Self.validFile()
        var g = Generator(state: 0x5EED_0012)
        var loaded = 0, refused = 0, iterations = 0
        let deadline = Date().addingTimeInterval(3)
        while Date() < deadline && iterations < 20_000 {
            let seedState = g.state
            let bytes = mutate(header, data, &g)
            iterations += 1
            FileManager.default.createFile(atPath: path, contents: Data(bytes))
            do {
                let file = try SafeTensorsFile(path: path)
                for name in file.names {
                    if file.dtype(of: name)?.isConvertibleToFloat32 == true { _ = try file.tensor(name) }
                }
                loaded += 1
            } catch is AnySizeError {
                refused += 1
            } catch {
                XCTFail("iteration \(iterations) (generator state \(seedState)): \(error) is not an AnySizeError")
                break
            }
        }
        print("[fuzz] \(iterations) mutants: \(loaded) loaded, \(refused) refused with AnySizeError")
        XCTAssertGreaterThan(iterations, 200, "the fuzzer ran too few cases")
        XCTAssertGreaterThan(refused, iterations / 4, "most mutants should be refused")
        XCTAssertGreaterThan(loaded, 0, "some mutants (e.g. harmless whitespace) should still load")
    }
}
