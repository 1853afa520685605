extension Precision {
    /// The precision named `text` (`fp32` or `bf16`, as `--precision` takes it).
    public static func parse(_ text: String, option: String = "--precision") throws -> Precision {
        guard let p = Precision(rawValue: text.lowercased()) else {
            throw AnySizeError(.invalidArgument,
                "\(option) '\(text)' is unknown; use fp32 (default, equal to diffusers) or bf16 (bfloat16 UNet, about half the weight memory)")
        }
        return p
    }

    /// The kernels that run this precision's matrix products here: "fp32", or the bfloat16 path
    /// ("AVX512-BF16", "widened fallback").
    public var kernelDescription: String {
        switch self {
        case .fp32: return "fp32"
        case .bf16: return BFloat16.path.rawValue
        }
    }
}
