/// A source of Gaussian noise for samplers.
///
/// `TorchRandom` reproduces PyTorch's CPU generator; a test or an application can plug in any other
/// source (a recorded noise sequence, a different generator) through this protocol.
public protocol RandomSource: AnyObject {
    /// Standard normal samples in row-major order, continuing this source's stream.
    func randn(_ shape: [Int]) -> Tensor
}
