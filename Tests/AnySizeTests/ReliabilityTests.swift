import AnySize
import Foundation
import XCTest

/// Inputs not made by this project's tools, and hostile ones (issue 12): folders saved by today's libraries,
/// insane configs, damaged weights, and file writes that must not destroy anything. docs/RELIABILITY.md lists them.
final class ReliabilityTests: XCTestCase {
    private func folder() throws -> URL {
        let url = try WeightsTestSupport.temporaryFolder()
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// A copy of a fixture folder in a temporary folder, for mutation.
    private func copy(_ fixture: String, into dir: URL) throws -> URL {
        let target = dir.appendingPathComponent(fixture)
        try FileManager.default.copyItem(atPath: try Fixtures.path(fixture), toPath: target.path)
        return target
    }

    /// Rewrites one key of a JSON file.
    private func edit(_ file: URL, _ key: String, _ value: Any) throws {
        var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
        object[key] = value
        try JSONSerialization.data(withJSONObject: object).write(to: file)
    }

    // MARK: - Folders saved by current diffusers / transformers

    func testFolderWithOnlyTokenizerJSONLoadsAndSaysSo() throws {
        let saved = try Fixtures.path("tiny-sd1-saved")
        let files = try FileManager.default.contentsOfDirectory(atPath: saved + "/tokenizer").sorted()
        XCTAssertEqual(files, ["tokenizer.json", "tokenizer_config.json"], "the fixture is what transformers 5 writes")
        let checkpoint = try StableDiffusionCheckpoint.load(path: saved)
        let pipeline = try StableDiffusionPipeline(checkpoint: checkpoint)
        let original = try Fixtures.pipeline("tiny-sd1")
        for prompt in ["a photo of a cat", "Hello, WORLD! 123 ümlaut"] {
            XCTAssertEqual(pipeline.tokenizer.tokenize(prompt), original.tokenizer.tokenize(prompt), prompt)
        }
        XCTAssertTrue(ModelInfo(checkpoint).report.contains("(tokenizer.json)"))
        XCTAssertTrue(ModelInfo(try Fixtures.checkpoint("tiny-sd1")).report.contains("(vocab.json + merges.txt)"))
        // The footprint reads the same files as the loader.
        let footprint = try ModelFootprint.read(path: saved)
        XCTAssertEqual(footprint.parameterCount, ModelFootprint(checkpoint).parameterCount)
        XCTAssertEqual(footprint.trainedSize.width, checkpoint.trainedSize.width)
    }

    func testIncompleteTokenizerNamesBothForms() throws {
        let model = try copy("tiny-sd1", into: try folder())
        try FileManager.default.removeItem(at: model.appendingPathComponent("tokenizer/merges.txt"))
        for load in [{ _ = try StableDiffusionCheckpoint.load(path: model.path) }, { _ = try ModelFootprint.read(path: model.path) }] {
            assertThrowsAnySizeError(try load(), mentioning: ["tokenizer.json", "merges.txt"], "incomplete tokenizer")
        }
    }

    // MARK: - Configs

    func testInsaneConfigValuesAreRefusedNamingFileAndKey() throws {
        let dir = try folder()
        let cases: [(String, String, Any)] = [
            ("unet/config.json", "sample_size", 0), ("unet/config.json", "sample_size", -64),
            ("unet/config.json", "sample_size", 1_000_000), ("unet/config.json", "block_out_channels", [1_000_000_000_000, 16, 16, 32]),
            ("unet/config.json", "norm_num_groups", 7), ("vae/config.json", "norm_num_groups", 3),
            ("vae/config.json", "block_out_channels", [8, 16, 16, 1_000_000_000_000]),
            ("text_encoder/config.json", "num_attention_heads", 3),
            ("scheduler/scheduler_config.json", "beta_start", 0), ("scheduler/scheduler_config.json", "beta_end", 1.5),
            ("scheduler/scheduler_config.json", "num_train_timesteps", 1_000_000_000),
        ]
        for (index, (file, key, value)) in cases.enumerated() {
            let model = dir.appendingPathComponent("m\(index)")
            try FileManager.default.copyItem(atPath: try Fixtures.path("tiny-sd1"), toPath: model.path)
            try edit(model.appendingPathComponent(file), key, value)
            assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: model.path), mentioning: [file, key], "\(file) \(key)")
            if !file.hasPrefix("scheduler"), !file.hasPrefix("text") {
                assertThrowsAnySizeError(try ModelFootprint.read(path: model.path), mentioning: [file, key], "footprint \(file) \(key)")
            }
        }
    }

    func testLDMConfigThatIsGarbageOrNotEpsOrVIsRefused() throws {
        let dir = try folder()
        let file = dir.appendingPathComponent("model.safetensors")
        try FileManager.default.copyItem(atPath: try Fixtures.path("tiny-sd1.safetensors"), toPath: file.path)
        let yaml = dir.appendingPathComponent("model.yaml")
        let original = try String(contentsOfFile: try Fixtures.path("tiny-sd2.yaml"), encoding: .utf8)
        for (text, named) in [("\u{1}\u{2}garbage{[}]\n: : :\n", "not an LDM config"),
                              (original.replacingOccurrences(of: "parameterization: \"v\"", with: "parameterization: \"x-pred\""), "'x-pred'")] {
            try text.write(to: yaml, atomically: true, encoding: .utf8)
            assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: file.path), mentioning: [yaml.path, named], named)
            assertThrowsAnySizeError(try ModelFootprint.read(path: file.path), mentioning: [yaml.path, named], "footprint \(named)")
        }
    }

    // MARK: - Safetensors files

    /// A safetensors file from raw header JSON and data bytes.
    private func rawFile(_ header: String, data: [UInt8], in dir: URL, name: String = "raw.safetensors") throws -> String {
        var bytes = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) }
        bytes += Array(header.utf8) + data
        let url = dir.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    func testDuplicateHeaderKeysAreRefused() throws {
        let dir = try folder()
        let one = #"{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#
        let path = try rawFile(#"{"a":\#(one),"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: [UInt8](repeating: 0, count: 8), in: dir)
        assertThrowsAnySizeError(try SafeTensorsFile(path: path), mentioning: [path, "'a' twice"], "duplicate tensor")
        let escaped = try rawFile(#"{"a":\#(one),"\u0061":\#(one)}"#, data: [UInt8](repeating: 0, count: 4), in: dir, name: "e.safetensors")
        assertThrowsAnySizeError(try SafeTensorsFile(path: escaped), mentioning: ["'a' twice"], "escaped duplicate")
        let inner = try rawFile(#"{"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0], in: dir, name: "i.safetensors")
        assertThrowsAnySizeError(try SafeTensorsFile(path: inner), mentioning: ["'dtype' twice"], "duplicate field")
        // Equal strings as values are not keys.
        let values = try rawFile(#"{"__metadata__":{"x":"a","y":"a"},"a":\#(one)}"#, data: [0, 0, 0, 0], in: dir, name: "v.safetensors")
        XCTAssertNoThrow(try SafeTensorsFile(path: values))
    }

    func testNonFiniteWeightsAreRefusedNamingTheTensor() throws {
        let dir = try folder()
        // The models take their weights when built: the tensor is named then (raw files may hold any value).
        let model = try copy("tiny-sd1", into: dir)
        let vaeFile = model.appendingPathComponent("vae/diffusion_pytorch_model.safetensors")
        let vae = try SafeTensorsFile(path: vaeFile.path)
        var tensors = try vae.names.map { ($0, try vae.tensor($0)) }
        let target = try XCTUnwrap(tensors.firstIndex { $0.0 == "decoder.conv_out.bias" })
        tensors[target].1.pointer[1] = .infinity
        try SafeTensorsWriter.write(tensors, to: vaeFile.path)
        let checkpoint = try StableDiffusionCheckpoint.load(path: model.path)
        assertThrowsAnySizeError(try StableDiffusionPipeline(checkpoint: checkpoint),
                                 mentioning: ["vae tensor 'decoder.conv_out.bias'", "inf", "element 1"], "inf")
        tensors[target].1.pointer[1] = .nan
        try SafeTensorsWriter.write(tensors, to: vaeFile.path)
        assertThrowsAnySizeError(try StableDiffusionPipeline(checkpoint: try StableDiffusionCheckpoint.load(path: model.path)),
                                 mentioning: ["'decoder.conv_out.bias'", "nan"], "NaN")
        XCTAssertNoThrow(try SafeTensorsFile(path: vaeFile.path).tensor("decoder.conv_out.bias"), "a raw read returns what is stored")
    }

    /// `info` lists the same unused tensors that `generate` notes.
    func testInfoAndGenerateAgreeOnUnusedTensors() throws {
        let model = try copy("tiny-sd1", into: try folder())
        let unetFile = model.appendingPathComponent("unet/diffusion_pytorch_model.safetensors")
        let unet = try SafeTensorsFile(path: unetFile.path)
        let tensors = try unet.names.map { ($0, try unet.tensor($0)) } + [("stray.weight", Tensor(shape: [2], values: [1, 2]))]
        try SafeTensorsWriter.write(tensors, to: unetFile.path)
        let checkpoint = try StableDiffusionCheckpoint.load(path: model.path)
        let pipeline = try StableDiffusionPipeline(checkpoint: checkpoint)
        XCTAssertEqual(pipeline.unusedTensors, ["unet: stray.weight"])
        let report = ModelInfo(checkpoint, unusedTensors: pipeline.unusedTensors).report
        XCTAssertTrue(report.contains("unused tensors: 1: unet: stray.weight"), report)
    }

    // MARK: - Generation

    func testLongPromptsAreNotedAndNonFiniteLatentsRefused() throws {
        let pipeline = try Fixtures.pipeline("tiny-sd1")
        var options = GenerationOptions(prompt: Array(repeating: "a red cube on a table", count: 20).joined(separator: ", "),
                                        width: 64, height: 64, seed: 3)
        options.steps = 1
        var notices: [String] = []
        _ = try pipeline.generate(options) { if case .notice(let text) = $0 { notices.append(text) } }
        XCTAssertTrue(notices.contains { $0.contains("longer than CLIP's 75") && $0.contains("windows") }, "\(notices)")
        options.prompt = "a cat"
        options.cfgScale = 3e38  // finite as a Float, but the guided output overflows
        assertThrowsAnySizeError(try pipeline.generate(options), mentioning: ["NaN or infinite", "--cfg-scale"], "overflowing guidance")
    }

    // MARK: - Writing files

    func testWritesGoThroughLinksDevicesAndFIFOsAndNeverReplaceThem() throws {
        let dir = try folder()
        let bytes: [UInt8] = Array("new".utf8)
        // A character device is written to, not replaced by a file.
        try FileIO.writeAtomically(bytes, to: "/dev/null")
        var info = stat()
        XCTAssertEqual(stat("/dev/null", &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFCHR, "/dev/null is still a device")
        // A symbolic link: the file it points to gets the data, the link stays.
        let target = dir.appendingPathComponent("target.png"), link = dir.appendingPathComponent("link.png")
        try Data("old".utf8).write(to: target)
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: target)
        try FileIO.writeAtomically(bytes, to: link.path)
        XCTAssertEqual(try String(contentsOf: target, encoding: .utf8), "new")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: link.path), target.path)
        // A FIFO is written through (a reader drains it).
        let fifo = dir.appendingPathComponent("fifo")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        let reader = Thread {  // reads until the writer closes (an early close would send the writer SIGPIPE)
            let fd = open(fifo.path, O_RDONLY)
            var buffer = [UInt8](repeating: 0, count: 64)
            while fd >= 0 && read(fd, &buffer, buffer.count) > 0 {}
            if fd >= 0 { close(fd) }
        }
        reader.start()
        try FileIO.writeAtomically(bytes, to: fifo.path)
        XCTAssertEqual(lstat(fifo.path, &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFIFO, "the FIFO is still a FIFO")
        // A folder, a dangling link: refused, nothing left behind.
        assertThrowsAnySizeError(try FileIO.writeAtomically(bytes, to: dir.path), mentioning: ["is a folder"], "folder")
        let dangling = dir.appendingPathComponent("dangling.png")
        try FileManager.default.createSymbolicLink(atPath: dangling.path, withDestinationPath: dir.appendingPathComponent("nowhere").path)
        assertThrowsAnySizeError(try FileIO.writeAtomically(bytes, to: dangling.path), mentioning: ["missing file"], "dangling")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(),
                       ["dangling.png", "fifo", "link.png", "target.png"])
    }

    /// A temporary file being written is registered for removal on SIGINT/SIGTERM, and unregistered after.
    func testTemporaryFilesAreRegisteredWhileWritten() throws {
        let dir = try folder()
        let path = dir.appendingPathComponent("out.bin").path
        var seen: [String] = []
        try FileIO.write(to: path) { sink in
            seen = TemporaryFiles.registered
            try [UInt8(1)].withUnsafeBytes { try sink($0) }
        }
        XCTAssertEqual(seen.count, 1)
        XCTAssertTrue(seen.first.map { $0.hasPrefix(dir.path + "/.out.bin.") && $0.hasSuffix(".tmp") } ?? false, "\(seen)")
        XCTAssertEqual(TemporaryFiles.registered, [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: seen.first ?? ""))
    }
}
