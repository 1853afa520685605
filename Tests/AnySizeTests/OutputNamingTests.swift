import AnySize
import XCTest

/// Output file names: PNG only, batch and preview names that keep a relative path relative.
final class OutputNamingTests: XCTestCase {
    func testBatchAndPreviewNamesKeepTheFolderAsWritten() {
        XCTAssertEqual(GenerationMetadata.outputPath("out/cat.png", index: 0, count: 1), "out/cat.png")
        XCTAssertEqual(GenerationMetadata.outputPath("out/cat.png", index: 1, count: 3), "out/cat-2.png")
        XCTAssertEqual(GenerationMetadata.outputPath("cat.png", index: 0, count: 2), "cat-1.png")
        XCTAssertEqual(GenerationMetadata.outputPath("/tmp/a.b/cat.png", index: 0, count: 2), "/tmp/a.b/cat-1.png")
        XCTAssertEqual(GenerationMetadata.previewPath("out/cat.png", index: 0, count: 1, step: 7), "out/cat.step-07.png")
        XCTAssertEqual(GenerationMetadata.previewPath("cat.png", index: 1, count: 2, step: 12), "cat-2.step-12.png")
        XCTAssertEqual(GenerationMetadata.previewPath("anysize-42.png", index: 0, count: 1, step: 3), "anysize-42.step-03.png")
    }

    func testOnlyPNGNamesAreAccepted() throws {
        for name in ["cat.png", "out/cat.PNG", "/tmp/x.y/cat.png", "anysize-1.png"] {
            XCTAssertNoThrow(try GenerationMetadata.checkOutputName(name), name)
        }
        assertThrowsAnySizeError(try GenerationMetadata.checkOutputName("out/cat.jpg"),
                                 mentioning: ["--output out/cat.jpg", "PNG images only", "out/cat.png"], "jpg")
        assertThrowsAnySizeError(try GenerationMetadata.checkOutputName("cat"), mentioning: ["cat.png"], "no extension")
        assertThrowsAnySizeError(try GenerationMetadata.checkOutputName("out/.png"), mentioning: [".png"], "no stem")
        assertThrowsAnySizeError(try GenerationMetadata.checkOutputName("out/"), mentioning: ["out/image.png"], "folder")
    }
}
