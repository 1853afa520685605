import Foundation

/// A human-readable summary of a loaded checkpoint (`anysize info`).
public struct ModelInfo {
    public let checkpoint: StableDiffusionCheckpoint
    /// Longest list of ignored / unknown tensor names printed before summarising the rest.
    public var listLimit: Int

    /// Tensors of a component that its model did not take (`StableDiffusionPipeline.unusedTensors`), when known.
    public let unusedTensors: [String]?

    /// - Parameter unusedTensors: the pipeline's `unusedTensors` after building the models from `checkpoint`; the
    ///   report then lists what `generate` notes as unused.
    public init(_ checkpoint: StableDiffusionCheckpoint, unusedTensors: [String]? = nil, listLimit: Int = 20) {
        self.checkpoint = checkpoint
        self.unusedTensors = unusedTensors
        self.listLimit = listLimit
    }

    /// The report, one `key: value` line per fact, ending in a newline.
    public var report: String {
        let c = checkpoint
        var lines = [
            "model: \(c.path)",
            "layout: \(c.layout.displayName)",
            "family: \(c.family.displayName)",
            "prediction: \(c.predictionType.rawValue) (\(c.predictionSource))",
            "trained size: \(c.trainedSize.width)x\(c.trainedSize.height)",
            "tokenizer: \(Self.describe(c.tokenizer))",
        ]
        for component in ModelComponent.allCases {
            let store = c.store(component)
            let dtypes = (c.dtypeCounts[component] ?? [:]).sorted { $0.key < $1.key }
                .map { "\($0.value) \($0.key.rawValue)" }.joined(separator: ", ")
            lines.append("\(component.rawValue): \(Self.formatCount(store.parameterCount)) parameters in \(store.names.count) tensors (\(dtypes.isEmpty ? "none" : dtypes))")
        }
        lines.append("ignored tensors: \(list(c.ignoredTensors))")
        lines.append("unknown tensors: \(list(c.unknownTensors))")
        if let unusedTensors { lines.append("unused tensors: \(list(unusedTensors))") }
        return lines.joined(separator: "\n") + "\n"
    }

    private func list(_ names: [String]) -> String {
        guard !names.isEmpty else { return "none" }
        var text = "\(names.count): " + names.prefix(listLimit).joined(separator: ", ")
        if names.count > listLimit { text += ", ... (\(names.count - listLimit) more)" }
        return text
    }

    static func describe(_ source: TokenizerSource) -> String {
        switch source {
        case .folder(let url):
            let files = (try? TokenizerFiles.discover(in: url)).map { " (\($0.summary))" } ?? ""
            return "folder \(url.path)\(files)"
        case .bundled(let pad): return "bundled CLIP BPE, padding with \"\(pad)\""
        }
    }

    /// `1234567` -> `1,234,567 (1.23M)`.
    static func formatCount(_ n: Int) -> String {
        let grouped = String(n).reversed().enumerated()
            .map { $0.offset > 0 && $0.offset % 3 == 0 ? ",\($0.element)" : "\($0.element)" }
            .joined().reversed()
        let scaled: String
        switch n {
        case 1_000_000_000...: scaled = String(format: "%.2fB", Double(n) / 1e9)
        case 1_000_000...: scaled = String(format: "%.2fM", Double(n) / 1e6)
        case 1000...: scaled = String(format: "%.2fK", Double(n) / 1e3)
        default: return String(grouped)
        }
        return "\(String(grouped)) (\(scaled))"
    }
}
