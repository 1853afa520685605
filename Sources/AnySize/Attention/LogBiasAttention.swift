import Foundation

/// Distance bias (the article's follow-up experiments), METHODS.md formulation 3: add to Q K^T / sqrt(d)
///
///     bias(q, k) = c * max(0, ln(dist(q, k)))
///
/// dist = Euclidean distance between grid positions. On canvases larger than trained in area c = +1 while
/// sigma > 4 and -0.1 once sigma <= 4 (far tokens shape composition early, near tokens detail late); on
/// canvases smaller in area c = +1 at every sigma. A canvas of the trained area gets no bias (so the trained
/// size is `standard`). Area compares the level-0 latent grid with the trained one, so every layer of one image
/// uses the same rule.
public struct LogBiasAttention: AttentionFormulation {
    /// Level-0 latent grid of the canvas and of training (the area comparison).
    public let canvasTokens: Int
    public let trainedTokens: Int

    public init(canvasTokens: Int, trainedTokens: Int) {
        self.canvasTokens = canvasTokens
        self.trainedTokens = trainedTokens
    }

    public var name: String { "log-bias" }

    /// c for a model call at noise level `sigma` (0 = no bias).
    public func coefficient(sigma: Double) -> Float {
        if canvasTokens > trainedTokens { return sigma > 4 ? 1 : -0.1 }
        if canvasTokens < trainedTokens { return 1 }
        return 0
    }

    public func modifier(site: AttentionSite, sigma: Double) -> (any AttentionLogitModifier)? {
        let c = coefficient(sigma: sigma)
        return c == 0 ? nil : LogDistanceBias(width: site.width, coefficient: c)
    }
}

/// Adds c * max(0, ln(dist)) between token grid positions.
struct LogDistanceBias: AttentionLogitModifier {
    let width: Int
    let coefficient: Float

    func isBlockActive(queries: Range<Int>, keys: Range<Int>) -> Bool { true }

    func adjust(_ logits: UnsafeMutablePointer<Float>, stride: Int, queries: Range<Int>, keys: Range<Int>) {
        for (r, q) in queries.enumerated() {
            let qy = q / width, qx = q % width
            let row = logits + r * stride
            for (i, k) in keys.enumerated() {
                let dy = Float(k / width - qy), dx = Float(k % width - qx)
                let d2 = dy * dy + dx * dx
                // max(0, ln(dist)) = 0.5 * ln(dist^2) for dist >= 1, and 0 for the query itself.
                if d2 > 1 { row[i] += coefficient * 0.5 * Foundation.log(d2) }
            }
        }
    }
}
