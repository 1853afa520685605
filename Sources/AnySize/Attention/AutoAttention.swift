import Foundation

/// The attention formulation names accepted on the command line.
public enum AttentionMode: String, CaseIterable, Sendable {
    case standard, scaled, local, logBias = "log-bias", auto
}

/// What `auto` picked, and the per-level factors it reports.
public struct AttentionChoice: Sendable {
    /// The concrete formulation to run.
    public let formulation: any AttentionFormulation
    /// The mode the user asked for.
    public let requested: AttentionMode
    /// One line for the terminal and PNG metadata, e.g. "auto -> scaled (0.913, 0.894, 0.866, 0.816)".
    public let summary: String
}

/// Resolves a requested mode for a canvas, METHODS.md formulation 4 (`auto`): trained size -> `standard`;
/// no dimension larger than trained -> `scaled`; otherwise `local`.
public enum AttentionSelection {
    /// - Parameters: latent canvas and trained latent grids (level 0); `levels` UNet levels.
    public static func resolve(_ mode: AttentionMode, latentHeight: Int, latentWidth: Int,
                               trainedHeight: Int, trainedWidth: Int, levels: Int = 4,
                               localEdge: Int = 0) -> AttentionChoice {
        let concrete: AttentionMode
        if mode == .auto {
            if latentHeight == trainedHeight && latentWidth == trainedWidth {
                concrete = .standard
            } else if latentHeight <= trainedHeight && latentWidth <= trainedWidth {
                concrete = .scaled
            } else {
                concrete = .local
            }
        } else {
            concrete = mode
        }
        let formulation: any AttentionFormulation
        switch concrete {
        case .standard, .auto: formulation = StandardAttention()
        case .scaled: formulation = ScaledAttention()
        case .local: formulation = LocalAttention(edge: localEdge)
        case .logBias: formulation = LogBiasAttention(canvasTokens: latentHeight * latentWidth,
                                                      trainedTokens: trainedHeight * trainedWidth)
        }
        let sites = (0 ..< levels).map { level in
            AttentionSite(layer: level, level: level,
                          height: UNetGeometry.grid(latentHeight, level: level),
                          width: UNetGeometry.grid(latentWidth, level: level),
                          trainedHeight: UNetGeometry.grid(trainedHeight, level: level),
                          trainedWidth: UNetGeometry.grid(trainedWidth, level: level))
        }
        var detail = ""
        switch concrete {
        case .scaled:
            detail = " (logit factors per level: " + sites.map { fmt(ScaledAttention.factor(site: $0)) }.joined(separator: ", ") + ")"
        case .local:
            let local = LocalAttention(edge: localEdge)
            detail = " (mean keys per query per level: " + sites.map { fmt(local.meanKeysPerQuery(site: $0), 1) }.joined(separator: ", ")
                + "; edge \(localEdge))"
        case .logBias:
            detail = latentHeight * latentWidth > trainedHeight * trainedWidth
                ? " (c = +1 while sigma > 4, -0.1 after)" : (latentHeight * latentWidth < trainedHeight * trainedWidth ? " (c = +1)" : " (no bias at the trained area)")
        default: break
        }
        let name = mode == .auto ? "auto -> \(formulation.name)" : formulation.name
        return AttentionChoice(formulation: formulation, requested: mode, summary: name + detail)
    }

    private static func fmt(_ v: Double, _ digits: Int = 3) -> String {
        String(format: "%.\(digits)f", v)
    }
}
