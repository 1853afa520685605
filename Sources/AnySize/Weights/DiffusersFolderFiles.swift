import Foundation

/// Which files of a transformers tokenizer folder are read.
public enum TokenizerFiles: Equatable, Sendable {
    /// `tokenizer.json` (what transformers 5 saves; preferred when present).
    case tokenizerJSON(URL)
    /// `vocab.json` + `merges.txt` (what transformers 4 and most hub SD folders have).
    case vocabAndMerges(vocab: URL, merges: URL)

    /// The form found in `folder`: `tokenizer.json` if present, else `vocab.json` + `merges.txt`.
    /// - Throws: `.fileNotFound` naming the first missing file of the second form (and the first form).
    public static func discover(in folder: URL) throws -> TokenizerFiles {
        let fm = FileManager.default
        let json = folder.appendingPathComponent("tokenizer.json")
        if fm.fileExists(atPath: json.path) { return .tokenizerJSON(json) }
        let vocab = folder.appendingPathComponent("vocab.json"), merges = folder.appendingPathComponent("merges.txt")
        if let missing = [vocab, merges].first(where: { !fm.fileExists(atPath: $0.path) }) {
            throw AnySizeError(.fileNotFound,
                "\(missing.path): missing, and there is no tokenizer.json; the tokenizer folder is incomplete, "
                + "download tokenizer/tokenizer.json (or vocab.json and merges.txt) too")
        }
        return .vocabAndMerges(vocab: vocab, merges: merges)
    }

    /// "tokenizer.json" or "vocab.json + merges.txt", for reports.
    public var summary: String {
        switch self {
        case .tokenizerJSON: return "tokenizer.json"
        case .vocabAndMerges: return "vocab.json + merges.txt"
        }
    }
}

/// The files of a diffusers pipeline folder, found in one place for the loader (`DiffusersFolder`), the memory
/// footprint (`ModelFootprint`) and `anysize info`, so that they cannot disagree about what a folder holds.
struct DiffusersFolderFiles {
    /// How one component's weights are stored.
    enum Weights {
        /// One `.safetensors` file (plain or the `fp16` variant).
        case single(URL)
        /// Shards listed by a `*.safetensors.index.json`.
        case sharded(index: URL)
    }

    let root: URL
    let modelIndex: URL
    /// `model_index.json`'s `_class_name`.
    let pipelineClass: String
    let unetConfig: URL
    let vaeConfig: URL
    let textConfig: URL
    let schedulerConfig: URL
    let tokenizerFolder: URL

    /// Checks the folder's layout: `model_index.json` (a JSON object naming an SD 1.x/2.x pipeline) and the five
    /// component folders. The tokenizer files and the weights are found by `tokenizer()` and `weights(_:)`, which
    /// the loader calls in its own order (so the first defect it meets is the one reported).
    /// - Throws: one-line `AnySizeError` naming the missing or unsupported file.
    static func discover(_ path: String) throws -> DiffusersFolderFiles {
        let root = URL(fileURLWithPath: path)
        let fm = FileManager.default
        let modelIndex = root.appendingPathComponent("model_index.json")
        guard fm.fileExists(atPath: modelIndex.path) else {
            throw AnySizeError(.notAModel,
                "\(path): not a diffusers model folder (no model_index.json); pass a folder with model_index.json, unet/, vae/, text_encoder/, tokenizer/ and scheduler/, or a .safetensors file")
        }
        guard let data = fm.contents(atPath: modelIndex.path),
              let index = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw AnySizeError(.corruptFile, "\(modelIndex.path): not a JSON object; fix or re-download the file")
        }
        let pipelineClass = index["_class_name"] as? String ?? ""
        guard !pipelineClass.hasPrefix("StableDiffusionXL"), !pipelineClass.hasPrefix("StableDiffusion3") else {
            throw AnySizeError(.unsupportedConfig, "\(modelIndex.path): \(pipelineClass) models are not supported; use a Stable Diffusion 1.x or 2.x model")
        }
        for folder in ["unet", "vae", "text_encoder", "tokenizer", "scheduler"] {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: root.appendingPathComponent(folder).path, isDirectory: &isDirectory),
                  isDirectory.boolValue else {
                throw AnySizeError(.missingComponent,
                    "\(root.appendingPathComponent(folder).path): missing; the model folder is incomplete, download the \(folder)/ folder too")
            }
        }
        return DiffusersFolderFiles(
            root: root, modelIndex: modelIndex, pipelineClass: pipelineClass,
            unetConfig: root.appendingPathComponent("unet/config.json"), vaeConfig: root.appendingPathComponent("vae/config.json"),
            textConfig: root.appendingPathComponent("text_encoder/config.json"),
            schedulerConfig: root.appendingPathComponent("scheduler/scheduler_config.json"),
            tokenizerFolder: root.appendingPathComponent("tokenizer"))
    }

    /// The tokenizer files (`TokenizerFiles.discover`).
    func tokenizer() throws -> TokenizerFiles { try TokenizerFiles.discover(in: tokenizerFolder) }

    /// How `component`'s weights are stored.
    func weights(_ component: ModelComponent) throws -> Weights {
        try Self.findWeights(root.appendingPathComponent(component.rawValue),
                             baseName: component == .textEncoder ? "model" : "diffusion_pytorch_model")
    }

    /// A component's weights: `B.safetensors`, else the sharded `B.safetensors.index.json`, else the `fp16`
    /// variants of both; pickle files (`.bin`) are refused.
    private static func findWeights(_ folder: URL, baseName: String) throws -> Weights {
        let fm = FileManager.default
        let candidates = ["\(baseName).safetensors", "\(baseName).safetensors.index.json",
                          "\(baseName).fp16.safetensors", "\(baseName).safetensors.index.fp16.json"]
        guard let found = candidates.first(where: { fm.fileExists(atPath: folder.appendingPathComponent($0).path) }) else {
            let pickles = ["\(baseName).bin", "\(baseName).fp16.bin", "pytorch_model.bin", "\(baseName).ckpt"]
            if let pickle = pickles.first(where: { fm.fileExists(atPath: folder.appendingPathComponent($0).path) }) {
                throw StableDiffusionCheckpoint.pickleRefusal(folder.appendingPathComponent(pickle).path)
            }
            throw AnySizeError(.missingComponent,
                "\(folder.path): no weights (expected \(baseName).safetensors); the model folder is incomplete")
        }
        let url = folder.appendingPathComponent(found)
        return found.hasSuffix(".json") ? .sharded(index: url) : .single(url)
    }

    /// The shard map of a `*.safetensors.index.json`: tensor name -> shard file in the same folder.
    /// - Throws: for a shard name that leaves the folder.
    static func shardMap(_ index: URL) throws -> [String: String] {
        struct ShardIndex: Decodable {
            let weightMap: [String: String]
            enum CodingKeys: String, CodingKey { case weightMap = "weight_map" }
        }
        let map = try StableDiffusionCheckpoint.decodeConfig(ShardIndex.self, at: index).weightMap
        for shard in Set(map.values) where shard.contains("/") || shard.hasPrefix(".") {
            throw AnySizeError(.corruptFile, "\(index.path): shard name '\(shard)' must be a file name in the same folder")
        }
        return map
    }

    /// Every safetensors file of `component` (one, or the shards in name order).
    func files(_ component: ModelComponent) throws -> [URL] {
        switch try weights(component) {
        case .single(let url): return [url]
        case .sharded(let index): return Set(try Self.shardMap(index).values).sorted()
            .map { index.deletingLastPathComponent().appendingPathComponent($0) }
        }
    }
}
