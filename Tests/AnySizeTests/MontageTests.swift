import AnySize
import Foundation
import XCTest

/// `Montage` (the `anysize montage` grid): layout, pixels, labels, and its input checks.
final class MontageTests: XCTestCase {
    func solid(_ width: Int, _ height: Int, _ rgb: [UInt8]) -> RGBImage {
        RGBImage(width: width, height: height, pixels: Array((0 ..< width * height).map { _ in rgb }.joined()))
    }

    /// Panels are as wide as the wider of image and label, images top-aligned below the label strip and centred.
    func testLayoutPlacesImagesBelowTheirLabels() throws {
        let red = solid(4, 4, [255, 0, 0]), blue = solid(6, 3, [0, 0, 255])
        // Labels at scale 1: "a" is 5 px wide, "bb" 11 px; gap 2; strip 9 + 2 rows.
        let m = try Montage.make([red, blue], labels: ["a", "bb"], gap: 2, labelScale: 1)
        XCTAssertEqual([m.width, m.height], [2 + 5 + 2 + 11 + 2, 2 + 11 + 4 + 2])
        XCTAssertEqual([m[2, 13, 0], m[2, 13, 1], m[2, 13, 2]], [255, 0, 0])  // red's top-left: x 2 + (5 - 4) / 2
        XCTAssertEqual([m[5, 16, 0], m[6, 16, 0]], [255, 255])  // red's last column is x 5, then white
        XCTAssertEqual([m[6, 16, 1]], [255])
        XCTAssertEqual([m[11, 13, 0], m[11, 13, 2]], [0, 255])  // blue's top-left: x 9 + (11 - 6) / 2
        XCTAssertEqual([m[16, 15, 2], m[16, 16, 0]], [255, 255])  // blue's last row is 15; below it white
        XCTAssertEqual(m[16, 16, 1], 255)
        // The label strip holds black glyph pixels, the image area none outside the images.
        let stripBlack = (0 ..< 11).contains { y in (0 ..< m.width).contains { x in m[x, y + 2, 0] == 0 && m[x, y + 2, 2] == 0 } }
        XCTAssertTrue(stripBlack)
        XCTAssertEqual(m[0, 0, 0], 255)
        // No labels: no strip.
        let plain = try Montage.make([red, blue], gap: 1)
        XCTAssertEqual([plain.width, plain.height], [1 + 4 + 1 + 6 + 1, 1 + 4 + 1])
        XCTAssertEqual(plain[7, 1, 2], 255)
        XCTAssertEqual(plain[7, 1, 0], 0)
    }

    func testBadArgumentsAreRejectedWithTheReason() {
        let image = solid(2, 2, [0, 0, 0]), wide = solid(20_000, 1, [0, 0, 0])
        let cases: [(() throws -> RGBImage, String)] = [
            ({ try Montage.make([]) }, "at least one image"),
            ({ try Montage.make([image, image], labels: ["one"]) }, "1 label(s) for 2 image(s)"),
            ({ try Montage.make([image], labels: ["café"]) }, "printable ASCII"),
            ({ try Montage.make([image], gap: -1) }, "gap -1"),
            ({ try Montage.make([image], labelScale: 0) }, "label scale 0"),
            ({ try Montage.make(Array(repeating: wide, count: 4)) }, "at most 65536"),
        ]
        for (call, expected) in cases {
            XCTAssertThrowsError(try call()) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error)")
            }
        }
    }

    /// Files: a round trip through PNG, the output may not be an input, a missing input names the file.
    func testWriteReadsAndWritesPNGsAndKeepsInputs() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("anysize-montage-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let a = folder + "/a.png", b = folder + "/b.png", out = folder + "/grid.png"
        try PNGWriter.write(solid(3, 5, [10, 200, 30]), to: a)
        try PNGWriter.write(solid(7, 2, [90, 80, 70]), to: b)
        try Montage.write(inputs: [a, b], labels: ["x", "y"], output: out)
        let expected = try Montage.make([try PNGReader.read(path: a), try PNGReader.read(path: b)], labels: ["x", "y"])
        XCTAssertEqual(try PNGReader.read(path: out), expected)
        let before = try FileIO.readBytes(path: a)
        XCTAssertThrowsError(try Montage.write(inputs: [a, b], output: a)) { error in
            XCTAssertTrue("\(error)".contains("destroy the input"), "\(error)")
        }
        XCTAssertEqual(try FileIO.readBytes(path: a), before)
        XCTAssertThrowsError(try Montage.write(inputs: [a, folder + "/missing.png"], output: folder + "/g2.png")) { error in
            XCTAssertTrue("\(error)".contains("missing.png"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/g2.png"))
    }
}
