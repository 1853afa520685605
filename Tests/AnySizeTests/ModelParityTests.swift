import AnySize
import Foundation
import XCTest

/// Each submodel against diffusers / transformers on the tiny fixtures (tools/make_fixtures.py):
/// max-abs error <= 1e-4 * max(1, max|reference|). Cases with weights "single_file" load the single files alone
/// and compare with diffusers' from_single_file conversion of them, which checks the original -> diffusers key map.
final class ModelParityTests: XCTestCase {
    let tolerance: Float = 1e-4

    private func cases(_ component: String) throws -> [[String: Any]] {
        let all = try Fixtures.referenceCases().filter { $0["component"] as? String == component }
        XCTAssertFalse(all.isEmpty, "no reference cases for \(component)")
        return all
    }

    private func modelPaths(_ c: [String: Any]) throws -> String {
        let index = try Fixtures.referenceIndex()
        let models = index["models"] as? [String: [String: Any]] ?? [:]
        let model = c["model"] as? String ?? ""
        let entry = models[model] ?? [:]
        let key = (c["weights"] as? String) == "single_file" ? "single_file" : "folder"
        guard let rel = entry[key] as? String else { throw AnySizeError(.fileNotFound, "no \(key) for \(model)") }
        return rel
    }

    private func reference(_ c: [String: Any]) throws -> SafeTensorsFile {
        try SafeTensorsFile(path: try Fixtures.path("reference/" + (c["file"] as? String ?? "")))
    }

    func testTextEncoders() throws {
        for c in try cases("text_encoder") {
            let name = c["name"] as? String ?? "?"
            let checkpoint = try Fixtures.checkpoint(try modelPaths(c))
            let model = try CLIPTextModel(config: checkpoint.textConfig, parameters: checkpoint.textEncoder)
            let ids = c["input_ids"] as? [[Int]] ?? []
            let ref = try reference(c)
            let outputs = c["outputs"] as? [String: String] ?? [:]
            if let key = outputs["last_hidden_state"] {
                assertClose(try model(ids), try ref.tensor(key), tolerance: tolerance, "\(name) last_hidden_state")
            }
            if let key = outputs["penultimate_normed"] {
                assertClose(try model(ids, clipSkip: 2), try ref.tensor(key), tolerance: tolerance, "\(name) clip-skip 2")
            }
        }
    }

    func testUNet() throws {
        var models: [String: UNet2DConditionModel] = [:]
        for c in try cases("unet") {
            let name = c["name"] as? String ?? "?"
            let path = try modelPaths(c)
            let checkpoint = try Fixtures.checkpoint(path)
            let unet = try models[path] ?? UNet2DConditionModel(config: checkpoint.unetConfig, parameters: checkpoint.unet)
            models[path] = unet
            let ref = try reference(c)
            let inputs = c["inputs"] as? [String: String] ?? [:]
            let sample = try ref.tensor(inputs["sample"] ?? "")
            let context = try ref.tensor(inputs["encoder_hidden_states"] ?? "")
            let t = Float(c["timestep"] as? Double ?? Double(c["timestep"] as? Int ?? 0))
            let attention = AttentionContext(trainedLatentHeight: checkpoint.unetConfig.sampleSize,
                                             trainedLatentWidth: checkpoint.unetConfig.sampleSize)
            let out = unet(sample, timesteps: Array(repeating: t, count: sample.dim(0)), context: context, attention: attention)
            let outputs = c["outputs"] as? [String: String] ?? [:]
            assertClose(out, try ref.tensor(outputs["noise_pred"] ?? ""), tolerance: tolerance, name)
        }
    }

    func testVAEDecode() throws {
        for c in try cases("vae_decode") {
            let name = c["name"] as? String ?? "?"
            let checkpoint = try Fixtures.checkpoint(try modelPaths(c))
            let vae = try AutoencoderKL(config: checkpoint.vaeConfig, parameters: checkpoint.vae)
            let ref = try reference(c)
            let inputs = c["inputs"] as? [String: String] ?? [:]
            let outputs = c["outputs"] as? [String: String] ?? [:]
            let image = vae.decode(try ref.tensor(inputs["latents"] ?? ""))
            assertClose(image, try ref.tensor(outputs["sample"] ?? ""), tolerance: tolerance, name)
        }
    }

    func testVAEEncode() throws {
        for c in try cases("vae_encode") {
            let name = c["name"] as? String ?? "?"
            let checkpoint = try Fixtures.checkpoint(try modelPaths(c))
            let vae = try AutoencoderKL(config: checkpoint.vaeConfig, parameters: checkpoint.vae)
            let ref = try reference(c)
            let inputs = c["inputs"] as? [String: String] ?? [:]
            let outputs = c["outputs"] as? [String: String] ?? [:]
            let (mean, logvar) = vae.encode(try ref.tensor(inputs["image"] ?? ""))
            assertClose(mean, try ref.tensor(outputs["mean"] ?? ""), tolerance: tolerance, "\(name) mean")
            let std = logvar.copy()
            for i in 0 ..< std.count { std.pointer[i] = exp(0.5 * std.pointer[i]) }
            assertClose(std, try ref.tensor(outputs["std"] ?? ""), tolerance: tolerance, "\(name) std")
        }
    }
}
