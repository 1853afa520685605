/// A `ParameterStore` seen through a name prefix, so model code reads like the diffusers module tree:
/// `scope["down_blocks.0"]["resnets.1"].conv("conv1", ...)`.
public struct ParameterScope {
    public let store: ParameterStore
    public let prefix: String

    public init(_ store: ParameterStore, prefix: String = "") {
        self.store = store
        self.prefix = prefix
    }

    /// The scope of a child module.
    public subscript(_ child: String) -> ParameterScope {
        ParameterScope(store, prefix: name(child))
    }

    /// Full parameter name of `leaf` in this scope.
    public func name(_ leaf: String) -> String { prefix.isEmpty ? leaf : prefix + "." + leaf }

    public func tensor(_ leaf: String, shape: [Int]) throws -> Tensor {
        try store.take(name(leaf), shape: shape)
    }

    /// `nn.Linear(inFeatures, outFeatures, bias:)` named `leaf`.
    public func linear(_ leaf: String, in inFeatures: Int, out outFeatures: Int, bias: Bool = true) throws -> Linear {
        let s = self[leaf]
        return Linear(weight: try s.tensor("weight", shape: [outFeatures, inFeatures]),
                      bias: bias ? try s.tensor("bias", shape: [outFeatures]) : nil)
    }

    /// `nn.Conv2d(inChannels, outChannels, kernelSize, stride, padding)` named `leaf`.
    public func conv(_ leaf: String, in inChannels: Int, out outChannels: Int, kernel: Int,
                     stride: Int = 1, padding: Int = 0) throws -> Conv2D {
        let s = self[leaf]
        return Conv2D(weight: try s.tensor("weight", shape: [outChannels, inChannels, kernel, kernel]),
                      bias: try s.tensor("bias", shape: [outChannels]), stride: stride, padding: padding)
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

/// `torch.nn.Linear`: y = x W^T + b over the last axis.
public struct Linear {
    public let weight: Tensor  // [out, in]
    public let bias: Tensor?   // [out]
    public var outFeatures: Int { weight.shape[0] }
    public func callAsFunction(_ x: Tensor) -> Tensor { MatMul.linear(x, weight: weight, bias: bias) }
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
