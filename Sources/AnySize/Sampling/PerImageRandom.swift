/// A1111's batch seeds (its `ImageRNG`): one `TorchRandom` per image of the batch, image i's seeded with its own
/// seed. `randn([N, ...])` draws image i's slice `[1, ...]` from generator i, so every image gets the noise it
/// would get alone at batch size 1 with its seed, and can be made again by itself.
public final class PerImageRandom: RandomSource {
    /// One generator per image, in batch order.
    public let generators: [TorchRandom]

    /// Generators for `seeds`, one per image of the batch.
    public init(seeds: [UInt64]) {
        generators = seeds.map { TorchRandom(seed: $0) }
    }

    /// `[N, ...]` with N the number of generators: each generator's `randn([1, ...])`, concatenated.
    public func randn(_ shape: [Int]) -> Tensor {
        precondition(shape.first == generators.count, "per-image noise of shape \(shape) for \(generators.count) generators")
        let one = [1] + shape.dropFirst()
        return Elementwise.concatBatch(generators.map { $0.randn(one) })
    }
}
