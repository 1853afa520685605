import Foundation

/// What `AttentionReport.run` compares: one sampling run per (size, formulation), all with the same prompt, seed,
/// steps and sampler (METHODS.md, "Diagnostics the article relies on").
public struct AttentionReportOptions: Sendable {
    public var prompt: String
    public var negativePrompt: String = ""
    /// Canvases in pixels, in the order given.
    public var sizes: [(width: Int, height: Int)]
    /// Formulations, in the order given (`auto` resolves per size).
    public var modes: [AttentionMode]
    public var steps: Int = 20
    public var seed: UInt64 = 0
    public var cfgScale: Double = 7.5
    public var sampler: SamplerKind = .dpmpp2m
    public var karras: Bool = true
    public var localEdge: Int = 0
    /// The trained canvas in pixels; nil = the model's own.
    public var trainedSize: (width: Int, height: Int)? = nil
    /// Scratch-memory bound of the attention kernel, in bytes.
    public var attentionMemory: Int = 1 << 30
    /// How the prompts are read (A1111 emphasis syntax or plain text).
    public var promptSyntax: PromptSyntax = .a1111

    public init(prompt: String, sizes: [(width: Int, height: Int)], modes: [AttentionMode]) {
        self.prompt = prompt
        self.sizes = sizes
        self.modes = modes
    }

    /// Parses a comma list of `WxH` canvases, each a multiple of 8 from 64 to 4096; duplicates are dropped.
    /// - Throws: a one-line `AnySizeError(.invalidArgument)` naming the value at fault.
    public static func parseSizes(_ text: String, flag: String = "--sizes") throws -> [(width: Int, height: Int)] {
        var sizes: [(width: Int, height: Int)] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let value = item.trimmingCharacters(in: .whitespaces)
            let parts = value.lowercased().split(separator: "x", omittingEmptySubsequences: false)
            guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]) else {
                throw AnySizeError(.invalidArgument, "\(flag): '\(value)' is not WIDTHxHEIGHT; use e.g. 256x256,512x512,768x768")
            }
            for side in [w, h] where side % 8 != 0 || side < 64 || side > 4096 {
                throw AnySizeError(.invalidArgument,
                    "\(flag): \(value) is not supported (\(side) is not a multiple of 8 from 64 to 4096)")
            }
            if !sizes.contains(where: { $0 == (w, h) }) { sizes.append((w, h)) }
        }
        return sizes
    }

    /// Parses a comma list of attention modes (`standard`, `scaled`, `local`, `log-bias`, `auto`); duplicates are dropped.
    public static func parseModes(_ text: String, flag: String = "--attention") throws -> [AttentionMode] {
        var modes: [AttentionMode] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let value = item.trimmingCharacters(in: .whitespaces)
            guard let mode = AttentionMode(rawValue: value) else {
                throw AnySizeError(.invalidArgument,
                    "\(flag): '\(value)' is unknown; use a comma list of \(AttentionMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if !modes.contains(mode) { modes.append(mode) }
        }
        return modes
    }

    /// The generation options of one run.
    public func generationOptions(width: Int, height: Int, mode: AttentionMode) -> GenerationOptions {
        var o = GenerationOptions(prompt: prompt, width: width, height: height, seed: seed)
        o.negativePrompt = negativePrompt
        o.steps = steps
        o.cfgScale = cfgScale
        o.sampler = sampler
        o.karras = karras
        o.attention = mode
        o.localEdge = localEdge
        o.trainedSize = trainedSize
        o.attentionMemory = attentionMemory
        o.promptSyntax = promptSyntax
        o.recordEntropy = true
        return o
    }

    /// Checks everything that needs no model.
    public func validate() throws {
        guard !sizes.isEmpty else { throw AnySizeError(.invalidArgument, "--sizes is empty; give e.g. 256x256,512x512") }
        guard !modes.isEmpty else { throw AnySizeError(.invalidArgument, "--attention is empty; give e.g. standard,scaled,local") }
        for size in sizes {
            try generationOptions(width: size.width, height: size.height, mode: modes[0]).validate()
        }
    }
}

/// One row of `entropy.csv`: the mean entropy of one self-attention layer at one model call of one run.
public struct EntropyRecord: Sendable, Equatable {
    public var width: Int, height: Int
    /// The requested formulation (`auto` stays `auto`; the run's `resolvedName` says what it ran as).
    public var attention: String
    /// Model call index, 0-based (one per step for dpmpp_2m / euler / ddim; Heun makes two per step).
    public var step: Int
    public var sigma: Double
    public var layer: Int, level: Int
    /// Tokens of the layer (h_l * w_l) and the mean number of keys a query may attend to.
    public var tokens: Int
    public var keysPerQuery: Double
    /// Mean -sum_k p ln p over queries, heads and the whole UNet batch (nats).
    public var entropy: Double
}

