import AnySize
import Foundation
import XCTest

/// Checkpoint loading errors that need no fixture model.
final class CheckpointTests: XCTestCase {
    private typealias Support = WeightsTestSupport

    func testMissingPath() throws {
        let path = "/nonexistent/anysize/model.safetensors"
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: path), mentioning: [path, "no such file or folder"], "missing")
    }

    /// `.ckpt` / `.pt` / `.pth` / `.bin` are refused with a conversion command naming the file and its output.
    func testPickleCheckpointsAreRefused() throws {
        let folder = try Support.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        for ext in ["ckpt", "pt", "pth", "bin", "CKPT"] {
            let url = folder.appendingPathComponent("model.\(ext)")
            try Data("not inspected".utf8).write(to: url)
            let output = folder.appendingPathComponent("model.safetensors").path
            assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: url.path), mentioning: [
                "\(url.path): pickle checkpoints can run arbitrary code when loaded; convert it to .safetensors first",
                "torch.load(\"\(url.path)\", map_location=\"cpu\", weights_only=True)", "\"\(output)\"",
            ], ext)
        }
        let other = folder.appendingPathComponent("model.onnx")
        try Data().write(to: other)
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: other.path),
                                 mentioning: [other.path, "unsupported file type '.onnx'"], "onnx")
    }

    func testFolderThatIsNotAModel() throws {
        let folder = try Support.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data("{}".utf8).write(to: folder.appendingPathComponent("config.json"))
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: folder.path),
                                 mentioning: [folder.path, "not a diffusers model folder (no model_index.json)"], "not a model")
        try Data("[]".utf8).write(to: folder.appendingPathComponent("model_index.json"))
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: folder.path),
                                 mentioning: [folder.appendingPathComponent("model_index.json").path, "not a JSON object"], "bad index")
    }

    /// A folder missing a component, a config, or weights names what is missing.
    func testIncompleteFolders() throws {
        let folder = try Support.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let fm = FileManager.default
        try Data("{\"_class_name\": \"StableDiffusionPipeline\"}".utf8).write(to: folder.appendingPathComponent("model_index.json"))
        for name in ["unet", "text_encoder", "tokenizer", "scheduler"] {
            try fm.createDirectory(at: folder.appendingPathComponent(name), withIntermediateDirectories: true)
        }
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: folder.path),
                                 mentioning: [folder.appendingPathComponent("vae").path, "missing", "download the vae/ folder"], "no vae")

        try fm.createDirectory(at: folder.appendingPathComponent("vae"), withIntermediateDirectories: true)
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: folder.path),
                                 mentioning: [folder.appendingPathComponent("unet/config.json").path, "missing"], "no config")

        for name in ["unet", "vae", "text_encoder"] {
            try Data("{}".utf8).write(to: folder.appendingPathComponent("\(name)/config.json"))
        }
        try Data("{\"prediction_type\": \"sample\"}".utf8).write(to: folder.appendingPathComponent("scheduler/scheduler_config.json"))
        try Data("{\"block_out_channels\": [32, 64".utf8).write(to: folder.appendingPathComponent("unet/config.json"))
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: folder.path),
                                 mentioning: [folder.appendingPathComponent("unet/config.json").path, "invalid config JSON"], "bad json")
        try Data("{\"block_out_channels\": \"wide\"}".utf8).write(to: folder.appendingPathComponent("unet/config.json"))
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: folder.path),
                                 mentioning: [folder.appendingPathComponent("unet/config.json").path, "block_out_channels"], "bad type")
        try Data("{}".utf8).write(to: folder.appendingPathComponent("unet/config.json"))
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: folder.path),
                                 mentioning: [folder.appendingPathComponent("scheduler/scheduler_config.json").path, "'sample' is not supported"],
                                 "prediction")

        try Data("{}".utf8).write(to: folder.appendingPathComponent("scheduler/scheduler_config.json"))
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: folder.path),
                                 mentioning: [folder.appendingPathComponent("tokenizer/vocab.json").path, "missing"], "tokenizer")
        for name in ["vocab.json", "merges.txt"] { try Data().write(to: folder.appendingPathComponent("tokenizer/\(name)")) }
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: folder.path),
                                 mentioning: [folder.appendingPathComponent("unet").path, "no weights (expected diffusion_pytorch_model.safetensors)"],
                                 "no weights")
        let pickle = folder.appendingPathComponent("unet/diffusion_pytorch_model.bin")
        try Data().write(to: pickle)
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: folder.path),
                                 mentioning: [pickle.path, "pickle checkpoints can run arbitrary code"], "pickle weights")
        let empty = folder.appendingPathComponent("unet/diffusion_pytorch_model.fp16.safetensors")
        try Data().write(to: empty)
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: folder.path),
                                 mentioning: [empty.path, "shorter than the 8-byte"], "empty weights")
    }

    /// Single files without the parts of an SD1/SD2 checkpoint are refused by what they lack.
    func testSingleFilesOfOtherKinds() throws {
        let folder = try Support.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let t = Tensor(shape: [2, 2], values: [1, 2, 3, 4])
        let lora = folder.appendingPathComponent("lora.safetensors").path
        try SafeTensorsWriter.write([("lora_unet_down_blocks_0.alpha", t)], to: lora)
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: lora),
                                 mentioning: [lora, "no UNet tensors", "not a Stable Diffusion 1.x/2.x checkpoint"], "lora")
        let unetOnly = folder.appendingPathComponent("unet-only.safetensors").path
        try SafeTensorsWriter.write([("model.diffusion_model.input_blocks.0.0.weight", t)], to: unetOnly)
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: unetOnly),
                                 mentioning: [unetOnly, "no VAE tensors"], "unet only")
        let noText = folder.appendingPathComponent("no-text.safetensors").path
        try SafeTensorsWriter.write([("model.diffusion_model.input_blocks.0.0.weight", t),
                                     ("first_stage_model.encoder.conv_in.weight", t)], to: noText)
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: noText),
                                 mentioning: [noText, "no text encoder tensors"], "no text encoder")
    }

    /// SDXL and other model types are refused by name rather than failing later on shapes.
    func testOtherModelTypesAreRefused() throws {
        let folder = try Support.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let index = folder.appendingPathComponent("model_index.json")
        try Data("{\"_class_name\": \"StableDiffusionXLPipeline\"}".utf8).write(to: index)
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: folder.path),
                                 mentioning: [index.path, "StableDiffusionXLPipeline models are not supported"], "sdxl folder")
        let t = Tensor(shape: [2], values: [1, 2])
        let sdxl = folder.appendingPathComponent("sdxl.safetensors").path
        try SafeTensorsWriter.write([("model.diffusion_model.input_blocks.0.0.weight", t),
                                     ("conditioner.embedders.0.transformer.text_model.final_layer_norm.weight", t)], to: sdxl)
        assertThrowsAnySizeError(try StableDiffusionCheckpoint.load(path: sdxl), mentioning: [sdxl, "an SDXL checkpoint"], "sdxl file")
    }

    func testPredictionTypeNames() {
        XCTAssertEqual(PredictionType(name: "epsilon"), .epsilon)
        XCTAssertEqual(PredictionType(name: "eps"), .epsilon)
        XCTAssertEqual(PredictionType(name: "v"), .vPrediction)
        XCTAssertEqual(PredictionType(name: "V_PREDICTION"), .vPrediction)
        XCTAssertNil(PredictionType(name: "sample"))
        XCTAssertEqual(PredictionType.vPrediction.rawValue, "v_prediction")
    }
}
