import AnySize
import Foundation
import XCTest

/// Temporary folders and raw safetensors files for the weight-loading tests.
enum WeightsTestSupport {
    /// A fresh empty folder under the system temporary directory.
    static func temporaryFolder(_ function: String = #function) throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("anysize-\(function.prefix { $0 != "(" })-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Writes `length` (8 bytes, little-endian), `header` and `data` verbatim, whatever their consistency.
    static func writeRaw(_ url: URL, header: String, data: [UInt8] = [], length: UInt64? = nil) throws {
        let headerBytes = Array(header.utf8)
        var bytes = withUnsafeBytes(of: (length ?? UInt64(headerBytes.count)).littleEndian) { Array($0) }
        bytes += headerBytes + data
        try Data(bytes).write(to: url)
    }

    /// Bytes of `values` as little-endian `T`.
    static func bytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
        values.flatMap { value in withUnsafeBytes(of: value.littleEndian) { Array($0) } }
    }
}

final class SafeTensorsTests: XCTestCase {
    private typealias Support = WeightsTestSupport

    /// Every malformed file throws an `AnySizeError` naming the file (and the tensor where there is one).
    func testCorruptFilesThrowNamedErrors() throws {
        let folder = try Support.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let eightFloats = [UInt8](repeating: 0, count: 32)
        struct Case { let name: String; let header: String; var data: [UInt8] = []; var length: UInt64? = nil; let expect: String }
        let cases: [Case] = [
            Case(name: "header-past-end", header: "{}", length: 1000, expect: "does not fit"),
            Case(name: "zero-header", header: "", length: 0, expect: "does not fit"),
            Case(name: "invalid-json", header: "{\"a\": {\"dtype\": \"F32\",", expect: "not valid safetensors JSON"),
            Case(name: "not-an-object", header: "[1, 2, 3]", expect: "not valid safetensors JSON"),
            Case(name: "unknown-dtype", header: #"{"w": {"dtype": "F17", "shape": [2], "data_offsets": [0, 8]}}"#,
                 data: eightFloats, expect: "'w' has unknown dtype 'F17'"),
            Case(name: "offsets-outside", header: #"{"w": {"dtype": "F32", "shape": [16], "data_offsets": [0, 64]}}"#,
                 data: eightFloats, expect: "'w' data_offsets [0, 64] run past"),
            Case(name: "end-before-begin", header: #"{"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}}"#,
                 data: eightFloats, expect: "'w' has data_offsets [8, 4] with end before begin"),
            Case(name: "length-mismatch", header: #"{"w": {"dtype": "F16", "shape": [2, 3], "data_offsets": [0, 8]}}"#,
                 data: eightFloats, expect: "'w' occupies 8 bytes but F16 [2, 3] needs 12"),
            Case(name: "overlap", header: #"{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [4], "data_offsets": [12, 28]}}"#,
                 data: eightFloats, expect: "'a' and 'b' overlap"),
            Case(name: "negative-shape", header: #"{"w": {"dtype": "F32", "shape": [-2, -4], "data_offsets": [0, 32]}}"#,
                 data: eightFloats, expect: "'w' has a negative dimension"),
            Case(name: "huge-shape", header: #"{"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 32]}}"#,
                 data: eightFloats, expect: "'w' shape [4294967296, 4294967296] is too large"),
            Case(name: "beyond-int64-shape", header: #"{"w": {"dtype": "F32", "shape": [99999999999999999999], "data_offsets": [0, 32]}}"#,
                 data: eightFloats, expect: "'w' has a malformed header entry"),
            Case(name: "fractional-shape", header: #"{"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 32]}}"#,
                 data: eightFloats, expect: "'w' has a malformed header entry"),
            Case(name: "missing-offsets", header: #"{"w": {"dtype": "F32", "shape": [8]}}"#,
                 data: eightFloats, expect: "'w' has a malformed header entry"),
            Case(name: "three-offsets", header: #"{"w": {"dtype": "F32", "shape": [8], "data_offsets": [0, 16, 32]}}"#,
                 data: eightFloats, expect: "'w' data_offsets must be [begin, end]"),
            Case(name: "bad-metadata", header: #"{"__metadata__": {"format": 3}}"#, expect: "__metadata__ must map strings to strings"),
        ]
        for c in cases {
            let url = folder.appendingPathComponent("\(c.name).safetensors")
            try Support.writeRaw(url, header: c.header, data: c.data, length: c.length)
            assertThrowsAnySizeError(try SafeTensorsFile(path: url.path), mentioning: [url.path, c.expect], c.name)
        }
        for size in [0, 5] {
            let url = folder.appendingPathComponent("short-\(size).safetensors")
            try Data(repeating: 1, count: size).write(to: url)
            assertThrowsAnySizeError(try SafeTensorsFile(path: url.path),
                                     mentioning: [url.path, "\(size) bytes, shorter than the 8-byte"], "short \(size)")
        }
        let missing = folder.appendingPathComponent("absent.safetensors").path
        assertThrowsAnySizeError(try SafeTensorsFile(path: missing), mentioning: [missing, "cannot open"], "missing")
        assertThrowsAnySizeError(try SafeTensorsFile(path: folder.path), mentioning: [folder.path, "not a regular file"], "folder")
    }

    /// Every one of the 65536 half-precision bit patterns widens exactly (normals, subnormals, zeros,
    /// infinities, NaN), checked against the IEEE 754 binary16 definition.
    func testFloat16ConversionIsExact() throws {
        let folder = try Support.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("f16.safetensors")
        let patterns = (0 ... 0xffff).map { UInt16($0) }
        try Support.writeRaw(url, header: #"{"h": {"dtype": "F16", "shape": [256, 256], "data_offsets": [0, 131072]}}"#,
                             data: Support.bytes(patterns))
        let file = try SafeTensorsFile(path: url.path)
        XCTAssertEqual(file.dtype(of: "h"), .f16)
        let values = try file.tensor("h").scalars
        XCTAssertEqual(values.count, 65536)
        var mismatches = 0
        for bits in patterns {
            let negative = bits & 0x8000 != 0
            let exponent = Int(bits >> 10) & 0x1f, mantissa = Double(bits & 0x3ff)
            let got = values[Int(bits)]
            if exponent == 0x1f, mantissa != 0 {
                if !got.isNaN || (got.sign == .minus) != negative { mismatches += 1 }
                continue
            }
            let magnitude: Double = exponent == 0x1f ? .infinity
                : exponent == 0 ? mantissa * pow(2, -24) : (1 + mantissa / 1024) * pow(2, Double(exponent - 15))
            let expected = Float(negative ? -magnitude : magnitude)
            if got.bitPattern != expected.bitPattern { mismatches += 1 }
        }
        XCTAssertEqual(mismatches, 0)
        XCTAssertEqual(values[0x0001], 0x1p-24)          // smallest subnormal
        XCTAssertEqual(values[0x03ff], 1023 * 0x1p-24)   // largest subnormal
        XCTAssertEqual(values[0x7bff], 65504)            // largest normal
        XCTAssertEqual(values[0x8000].bitPattern, (-Float(0)).bitPattern)
        XCTAssertEqual(values[0xfc00], -.infinity)
    }

    /// bfloat16 is the upper half of a float32: every pattern widens to exactly that float.
    func testBFloat16ConversionIsExact() throws {
        let folder = try Support.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("bf16.safetensors")
        let patterns = (0 ... 0xffff).map { UInt16($0) }
        try Support.writeRaw(url, header: #"{"b": {"dtype": "BF16", "shape": [65536], "data_offsets": [0, 131072]}}"#,
                             data: Support.bytes(patterns))
        let values = try SafeTensorsFile(path: url.path).tensor("b").scalars
        let mismatches = patterns.filter { values[Int($0)].bitPattern != UInt32($0) << 16 }
        XCTAssertEqual(mismatches.count, 0)
        XCTAssertEqual(values[0x3f80], 1)
        XCTAssertEqual(values[0xc000], -2)
        XCTAssertEqual(values[0x3eab], 0.333984375)
        XCTAssertTrue(values[0x7fc0].isNaN)
    }

    /// F32 copies bit for bit from an unaligned data section; F64 rounds to nearest float; integer tensors
    /// are listed but refused by `tensor(_:)`; scalars and empty tensors load.
    func testOtherDtypesAlignmentAndMetadata() throws {
        let folder = try Support.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("mixed.safetensors")
        let floats: [Float] = [1.5, -0.0, .infinity, 3.1415927, -Float.leastNonzeroMagnitude * 7, 65504.5]
        let doubles: [Double] = [0.1, -1e300, 1e-50, 2.5]
        var data = Support.bytes(floats.map(\.bitPattern))                       // 0 ..< 24
        data += Support.bytes(doubles.map(\.bitPattern))                         // 24 ..< 56
        data += Support.bytes([Int64(7), Int64(-1)])                             // 56 ..< 72
        data += Support.bytes([Float(42).bitPattern])                            // 72 ..< 76
        // The header length (odd) puts the data section at an odd address in the mapping.
        let header = #"{"__metadata__": {"format": "pt", "note": "x"}, "f": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, "d": {"dtype": "F64", "shape": [4], "data_offsets": [24, 56]}, "i": {"dtype": "I64", "shape": [1, 2], "data_offsets": [56, 72]}, "s": {"dtype": "F32", "shape": [], "data_offsets": [72, 76]}, "e": {"dtype": "F16", "shape": [0, 5], "data_offsets": [76, 76]}}"#
        XCTAssertEqual(header.utf8.count % 2, 1)
        try Support.writeRaw(url, header: header, data: data)

        let file = try SafeTensorsFile(path: url.path)
        XCTAssertEqual(file.names, ["d", "e", "f", "i", "s"])
        XCTAssertEqual(file.metadata, ["format": "pt", "note": "x"])
        XCTAssertEqual(file.dtypeCounts, [.f32: 2, .f64: 1, .i64: 1, .f16: 1])
        XCTAssertEqual(file.shape(of: "f"), [2, 3])
        XCTAssertNil(file.shape(of: "absent"))
        let f = try file.tensor("f")
        XCTAssertEqual(f.shape, [2, 3])
        XCTAssertEqual(f.scalars.map(\.bitPattern), floats.map(\.bitPattern))
        XCTAssertEqual(try file.tensor("d").scalars, doubles.map { Float($0) })
        let scalar = try file.tensor("s")
        XCTAssertEqual(scalar.shape, [])
        XCTAssertEqual(scalar.scalars, [42])
        XCTAssertEqual(try file.tensor("e").shape, [0, 5])
        assertThrowsAnySizeError(try file.tensor("i"), mentioning: [url.path, "'i' has dtype I64"], "int64")
        assertThrowsAnySizeError(try file.tensor("absent"), mentioning: [url.path, "'absent'"], "absent")
    }

    /// Written files read back identically, with the header padded to 8 bytes and no temporary file left.
    func testWriterRoundTrip() throws {
        let folder = try Support.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("latents.safetensors")
        let a = Tensor(shape: [1, 4, 3, 5], values: (0 ..< 60).map { Float($0) * 0.37 - 9 })
        let b = Tensor(shape: [], values: [-0.0])
        let c = Tensor(zeros: [0, 3])
        let d = Tensor(shape: [3], values: [.infinity, .nan, Float.leastNonzeroMagnitude * 700])
        try SafeTensorsWriter.write([("latents", a), ("step", b), ("empty", c), ("special \"name\"", d)],
                                    to: url.path, metadata: ["seed": "42", "prompt": "a \"quoted\"\nprompt"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["latents.safetensors"])

        let raw = try Data(contentsOf: url)
        let headerLength = raw.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        XCTAssertEqual(headerLength % 8, 0)
        XCTAssertEqual(raw.count, 8 + headerLength + (60 + 1 + 3) * 4)

        let file = try SafeTensorsFile(path: url.path)
        XCTAssertEqual(file.names, ["empty", "latents", "special \"name\"", "step"])
        XCTAssertEqual(file.metadata, ["seed": "42", "prompt": "a \"quoted\"\nprompt"])
        XCTAssertEqual(file.dtypeCounts, [.f32: 4])
        let a2 = try file.tensor("latents")
        XCTAssertEqual(a2.shape, a.shape)
        XCTAssertEqual(a2.scalars, a.scalars)
        XCTAssertEqual(try file.tensor("step").scalars.map(\.bitPattern), [(-Float(0)).bitPattern])
        XCTAssertEqual(try file.tensor("empty").shape, [0, 3])
        XCTAssertEqual(try file.tensor("special \"name\"").scalars.map(\.bitPattern), d.scalars.map(\.bitPattern))
    }

    /// A failed write leaves neither a partial file nor a temporary file, and keeps an existing file intact.
    func testWriterIsAtomic() throws {
        let folder = try Support.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("out.safetensors")
        let old = Tensor(shape: [2], values: [1, 2])
        try SafeTensorsWriter.write([("old", old)], to: url.path)
        let before = try Data(contentsOf: url)

        let t = Tensor(shape: [2], values: [3, 4])
        assertThrowsAnySizeError(try SafeTensorsWriter.write([("x", t), ("x", t)], to: url.path),
                                 mentioning: [url.path, "'x' appears twice"], "duplicate")
        assertThrowsAnySizeError(try SafeTensorsWriter.write([("__metadata__", t)], to: url.path),
                                 mentioning: [url.path], "reserved name")
        // The destination is a folder: refused before anything is written.
        let blocked = folder.appendingPathComponent("blocked.safetensors")
        try FileManager.default.createDirectory(at: blocked.appendingPathComponent("inner"), withIntermediateDirectories: true)
        assertThrowsAnySizeError(try SafeTensorsWriter.write([("x", t)], to: blocked.path),
                                 mentioning: [blocked.path, "is a folder"], "folder")
        let missingFolder = folder.appendingPathComponent("no/such/folder/out.safetensors").path
        assertThrowsAnySizeError(try SafeTensorsWriter.write([("x", t)], to: missingFolder),
                                 mentioning: [missingFolder, "does not exist"], "missing folder")

        XCTAssertEqual(try Data(contentsOf: url), before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted(),
                       ["blocked.safetensors", "out.safetensors"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: blocked.path), ["inner"])

        try SafeTensorsWriter.write([("new", t)], to: url.path)
        XCTAssertEqual(try SafeTensorsFile(path: url.path).names, ["new"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted(),
                       ["blocked.safetensors", "out.safetensors"])
    }
}

/// Asserts that `expression` throws an `AnySizeError` whose one-line message contains every string in `parts`.
func assertThrowsAnySizeError<T>(_ expression: @autoclosure () throws -> T, mentioning parts: [String], _ label: String,
                                 file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try expression()
        XCTFail("\(label): expected an AnySizeError", file: file, line: line)
    } catch let error as AnySizeError {
        for part in parts where !error.message.contains(part) {
            XCTFail("\(label): message lacks '\(part)': \(error.message)", file: file, line: line)
        }
        XCTAssertFalse(error.message.contains("\n"), "\(label): message is not one line: \(error.message)", file: file, line: line)
    } catch {
        XCTFail("\(label): expected an AnySizeError, got \(error)", file: file, line: line)
    }
}
