import AnySize
import Foundation

/// A model the server can load: A1111's `sd-models` entry.
struct ModelEntry: Sendable, Equatable {
    /// A1111's `title`: the folder or file name (`tiny-sd1`, `v1-5.safetensors`).
    let name: String
    /// Absolute path.
    let path: String

    init(path: String) {
        let url = URL(fileURLWithPath: path).standardizedFileURL
        self.path = url.path
        name = url.lastPathComponent
    }
}

/// The models `--model` and `--models-dir` offer.
struct ModelCatalog: Sendable {
    let entries: [ModelEntry]

    init(modelPath: String, modelsDirectory: String?) {
        var entries = [ModelEntry(path: modelPath)]
        if let dir = modelsDirectory {
            let fm = FileManager.default
            let names = ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).sorted()
            for name in names where !name.hasPrefix(".") {
                let path = URL(fileURLWithPath: dir).appendingPathComponent(name).path
                var isDirectory: ObjCBool = false
                guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
                let isModel = isDirectory.boolValue ? fm.fileExists(atPath: path + "/model_index.json") : name.hasSuffix(".safetensors")
                let entry = ModelEntry(path: path)
                if isModel && !entries.contains(entry) { entries.append(entry) }
            }
        }
        self.entries = entries
    }

    /// The entry A1111 clients name by title, model name, file name or path (titles may carry " [hash]").
    func entry(named text: String) -> ModelEntry? {
        let name = text.replacingOccurrences(of: #"\s*\[[0-9a-fA-F]+\]$"#, with: "", options: .regularExpression)
        return entries.first { $0.name == name || $0.path == name }
    }
}
