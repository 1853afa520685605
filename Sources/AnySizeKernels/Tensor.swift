/// Float32 storage owned by one allocation; shared by tensors that view the same data.
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// Allocates `count` floats, zero-filled.
    public init(count: Int) {
        precondition(count >= 0, "negative tensor size")
        self.count = count
        pointer = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    /// Allocates `count` floats and leaves them unset: for outputs whose every element a kernel writes before
    /// anything reads it (saves a pass over fresh memory).
    public init(uninitializedCount count: Int) {
        precondition(count >= 0, "negative tensor size")
        self.count = count
        pointer = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        #if DEBUG
        pointer.initialize(repeating: .nan, count: max(count, 1))  // an element a kernel missed shows as NaN
        #endif
    }

    deinit { pointer.deallocate() }
}

/// A dense, contiguous, row-major float32 tensor.
///
/// Image-like tensors are `[B, C, H, W]`; token sequences are `[B, N, C]`.
/// A `Tensor` is a value holding a reference to its storage: `reshaped` shares
/// storage, kernels return fresh tensors unless their name says `InPlace`.
public struct Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let storage: TensorStorage

    /// Zero-filled tensor of the given shape.
    public init(zeros shape: [Int]) {
        self.shape = shape
        storage = TensorStorage(count: shape.reduce(1, *))
    }

    /// Tensor whose values are unspecified until written: for kernel outputs that are written entirely
    /// before they are read (no zero-fill pass over fresh memory).
    public init(uninitialized shape: [Int]) {
        self.shape = shape
        storage = TensorStorage(uninitializedCount: shape.reduce(1, *))
    }

    /// Tensor filled with `value`.
    public init(shape: [Int], repeating value: Float) {
        self.init(uninitialized: shape)
        storage.pointer.update(repeating: value, count: count)
    }

    /// Tensor copied from `values` (row-major).
    public init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count,
                     "shape \(shape) holds \(shape.reduce(1, *)) values, got \(values.count)")
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { storage.pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    /// Tensor that views existing storage with a new shape.
    public init(shape: [Int], storage: TensorStorage) {
        precondition(shape.reduce(1, *) <= storage.count, "shape \(shape) exceeds storage of \(storage.count)")
        self.shape = shape
        self.storage = storage
    }

    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }
    public var pointer: UnsafeMutablePointer<Float> { storage.pointer }
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: storage.pointer, count: count) }

    /// Size of dimension `axis`; negative axes count from the end.
    public func dim(_ axis: Int) -> Int { shape[axis < 0 ? shape.count + axis : axis] }

    /// The values as an array (copy).
    public var scalars: [Float] { Array(buffer) }

    /// Same storage, new shape with the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor(shape: newShape, storage: storage)
    }

    /// A deep copy.
    public func copy() -> Tensor {
        let out = Tensor(uninitialized: shape)
        out.pointer.update(from: pointer, count: count)
        return out
    }

    /// A copy of `[start ..< start + length]` along axis 0 (e.g. one batch element).
    public func slice(batch start: Int, count length: Int) -> Tensor {
        let inner = count / max(shape[0], 1)
        precondition(start >= 0 && start + length <= shape[0], "batch slice out of range")
        var newShape = shape
        newShape[0] = length
        let out = Tensor(uninitialized: newShape)
        out.pointer.update(from: pointer + start * inner, count: length * inner)
        return out
    }

    /// Largest absolute value (0 for an empty tensor).
    public var maxAbs: Float {
        var m: Float = 0
        for v in buffer { m = max(m, abs(v)) }
        return m
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String { "Tensor\(shape)" }
}
