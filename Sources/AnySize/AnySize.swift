@_exported import AnySizeKernels

/// AnySize: Stable Diffusion 1.x/2.x on the CPU at any canvas size.
public enum AnySizeVersion {
    public static let string = "0.1.0"
}
