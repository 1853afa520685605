/// A `ParameterStore` seen through a name prefix, so model code reads like the diffusers module tree:
/// `scope["down_blocks.0"]["resnets.1"].conv("conv1", ...)`.
///
/// With `precision` `.bf16` the linear and convolution weights are rounded to bfloat16 as they are taken (one
/// tensor at a time: the float32 tensor read from the checkpoint is dropped once packed); norms and biases stay
/// float32.
public struct ParameterScope {
    public let store: ParameterStore
    public let prefix: String
    /// Number format of the linear and convolution weights built through this scope.
    public let precision: Precision

    public init(_ store: ParameterStore, prefix: String = "", precision: Precision = .fp32) {
        self.store = store
        self.prefix = prefix
        self.precision = precision
    }

    /// The scope of a child module.
    public subscript(_ child: String) -> ParameterScope {
        ParameterScope(store, prefix: name(child), precision: precision)
    }

    /// Full parameter name of `leaf` in this scope.
    public func name(_ leaf: String) -> String { prefix.isEmpty ? leaf : prefix + "." + leaf }

    public func tensor(_ leaf: String, shape: [Int]) throws -> Tensor {
        try store.take(name(leaf), shape: shape)
    }

    /// `nn.Linear(inFeatures, outFeatures, bias:)` named `leaf`.
    public func linear(_ leaf: String, in inFeatures: Int, out outFeatures: Int, bias: Bool = true) throws -> Linear {
        let s = self[leaf]
        let weight = try s.tensor("weight", shape: [outFeatures, inFeatures])
        let b = bias ? try s.tensor("bias", shape: [outFeatures]) : nil
        switch precision {
        case .fp32: return Linear(weight: weight, bias: b)
        case .bf16: return Linear(bfloat16Weight: weight, bias: b)
        }
    }

    /// `nn.Conv2d(inChannels, outChannels, kernelSize, stride, padding)` named `leaf`.
    public func conv(_ leaf: String, in inChannels: Int, out outChannels: Int, kernel: Int,
                     stride: Int = 1, padding: Int = 0) throws -> Conv2D {
        let s = self[leaf]
        let weight = try s.tensor("weight", shape: [outChannels, inChannels, kernel, kernel])
        let bias = try s.tensor("bias", shape: [outChannels])
        switch precision {
        case .fp32: return Conv2D(weight: weight, bias: bias, stride: stride, padding: padding)
        case .bf16: return Conv2D(bfloat16Weight: weight, bias: bias, stride: stride, padding: padding)
        }
    }

    /// `nn.GroupNorm(groups, channels, eps)` named `leaf`.
    public func groupNorm(_ leaf: String, groups: Int, channels: Int, eps: Float) throws -> GroupNorm {
        let s = self[leaf]
        guard groups > 0, channels % groups == 0 else {
            throw AnySizeError(.unsupportedConfig,
                "\(store.source): \(store.component) '\(name(leaf))' has \(channels) channels, not divisible into \(groups) groups; fix norm_num_groups in the config")
        }
        return GroupNorm(groups: groups, weight: try s.tensor("weight", shape: [channels]),
                         bias: try s.tensor("bias", shape: [channels]), eps: eps)
    }

    /// `nn.LayerNorm(channels, eps)` named `leaf`.
    public func layerNorm(_ leaf: String, channels: Int, eps: Float) throws -> LayerNorm {
        let s = self[leaf]
        return LayerNorm(weight: try s.tensor("weight", shape: [channels]),
                         bias: try s.tensor("bias", shape: [channels]), eps: eps)
    }
}

/// `torch.nn.Linear`: y = x W^T + b over the last axis, with the weight in float32 or (only) in bfloat16.
public struct Linear {
    /// How the weight is held: float32 [out, in], or bfloat16 panels of W^T [in, out].
    public enum Weight {
        case float32(Tensor)
        case bfloat16(BFloat16Panels)
    }
    public let storedWeight: Weight
    public let bias: Tensor?   // [out]

    /// A float32 layer; `weight` [out, in].
    public init(weight: Tensor, bias: Tensor?) {
        storedWeight = .float32(weight)
        self.bias = bias
    }

    /// A layer holding only the bfloat16 rounding of `weight` [out, in] (not kept).
    public init(bfloat16Weight weight: Tensor, bias: Tensor?) {
        let inFeatures = weight.dim(-1), outFeatures = weight.shape[0]
        storedWeight = .bfloat16(BFloat16Panels(weight.pointer, k: inFeatures, n: outFeatures, kStride: 1, nStride: inFeatures))
        self.bias = bias
    }

    public var outFeatures: Int {
        switch storedWeight {
        case .float32(let w): return w.shape[0]
        case .bfloat16(let p): return p.n
        }
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        switch storedWeight {
        case .float32(let w): return MatMul.linear(x, weight: w, bias: bias)
        case .bfloat16(let p): return MatMul.linear(x, weight: p, bias: bias)
        }
    }
}

/// `torch.nn.GroupNorm` with affine parameters; `silu: true` fuses the activation that usually follows.
public struct GroupNorm {
    public let groups: Int
    public let weight: Tensor
    public let bias: Tensor
    public let eps: Float
    public func callAsFunction(_ x: Tensor, silu: Bool = false) -> Tensor {
        Normalization.groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps, silu: silu)
    }
}

/// `torch.nn.LayerNorm` over the last axis.
public struct LayerNorm {
    public let weight: Tensor
    public let bias: Tensor
    public let eps: Float
    public func callAsFunction(_ x: Tensor) -> Tensor {
        Normalization.layerNorm(x, weight: weight, bias: bias, eps: eps)
    }
}
