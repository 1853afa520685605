/// The named parameters of one component (diffusers / transformers names, f32), with use tracking
/// for strict loading: models `take` what they need; whatever is left over is reported.
///
/// A store filled by the checkpoint loaders holds no tensor data: each tensor is converted to float32 from
/// the memory-mapped file when taken (and not kept by the store), so only the components a program builds
/// occupy memory, and a component can be built again after its model was dropped.
public final class ParameterStore {
    /// Component name for messages ("unet", "vae", "text_encoder").
    public let component: String
    /// Where the tensors came from (file or folder), for messages.
    public let source: String
    private var tensors: [String: Tensor]
    private let deferred: [String: DeferredTensor]
    private var taken: Set<String> = []
    /// Bytes of float32 tensors converted from the checkpoint file by `take` so far (every take counts,
    /// including a second take of the same name). 0 for a store built from in-memory tensors.
    public private(set) var materializedBytes = 0
    /// Number of tensors converted from the checkpoint file by `take` so far.
    public private(set) var materializedTensors = 0

    /// A store over tensors already in memory.
    public init(component: String, source: String, tensors: [String: Tensor]) {
        self.component = component
        self.source = source
        self.tensors = tensors
        deferred = [:]
    }

    /// A store whose tensors are read from the checkpoint when taken.
    init(component: String, source: String, deferred: [String: DeferredTensor]) {
        self.component = component
        self.source = source
        tensors = [:]
        self.deferred = deferred
    }

    public var names: [String] { Array(Set(tensors.keys).union(deferred.keys)).sorted() }

    public func contains(_ name: String) -> Bool { tensors[name] != nil || deferred[name] != nil }

    /// Shape of a stored tensor without taking (or reading) it.
    public func shape(of name: String) -> [Int]? { tensors[name]?.shape ?? deferred[name]?.shape }

    /// Takes a tensor, checking its shape; `nil` shape accepts any. A deferred tensor is read from the file now and
    /// refused if it holds a NaN or infinity.
    public func take(_ name: String, shape: [Int]? = nil) throws -> Tensor {
        guard let stored = self.shape(of: name) else {
            throw AnySizeError(.missingTensor,
                "\(source): \(component) tensor '\(name)' is missing; the checkpoint is incomplete or of another model type")
        }
        // A [O, I] linear weight stored as a [O, I, 1, 1] 1x1 conv (or the reverse) is the same data.
        let reshapes = shape.map { $0 != stored && $0.count + stored.count == 6 && $0.prefix(2) == stored.prefix(2)
            && $0.reduce(1, *) == stored.reduce(1, *) } ?? false
        if let shape, shape != stored, !reshapes {
            throw AnySizeError(.shapeMismatch,
                "\(source): \(component) tensor '\(name)' has shape \(stored), the config needs \(shape); the config does not match the weights")
        }
        let t: Tensor
        if let resident = tensors[name] {
            t = resident
        } else if let entry = deferred[name] {
            t = try entry.load()
            // A NaN or infinity in any weight makes every image one colour: refuse it by name.
            if let index = FloatConversion.firstNonFinite(t.pointer, count: t.count) {
                throw AnySizeError(.corruptFile,
                    "\(source): \(component) tensor '\(name)' holds \(t.pointer[index]) at element \(index) of \(t.shape); the weights "
                    + "are damaged (a NaN or infinity makes every image one colour), download or convert the checkpoint again")
            }
            materializedBytes += t.count * MemoryLayout<Float>.size
            materializedTensors += 1
        } else {
            throw AnySizeError(.missingTensor, "\(source): \(component) tensor '\(name)' was released; load the checkpoint again")
        }
        taken.insert(name)
        if let shape, reshapes { return t.reshaped(shape) }
        return t
    }

    /// Takes a tensor if present.
    public func takeIfPresent(_ name: String, shape: [Int]? = nil) throws -> Tensor? {
        contains(name) ? try take(name, shape: shape) : nil
    }

    /// Marks a tensor as deliberately unused (e.g. a buffer such as `position_ids`).
    public func ignore(_ name: String) { if contains(name) { taken.insert(name) } }

    /// Names never taken nor ignored.
    public var unused: [String] { names.filter { !taken.contains($0) } }

    /// Number of parameters stored (from the headers for deferred tensors).
    public var parameterCount: Int {
        tensors.values.reduce(0) { $0 + $1.count } + deferred.values.reduce(0) { $0 + $1.shape.reduce(1, *) }
    }

    /// Drops the store's in-memory tensors so taken ones live only in the model. Deferred tensors hold no
    /// data and stay takeable.
    public func release() { tensors.removeAll() }
}
