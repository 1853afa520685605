import Foundation

/// Entropy-invariant logit scaling (Jin et al. 2023, arXiv 2306.08645), METHODS.md formulation 1:
///
///     softmax(s_l * Q K^T / sqrt(d)),   s_l = sqrt( ln(N_l) / ln(T_l) )
///
/// with N_l the tokens of level l and T_l the trained tokens at that level (both clamped to >= 2).
/// s_l is exactly 1 at the trained size, where this is `standard` bit for bit.
public struct ScaledAttention: AttentionFormulation {
    public init() {}
    public var name: String { "scaled" }

    /// s_l for a site.
    public static func factor(site: AttentionSite) -> Double {
        entropyFactor(keys: site.tokens, trained: site.trainedTokens)
    }

    public func modifier(site: AttentionSite, sigma: Double) -> (any AttentionLogitModifier)? {
        let s = Self.factor(site: site)
        return s == 1 ? nil : UniformLogitScale(factor: Float(s))
    }
}

/// sqrt( ln(max(keys, 2)) / ln(max(trained, 2)) ).
func entropyFactor(keys: Int, trained: Int) -> Double {
    (log(Double(max(keys, 2))) / log(Double(max(trained, 2)))).squareRoot()
}

/// Multiplies every logit by one factor.
struct UniformLogitScale: AttentionLogitModifier {
    let factor: Float

    func isBlockActive(queries: Range<Int>, keys: Range<Int>) -> Bool { true }

    func adjust(_ logits: UnsafeMutablePointer<Float>, stride: Int, queries: Range<Int>, keys: Range<Int>) {
        for r in 0 ..< queries.count {
            let row = logits + r * stride
            for k in 0 ..< keys.count { row[k] *= factor }
        }
    }
}
