/// The named parameters of one component (diffusers / transformers names, f32), with use tracking
/// for strict loading: models `take` what they need; whatever is left over is reported.
public final class ParameterStore {
    /// Component name for messages ("unet", "vae", "text_encoder").
    public let component: String
    /// Where the tensors came from (file or folder), for messages.
    public let source: String
    private var tensors: [String: Tensor]
    private var taken: Set<String> = []

    public init(component: String, source: String, tensors: [String: Tensor]) {
        self.component = component
        self.source = source
        self.tensors = tensors
    }

    public var names: [String] { tensors.keys.sorted() }

    public func contains(_ name: String) -> Bool { tensors[name] != nil }

    /// Shape of a stored tensor without taking it.
    public func shape(of name: String) -> [Int]? { tensors[name]?.shape }

    /// Takes a tensor, checking its shape; `nil` shape accepts any.
    public func take(_ name: String, shape: [Int]? = nil) throws -> Tensor {
        guard let t = tensors[name] else {
            throw AnySizeError(.missingTensor,
                "\(source): \(component) tensor '\(name)' is missing; the checkpoint is incomplete or of another model type")
        }
        if let shape, t.shape != shape {
            // A [O, I] linear weight stored as a [O, I, 1, 1] 1x1 conv (or the reverse) is the same data.
            if t.count == shape.reduce(1, *), shape.count + t.shape.count == 6, shape.prefix(2) == t.shape.prefix(2) {
                taken.insert(name)
                return t.reshaped(shape)
            }
            throw AnySizeError(.shapeMismatch,
                "\(source): \(component) tensor '\(name)' has shape \(t.shape), the config needs \(shape); the config does not match the weights")
        }
        taken.insert(name)
        return t
    }

    /// Takes a tensor if present.
    public func takeIfPresent(_ name: String, shape: [Int]? = nil) throws -> Tensor? {
        tensors[name] == nil ? nil : try take(name, shape: shape)
    }

    /// Marks a tensor as deliberately unused (e.g. a buffer such as `position_ids`).
    public func ignore(_ name: String) { if tensors[name] != nil { taken.insert(name) } }

    /// Names never taken nor ignored.
    public var unused: [String] { tensors.keys.filter { !taken.contains($0) }.sorted() }

    /// Number of parameters stored.
    public var parameterCount: Int { tensors.values.reduce(0) { $0 + $1.count } }

    /// Drops the store's references so taken tensors live only in the model.
    public func release() { tensors.removeAll() }
}
