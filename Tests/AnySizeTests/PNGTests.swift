import AnySize
import Foundation
import XCTest

/// Deterministic bytes for test images (SplitMix64).
struct TestRandom {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func image(width: Int, height: Int) -> RGBImage {
        RGBImage(width: width, height: height, pixels: (0 ..< width * height * 3).map { _ in UInt8(truncatingIfNeeded: next()) })
    }
}

func fixturePath(_ relative: String) throws -> String {
    let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil), "test fixtures missing")
    return url.appendingPathComponent(relative).path
}

final class PNGTests: XCTestCase {
    var folder = ""

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("anysize-png-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    private func listing(_ path: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).sorted()
    }

    private func assertThrows<T>(_ expression: @autoclosure () throws -> T, mentioning path: String,
                              file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try expression(), file: file, line: line) { error in
            XCTAssertTrue(error is AnySizeError, "\(error)", file: file, line: line)
            XCTAssertTrue("\(error)".contains(path), "error '\(error)' does not name '\(path)'", file: file, line: line)
        }
    }

    func testCRC32KnownValues() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(CRC32.checksum([UInt8]()), 0)
        XCTAssertEqual(CRC32.checksum(Array("IEND".utf8)), 0xAE42_6082)
        // Continuing a checksum equals checksumming the concatenation.
        let a = Array("IDAT".utf8), b: [UInt8] = [1, 2, 3, 250]
        XCTAssertEqual(CRC32.checksum(b, continuing: CRC32.checksum(a)), CRC32.checksum(a + b))
    }

    func testRoundTripRandomImages() throws {
        var random = TestRandom(state: 42)
        for (width, height) in [(13, 7), (1, 1), (7, 13), (64, 33)] {
            let image = random.image(width: width, height: height)
            let path = folder + "/round-\(width)x\(height).png"
            try PNGWriter.write(image, to: path)
            XCTAssertEqual(try PNGReader.read(path: path), image, "\(width)x\(height)")
            XCTAssertEqual(try PNGReader.decode(PNGWriter.encode(image), source: "memory"), image)
        }
        XCTAssertEqual(try listing(folder).count, 4, "only the four images, no temporary files")
    }

    func testTextChunksRoundTrip() throws {
        let parameters = "a castle on a hill\nNegative prompt: fog\nSteps: 30, Sampler: DPM++ 2M, CFG scale: 7, Seed: 99, Size: 256x256"
        let utf8 = "桜の木の下で 🌸🐱 東京 — naïve 😀"
        let latin1 = "café déjà vu ±½ ÿ"
        let text = [(key: "parameters", value: parameters), (key: "prompt", value: utf8),
                    (key: "latin", value: latin1), (key: "empty", value: "")]
        let path = folder + "/text.png"
        let image = RGBImage(width: 13, height: 7, pixels: (0 ..< 13 * 7 * 3).map { UInt8($0 % 251) })
        try PNGWriter.write(image, to: path, text: text)

        let read = try PNGReader.textChunks(path: path)
        XCTAssertEqual(read.map(\.key), text.map(\.key))
        XCTAssertEqual(read.map(\.value), text.map(\.value))
        XCTAssertEqual(try PNGReader.read(path: path), image)

        // Latin-1 values are tEXt, others iTXt (as PIL's PngInfo.add_text), all before the image data.
        let types = try PNGReader.chunks(path: path).map(\.type)
        XCTAssertEqual(types.first, "IHDR")
        XCTAssertEqual(types.last, "IEND")
        let textTypes = types.filter { $0 == "tEXt" || $0 == "iTXt" }
        XCTAssertEqual(textTypes, ["tEXt", "iTXt", "tEXt", "tEXt"])
        let firstData = try XCTUnwrap(types.firstIndex(of: "IDAT"))
        XCTAssertLessThan(try XCTUnwrap(types.lastIndex(of: "iTXt")), firstData)
        // The Latin-1 value is stored as one byte per character.
        let latinChunk = try PNGReader.chunks(path: path).filter { $0.type == "tEXt" }[1]
        XCTAssertEqual(latinChunk.data.count, "latin".count + 1 + latin1.count)
    }

    func testInvalidTextKeysAreRejected() {
        let image = RGBImage(width: 2, height: 2)
        for key in ["", String(repeating: "k", count: 80), "prompt\u{7}", "键"] {
            XCTAssertThrowsError(try PNGWriter.encode(image, text: [(key: key, value: "x")])) { error in
                XCTAssertEqual((error as? AnySizeError)?.kind, .invalidArgument, key)
            }
        }
        XCTAssertThrowsError(try PNGWriter.encode(image, text: [(key: "parameters", value: "a\u{0}b")]))
    }

    /// A file written by PIL (`tools/fixtures_png.py`) with A1111-style `parameters` text.
    func testReadsPILFixtureWithParameters() throws {
        let path = try fixturePath("image/pil_parameters.png")
        let image = try PNGReader.read(path: path)
        XCTAssertEqual(image.width, 9)
        XCTAssertEqual(image.height, 5)
        for y in 0 ..< 5 {
            for x in 0 ..< 9 {
                for c in 0 ..< 3 { XCTAssertEqual(Int(image[x, y, c]), (37 * x + 11 * y + 91 * c) % 256) }
            }
        }
        let text = try PNGReader.textChunks(path: path)
        XCTAssertEqual(text.map(\.key), ["parameters", "prompt_utf8"])
        let parameters = try XCTUnwrap(text.first { $0.key == "parameters" }?.value)
        XCTAssertTrue(parameters.hasPrefix("a watercolour fox in a misty forest, highly detailed\nNegative prompt: blurry, lowres\n"))
        XCTAssertTrue(parameters.hasSuffix("Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 1234, Size: 768x512, Model: v1-5-pruned-emaonly, Attention: scaled"))
        XCTAssertEqual(text.first { $0.key == "prompt_utf8" }?.value, "猫と狐 🦊🐈 — café, naïve, 東京")
    }

    /// Gray, gray+alpha, 1-bit, 16-bit, RGBA and palette files read as 8-bit RGB (`tools/fixtures_png.py`).
    func testReadsOtherColourTypesAndDepths() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixturePath("image/formats/expected.json")))
        let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let images = try XCTUnwrap(expected["images"] as? [String: [Int]])
        XCTAssertEqual(Set(images.keys), ["gray8", "gray1", "gray16", "gray_alpha8", "rgb16", "rgba8", "rgba16", "palette4_trns"])
        for (name, pixels) in images.sorted(by: { $0.key < $1.key }) {
            let image = try PNGReader.read(path: fixturePath("image/formats/\(name).png"))
            XCTAssertEqual(image.width, 5, name)
            XCTAssertEqual(image.height, 3, name)
            let worst = zip(image.pixels, pixels).map { abs(Int($0) - $1) }.max() ?? -1
            // 8-bit data must be exact; 16-bit data is rounded to 8 bits (the fixture uses the same rounding).
            XCTAssertEqual(worst, 0, "\(name): max difference \(worst)")
        }
    }

    func testAtomicOverwriteLeavesNoTemporaryFile() throws {
        let path = folder + "/out.png"
        var random = TestRandom(state: 7)
        try PNGWriter.write(random.image(width: 4, height: 3), to: path)
        let second = random.image(width: 6, height: 5)
        try PNGWriter.write(second, to: path, text: [(key: "parameters", value: "second")])
        XCTAssertEqual(try PNGReader.read(path: path), second)
        XCTAssertEqual(try listing(folder), ["out.png"])
    }

    func testWriteFailuresNameThePathAndLeaveNoTemporaryFile() throws {
        let image = RGBImage(width: 3, height: 2)
        // Missing folder.
        let missing = folder + "/no-such-folder/out.png"
        assertThrows(try PNGWriter.write(image, to: missing), mentioning: missing)
        // The "folder" is a regular file (unwritable for every user, root included).
        let blocker = folder + "/blocker"
        XCTAssertTrue(FileManager.default.createFile(atPath: blocker, contents: Data([1])))
        let underFile = blocker + "/out.png"
        assertThrows(try PNGWriter.write(image, to: underFile), mentioning: underFile)
        // The target is a non-empty folder: the temporary file is written, the rename fails, and the
        // temporary file must be removed.
        let occupied = folder + "/occupied.png"
        try FileManager.default.createDirectory(atPath: occupied + "/inside", withIntermediateDirectories: true)
        assertThrows(try PNGWriter.write(image, to: occupied), mentioning: occupied)
        XCTAssertEqual(try listing(folder), ["blocker", "occupied.png"])
        // A read-only folder (permissions do not stop root, so only checked for other users).
        if geteuid() != 0 {
            let locked = folder + "/locked"
            try FileManager.default.createDirectory(atPath: locked, withIntermediateDirectories: false)
            chmod(locked, 0o555)
            defer { chmod(locked, 0o755) }
            assertThrows(try PNGWriter.write(image, to: locked + "/out.png"), mentioning: locked + "/out.png")
            XCTAssertEqual(try listing(locked), [])
        }
    }

    func testReadErrorsNameThePath() throws {
        let missing = folder + "/missing.png"
        XCTAssertThrowsError(try PNGReader.read(path: missing)) { error in
            XCTAssertEqual((error as? AnySizeError)?.kind, .fileNotFound)
            XCTAssertTrue("\(error)".contains(missing))
        }
        let text = folder + "/notes.png"
        XCTAssertTrue(FileManager.default.createFile(atPath: text, contents: Data("not an image".utf8)))
        XCTAssertThrowsError(try PNGReader.read(path: text)) { error in
            XCTAssertEqual((error as? AnySizeError)?.kind, .unsupportedFormat)
            XCTAssertTrue("\(error)".contains(text))
        }
        assertThrows(try PNGReader.textChunks(path: text), mentioning: text)

        // A truncated PNG: header intact, image data cut.
        var random = TestRandom(state: 3)
        let full = try PNGWriter.encode(random.image(width: 40, height: 30), text: [(key: "parameters", value: "x")])
        let cut = folder + "/cut.png"
        XCTAssertTrue(FileManager.default.createFile(atPath: cut, contents: Data(full.prefix(full.count / 2))))
        assertThrows(try PNGReader.read(path: cut), mentioning: cut)
        assertThrows(try PNGReader.textChunks(path: cut), mentioning: cut)
        // A corrupted text chunk fails its CRC.
        var damaged = full
        damaged[45] ^= 0xFF  // inside the tEXt chunk that follows IHDR
        let bad = folder + "/bad-crc.png"
        XCTAssertTrue(FileManager.default.createFile(atPath: bad, contents: Data(damaged)))
        assertThrows(try PNGReader.textChunks(path: bad), mentioning: bad)
        // A folder is not a file.
        assertThrows(try PNGReader.read(path: folder), mentioning: folder)
    }
}
