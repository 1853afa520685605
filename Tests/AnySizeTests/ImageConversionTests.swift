import AnySize
import Foundation
import XCTest

final class ImageConversionTests: XCTestCase {
    /// diffusers `VaeImageProcessor.postprocess(..., output_type="pil")`, value for value.
    func testPostprocessMatchesDiffusers() throws {
        let reference = try PreviewReference.section("postprocess")
        let decoded = try PreviewReference.tensor(reference["decoded"])  // [2, 3, 4, 5]
        let images = try XCTUnwrap(reference["images"] as? [[Int]])
        for index in 0 ..< 2 {
            let image = ImageConversion.image(fromDecoded: decoded, index: index)
            XCTAssertEqual(image.width, 5)
            XCTAssertEqual(image.height, 4)
            XCTAssertEqual(image.pixels.map(Int.init), images[index], "batch element \(index)")
        }
        XCTAssertEqual(ImageConversion.byte(fromSigned: 0), 128, "127.5 rounds half to even")
        XCTAssertEqual(ImageConversion.byte(fromSigned: -3), 0)
        XCTAssertEqual(ImageConversion.byte(fromSigned: 3), 255)
        XCTAssertEqual(ImageConversion.byte(fromSigned: .nan), 0)
    }

    /// diffusers `VaeImageProcessor(do_resize=False).preprocess(pil_image)`.
    func testPreprocessMatchesDiffusers() throws {
        let reference = try PreviewReference.section("preprocess")
        let width = try XCTUnwrap(reference["width"] as? Int), height = try XCTUnwrap(reference["height"] as? Int)
        let image = RGBImage(width: width, height: height, pixels: try PreviewReference.bytes(reference["pixels"]))
        let tensor = ImageConversion.tensor(from: image)
        let expected = try PreviewReference.tensor(reference["tensor"])
        XCTAssertEqual(tensor.shape, [1, 3, height, width])
        XCTAssertEqual(maxAbsDifference(tensor, expected), 0)
        // And back: the postprocess of a preprocessed image is the image.
        XCTAssertEqual(ImageConversion.image(fromDecoded: tensor, index: 0), image)
    }

    /// PIL's `Image.resize(size, Image.LANCZOS)` (diffusers' resample for init images), horizontal pass first.
    func testLanczosResizeMatchesPIL() throws {
        let reference = try PreviewReference.section("lanczos")
        let source = RGBImage(width: try XCTUnwrap(reference["width"] as? Int), height: try XCTUnwrap(reference["height"] as? Int),
                              pixels: try PreviewReference.bytes(reference["pixels"]))
        let cases = try XCTUnwrap(reference["cases"] as? [[String: Any]])
        XCTAssertFalse(cases.isEmpty)
        for entry in cases {
            let width = try XCTUnwrap(entry["width"] as? Int), height = try XCTUnwrap(entry["height"] as? Int)
            let expected = try PreviewReference.bytes(entry["pixels"])
            let resized = ImageConversion.resize(source, width: width, height: height)
            XCTAssertEqual(resized.width, width)
            XCTAssertEqual(resized.height, height)
            let worst = zip(resized.pixels, expected).map { abs(Int($0) - Int($1)) }.max() ?? -1
            let direct = entry["direct_max_difference"] as? Int ?? -1
            print("Lanczos \(source.width)x\(source.height) -> \(width)x\(height): max difference from PIL \(worst) (PIL's own pass-order change: \(direct))")
            XCTAssertEqual(worst, 0, "\(width)x\(height)")
        }
    }

    func testResizeSanity() {
        // A constant image stays constant at any size.
        let constant = RGBImage(width: 11, height: 6, pixels: (0 ..< 66).flatMap { _ in [200, 17, 90] as [UInt8] })
        for (w, h) in [(11, 6), (23, 13), (5, 3), (1, 1), (64, 2)] {
            let out = ImageConversion.resize(constant, width: w, height: h)
            XCTAssertEqual(out.pixels, (0 ..< w * h).flatMap { _ in [200, 17, 90] as [UInt8] }, "\(w)x\(h)")
        }
        // Same size is the identity.
        var random = TestRandom(state: 5)
        let image = random.image(width: 9, height: 4)
        XCTAssertEqual(ImageConversion.resize(image, width: 9, height: 4), image)
        // A left-dark / right-bright image keeps that order after resizing.
        var ramp = RGBImage(width: 16, height: 4)
        for y in 0 ..< 4 { for x in 8 ..< 16 { for c in 0 ..< 3 { ramp[x, y, c] = 255 } } }
        let small = ImageConversion.resize(ramp, width: 6, height: 3)
        XCTAssertLessThan(small[0, 1, 0], 10)
        XCTAssertGreaterThan(small[5, 1, 0], 245)
    }
}
