/// diffusers `Attention` as used by SD's transformer blocks: `to_q`, `to_k`, `to_v` (no bias), `to_out.0`.
/// Self-attention when `context` is nil; cross-attention otherwise (its keys are text tokens, never modified).
public struct AttentionLayer {
    public let heads: Int
    public let toQ: Linear, toK: Linear, toV: Linear, toOut: Linear
    /// Number format of the attention products (the scope's precision).
    public let precision: Precision

    public init(_ scope: ParameterScope, queryDim: Int, contextDim: Int?, heads: Int, headDim: Int, bias: Bool = false) throws {
        let inner = heads * headDim
        self.heads = heads
        precision = scope.precision
        toQ = try scope.linear("to_q", in: queryDim, out: inner, bias: bias)
        toK = try scope.linear("to_k", in: contextDim ?? queryDim, out: inner, bias: bias)
        toV = try scope.linear("to_v", in: contextDim ?? queryDim, out: inner, bias: bias)
        toOut = try scope.linear("to_out.0", in: inner, out: queryDim)
    }

    /// x [B, N, C]; context [B, M, Cc] or nil. `modifier` adjusts self-attention logits.
    public func callAsFunction(_ x: Tensor, context: Tensor? = nil, modifier: (any AttentionLogitModifier)? = nil,
                               memoryBudget: Int, entropy: UnsafeMutablePointer<Double>? = nil) -> Tensor {
        let q = toQ(x)                        // [B, N, inner]
        let k = toK(context ?? x)             // [B, M, inner]
        let v = toV(context ?? x)             // [B, M, inner]
        let headDim = q.dim(-1) / heads
        let chunking = AttentionChunking.fitting(bytes: memoryBudget, queries: q.dim(1), keys: k.dim(1), headDim: headDim)
        let o = ScaledDotProductAttention.compute(query: q, key: k, value: v, heads: heads, modifier: modifier,
                                                  chunking: chunking, entropy: entropy, precision: precision)
        return toOut(o)                       // [B, N, C]
    }
}