/// One sampling run of the report.
public struct AttentionReportRun: Sendable {
    public var width: Int, height: Int
    public var mode: AttentionMode
    /// The concrete formulation (`auto` -> `standard` / `scaled` / `local`).
    public var resolvedName: String
    public var summary: String
    /// True for the trained-size `standard` run every other run is compared with.
    public var isBaseline: Bool
    /// True when the run was added because the requested combinations did not include the baseline.
    public var wasAdded: Bool
    public var records: [EntropyRecord]

    public var label: String { "\(width)x\(height) \(mode.rawValue)" }

    /// Mean entropy of each layer over all model calls.
    public var meanEntropyPerLayer: [Double] {
        var sums: [Double] = [], counts: [Int] = []
        for r in records {
            while sums.count <= r.layer { sums.append(0); counts.append(0) }
            sums[r.layer] += r.entropy
            counts[r.layer] += 1
        }
        return zip(sums, counts).map { $0 / Double(max($1, 1)) }
    }
}

/// The entropy gap of one run to the baseline: means over (model call, layer) of H - H_baseline.
public struct EntropyGap: Sendable {
    public var width: Int, height: Int
    public var attention: String
    public var resolvedName: String
    public var meanAbsGap: Double
    public var meanGap: Double
    public var isBaseline: Bool
}

/// The attention-entropy diagnostic: the same prompt and seed sampled at several sizes with several attention
/// formulations, recording the mean entropy of every self-attention layer at every model call, compared with the
/// trained-size `standard` run.
///
/// Under classifier-free guidance the UNet batch holds the unconditional and the conditional half; the entropy of a
/// layer is averaged over that whole batch (and over queries and heads).
public struct AttentionReport: Sendable {
    /// The runs in order: requested sizes x requested formulations, then the added baseline if any.
    public var runs: [AttentionReportRun]
    /// The trained canvas (pixels) of the baseline.
    public var trainedSize: (width: Int, height: Int)
    public var steps: Int
    public var seed: UInt64
    public var sampler: SamplerKind

    /// Column names of `entropyCSV`.
    public static let entropyColumns = ["size", "attention", "step", "sigma", "layer", "level", "tokens", "keys_per_query", "entropy"]
    /// Column names of `summaryCSV`.
    public static let summaryColumns = ["size", "attention", "runs_as", "mean_abs_gap", "mean_gap", "baseline"]

    /// Events while the report runs.
    public enum Event: Sendable {
        /// Run `index` (1-based) of `total` starts.
        case run(index: Int, total: Int, label: String)
        /// An event of the running generation.
        case pipeline(PipelineEvent)
        /// Something the user should know (an added baseline run).
        case notice(String)
    }

    /// The runs to make: every (size, mode) in the order given, plus a trained-size `standard` run when the
    /// requested combinations lack it.
    public static func plan(_ options: AttentionReportOptions, trainedSize: (width: Int, height: Int))
        -> [(width: Int, height: Int, mode: AttentionMode, added: Bool)] {
        var plan = options.sizes.flatMap { s in options.modes.map { (s.width, s.height, $0, false) } }
        if !plan.contains(where: { $0.0 == trainedSize.width && $0.1 == trainedSize.height && $0.2 == .standard }) {
            plan.append((trainedSize.width, trainedSize.height, .standard, true))
        }
        return plan
    }

    /// Runs every combination through `pipeline` (no image decoding) and collects the entropies.
    public static func run(pipeline: StableDiffusionPipeline, options: AttentionReportOptions,
                           progress: (Event) -> Void = { _ in }) throws -> AttentionReport {
        try options.validate()
        let trained = options.trainedSize ?? pipeline.trainedSize
        let plan = Self.plan(options, trainedSize: trained)
        if let added = plan.last, added.added {
            progress(.notice("the sizes do not include the trained size \(trained.width)x\(trained.height) with standard attention; "
                + "adding that run as the baseline"))
        }
        let factor = pipeline.vae.downsamplingFactor
        var runs: [AttentionReportRun] = []
        for (index, item) in plan.enumerated() {
            let label = "\(item.width)x\(item.height) \(item.mode.rawValue)"
            progress(.run(index: index + 1, total: plan.count, label: label))
            let generation = options.generationOptions(width: item.width, height: item.height, mode: item.mode)
            let result = try pipeline.generate(generation) { progress(.pipeline($0)) }
            let choice = AttentionSelection.resolve(item.mode, latentHeight: item.height / factor, latentWidth: item.width / factor,
                                                    trainedHeight: trained.height / factor, trainedWidth: trained.width / factor,
                                                    levels: pipeline.unet.config.blockOutChannels.count,
                                                    localEdge: options.localEdge)
            let local = choice.formulation as? LocalAttention
            var keysCache: [Int: Double] = [:]
            var records: [EntropyRecord] = []
            for call in result.entropy {
                for sample in call.samples {
                    let site = sample.site
                    let keys: Double
                    if let local {
                        if let cached = keysCache[site.level] { keys = cached } else {
                            keys = local.meanKeysPerQuery(site: site)
                            keysCache[site.level] = keys
                        }
                    } else {
                        keys = Double(site.tokens)
                    }
                    records.append(EntropyRecord(width: item.width, height: item.height, attention: item.mode.rawValue,
                                                 step: call.call, sigma: call.sigma, layer: site.layer, level: site.level,
                                                 tokens: site.tokens, keysPerQuery: keys, entropy: sample.entropy))
                }
            }
            let isBaseline = item.width == trained.width && item.height == trained.height && item.mode == .standard
            runs.append(AttentionReportRun(width: item.width, height: item.height, mode: item.mode,
                                           resolvedName: result.attentionName, summary: result.attentionSummary,
                                           isBaseline: isBaseline, wasAdded: item.added, records: records))
        }
        return AttentionReport(runs: runs, trainedSize: trained, steps: options.steps, seed: options.seed, sampler: options.sampler)
    }

