import AnySize
import Foundation
import XCTest

/// `GenerationRequest.resolve()`: every check before any weights load, made once.
final class GenerationRequestTests: XCTestCase {
    private static let gb: UInt64 = 1 << 30

    private func request(_ folder: URL, model: String = "tiny-sd1") throws -> GenerationRequest {
        var options = GenerationOptions(prompt: "a cat", width: 512, height: 512, seed: 1)
        options.steps = 2
        var request = GenerationRequest(model: try Fixtures.path(model), options: options)
        request.imageOutput = folder.appendingPathComponent("out.png").path
        request.physicalMemory = 16 * Self.gb
        return request
    }

    private func folder() throws -> URL {
        let url = try WeightsTestSupport.temporaryFolder()
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func testCanvasDefaultsToTheTrainedSizeAndIsCheckedOnce() throws {
        let dir = try folder()
        let resolved = try request(dir).resolve()
        let trained = resolved.footprint.trainedSize
        XCTAssertEqual(resolved.options.width, trained.width)
        XCTAssertEqual(resolved.options.height, trained.height)
        XCTAssertEqual(resolved.estimate.peak, MemoryEstimate(model: resolved.footprint, options: resolved.options).peak)
        var explicit = try request(dir)
        explicit.width = 128
        explicit.height = 64
        XCTAssertEqual(try explicit.resolve().options.width, 128)
        explicit.width = -8
        assertThrowsAnySizeError(try explicit.resolve(), mentioning: ["--width -8", "multiple of 8"], "negative width")
        let resized = try explicit.resolve(widthOverride: 64)
        XCTAssertThrowsError(try resized.resized(width: 100, height: 64))
        XCTAssertEqual(try resized.resized(width: 192, height: 64, attention: .scaled).options.attention, .scaled)
    }

    /// A single SD2 v-prediction file is trained at 768 px: the footprint (and so the memory estimate and the
    /// default canvas) must say so, as the loader does.
    func testSingleFileSD2VPredictionFootprintUsesTheTrainedSize() throws {
        let path = try Fixtures.path("tiny-sd2.safetensors")
        let footprint = try ModelFootprint.read(path: path)
        let loaded = try StableDiffusionCheckpoint.load(path: path)
        XCTAssertEqual(loaded.predictionType, .vPrediction)
        XCTAssertEqual(footprint.trainedSize.width, loaded.trainedSize.width)
        XCTAssertEqual(footprint.trainedSize.width, 768)
        XCTAssertEqual(try ModelFootprint.read(path: path, prediction: .epsilon).trainedSize.width, 512)
    }

    func testValuesThatAreWrongOnlyAsFloatOrTooLargeAreRefused() throws {
        let dir = try folder()
        var r = try request(dir)
        r.options.cfgScale = 1e39
        assertThrowsAnySizeError(try r.resolve(), mentioning: ["--cfg-scale", "32-bit"], "cfg 1e39")
        r = try request(dir)
        r.strength = 0.5
        assertThrowsAnySizeError(try r.resolve(), mentioning: ["--strength", "--init-image"], "strength without init image")
        assertThrowsAnySizeError(try AttentionMemory.budget(megabytes: 999_999_999_999_999, physicalMemory: 16 * Self.gb),
                                 mentioning: ["--attention-memory 999999999999999 MB", "8192 MB"], "attention memory")
        XCTAssertEqual(try AttentionMemory.budget(megabytes: 256, physicalMemory: 16 * Self.gb), 256 << 20)
        r = try request(dir)
        r.options.attentionMemory = -5
        XCTAssertThrowsError(try r.resolve())
    }

    /// A batch of 10^9 (and 10^12) is refused by the estimate, which neither allocates per image nor overflows.
    func testHugeBatchesAreRefusedNotCrashed() throws {
        let dir = try folder()
        for batch in [1_000_000_000, 1_000_000_000_000, Int.max] {
            var r = try request(dir)
            r.width = 64
            r.height = 64
            r.options.batchSize = batch
            assertThrowsAnySizeError(try r.resolve(), mentioning: ["batch size \(batch)", "--batch-size 1"], "batch \(batch)")
        }
        let footprint = try ModelFootprint.read(path: try Fixtures.path("tiny-sd1"))
        for component in BenchmarkComponent.allCases {
            let options = BenchmarkOptions(component: component, width: 512, height: 512, batch: 1_000_000_000_000)
            assertThrowsAnySizeError(try options.checkMemory(model: footprint, physicalMemory: 16 * Self.gb),
                                     mentioning: ["bench", "1000000000000"], "bench \(component)")
            XCTAssertNoThrow(try BenchmarkOptions(component: component, width: 64, height: 64)
                .checkMemory(model: footprint, physicalMemory: 16 * Self.gb))
        }
        XCTAssertThrowsError(try BenchmarkOptions(component: .unet, width: 100_000, height: 100_000).validate())
    }

    /// Output paths are checked before the model is read, and never onto an input.
    func testOutputPathsAreCheckedBeforeLoading() throws {
        let dir = try folder()
        func refused(_ change: (inout GenerationRequest) throws -> Void, _ parts: [String], _ label: String) throws {
            var r = try request(dir)
            r.model = dir.appendingPathComponent("not-read-yet").path  // the output check comes first
            try change(&r)
            assertThrowsAnySizeError(try r.resolve(), mentioning: parts, label)
        }
        try refused({ $0.imageOutput = "" }, ["--output", "empty"], "empty")
        try refused({ $0.imageOutput = dir.path + "/" }, ["--output", "folder"], "trailing slash")
        try refused({ $0.imageOutput = dir.path }, ["--output", "is a folder"], "folder")
        try refused({ $0.imageOutput = "/proc/anysize-test.png" }, ["--output", "/proc"], "/proc")
        try refused({ $0.imageOutput = dir.appendingPathComponent("missing/out.png").path }, ["does not exist"], "missing folder")
        try refused({ $0.imageOutput = dir.appendingPathComponent(String(repeating: "n", count: 300) + ".png").path },
                    ["too long"], "name too long")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("batch-2.png"), withIntermediateDirectories: false)
        try refused({
            $0.imageOutput = dir.appendingPathComponent("batch.png").path
            $0.options.batchSize = 3
        }, ["batch-2.png", "is a folder"], "batch member is a folder")
        try refused({ $0.latentsOutput = dir.appendingPathComponent("l.bin").path }, [".safetensors"], "latents extension")

        // A long name still works: the temporary name is kept within the 255-byte limit.
        var long = try request(dir)
        long.width = 64
        long.height = 64
        long.imageOutput = dir.appendingPathComponent(String(repeating: "n", count: 236) + ".png").path
        XCTAssertNoThrow(try long.resolve())
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["batch-2.png"], "no probe left")
    }

    func testOutputsThatAreInputsAreRefused() throws {
        let dir = try folder()
        // A copy of the model, so that links to its files can be made in the temporary folder.
        let model = dir.appendingPathComponent("model")
        try FileManager.default.copyItem(atPath: try Fixtures.path("tiny-sd1"), toPath: model.path)
        let weights = model.appendingPathComponent("unet/diffusion_pytorch_model.safetensors").path
        let before = try Data(contentsOf: URL(fileURLWithPath: weights))
        let hardLink = dir.appendingPathComponent("hard.safetensors").path
        try FileManager.default.linkItem(atPath: weights, toPath: hardLink)
        let softLink = dir.appendingPathComponent("soft.safetensors").path
        try FileManager.default.createSymbolicLink(atPath: softLink, withDestinationPath: weights)
        let image = dir.appendingPathComponent("init.png").path
        try PNGWriter.write(RGBImage(width: 64, height: 64, pixels: [UInt8](repeating: 90, count: 64 * 64 * 3)), to: image)
        for (output, latents) in [(nil, weights), (nil, hardLink), (nil, softLink), (image, nil),
                                  (model.appendingPathComponent("model_index.json").path, nil)] {
            var r = try request(dir)
            r.model = model.path
            r.initImagePath = image
            r.imageOutput = output
            r.latentsOutput = latents
            assertThrowsAnySizeError(try r.resolve(), mentioning: ["input"], "\(output ?? latents ?? "")")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: weights)), before)
        var same = try request(dir)
        same.latentsOutput = dir.appendingPathComponent("x.safetensors").path
        same.imageOutput = same.latentsOutput
        assertThrowsAnySizeError(try same.resolve(), mentioning: ["both name"], "same output twice")
    }
}

extension GenerationRequest {
    /// `resolve()` with another width (tests).
    func resolve(widthOverride: Int) throws -> ResolvedGeneration {
        var r = self
        r.width = widthOverride
        r.height = 64
        return try r.resolve()
    }
}