    /// The trained-size `standard` run.
    public var baseline: AttentionReportRun? { runs.first(where: \.isBaseline) }

    /// Per run, the mean over (model call, layer) of |H - H_baseline| and of H - H_baseline at the same call and layer.
    public var gaps: [EntropyGap] {
        guard let base = baseline else { return [] }
        var reference: [Int: [Int: Double]] = [:]  // step -> layer -> entropy
        for r in base.records { reference[r.step, default: [:]][r.layer] = r.entropy }
        return runs.map { run in
            var absSum = 0.0, sum = 0.0, count = 0
            for r in run.records {
                guard let h = reference[r.step]?[r.layer] else { continue }
                absSum += abs(r.entropy - h)
                sum += r.entropy - h
                count += 1
            }
            let n = Double(max(count, 1))
            return EntropyGap(width: run.width, height: run.height, attention: run.mode.rawValue, resolvedName: run.resolvedName,
                              meanAbsGap: absSum / n, meanGap: sum / n, isBaseline: run.isBaseline)
        }
    }

    /// Every record as CSV (header `entropyColumns`), one row per run x model call x layer.
    public func entropyCSV() -> String {
        var lines = [Self.entropyColumns.joined(separator: ",")]
        for run in runs {
            for r in run.records {
                lines.append([
                    "\(r.width)x\(r.height)", r.attention, "\(r.step)", Self.number(r.sigma), "\(r.layer)", "\(r.level)",
                    "\(r.tokens)", Self.number(r.keysPerQuery), Self.number(r.entropy),
                ].joined(separator: ","))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The gaps as CSV (header `summaryColumns`), one row per run.
    public func summaryCSV() -> String {
        var lines = [Self.summaryColumns.joined(separator: ",")]
        for g in gaps {
            lines.append(["\(g.width)x\(g.height)", g.attention, g.resolvedName, Self.number(g.meanAbsGap),
                          Self.number(g.meanGap), g.isBaseline ? "true" : "false"].joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The gaps as an aligned text table for the terminal.
    public func gapTable() -> String {
        let header = ["size", "attention", "runs as", "mean |H - H_trained|", "mean (H - H_trained)"]
        var rows = [header]
        for g in gaps {
            rows.append(["\(g.width)x\(g.height)", g.attention, g.resolvedName,
                         String(format: "%.4f", g.meanAbsGap) + (g.isBaseline ? " (baseline)" : ""),
                         String(format: "%+.4f", g.meanGap)])
        }
        let widths = header.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        func format(_ row: [String]) -> String {
            row.enumerated().map { c, cell in
                let pad = String(repeating: " ", count: widths[c] - cell.count)
                return c < 3 ? cell + pad : pad + cell  // text left, numbers right
            }.joined(separator: "  ")
        }
        let rule = widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")
        let title = "entropy gap to the trained-size run (\(trainedSize.width)x\(trainedSize.height) standard), "
            + "mean over \(baseline.map { Set($0.records.map(\.step)).count } ?? 0) model calls x \(layerCount) layers, nats"
        return ([title, format(rows[0]), rule] + rows.dropFirst().map(format)).joined(separator: "\n") + "\n"
    }

    /// Number of self-attention layers recorded.
    public var layerCount: Int { (runs.flatMap { $0.records.map(\.layer) }.max() ?? -1) + 1 }

    /// Writes `entropy.csv`, `summary.csv` and `entropy.png` into `folder` (created if needed), each atomically.
    /// - Returns: the paths written.
    @discardableResult
    public func write(to folder: String, chartTitle: String) throws -> [String] {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw AnySizeError(.io, "cannot create the output folder '\(folder)': \(error.localizedDescription); choose another --out")
        }
        let entropy = folder + "/entropy.csv", summary = folder + "/summary.csv", chart = folder + "/entropy.png"
        try FileIO.writeAtomically(Array(entropyCSV().utf8), to: entropy)
        try FileIO.writeAtomically(Array(summaryCSV().utf8), to: summary)
        try PNGWriter.write(EntropyChart(report: self, title: chartTitle).render(), to: chart)
        return [entropy, summary, chart]
    }

    /// Up to 6 significant digits, no locale.
    static func number(_ v: Double) -> String { String(format: "%.6g", v) }
}
