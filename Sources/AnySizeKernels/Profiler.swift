import Dispatch
import Foundation

/// Families of ops the profiler attributes time to.
public enum OpFamily: String, CaseIterable, Sendable {
    /// `Conv2D` (im2col + GEMM, 1x1 GEMMs, Winograd).
    case convolution
    /// `MatMul.linear` (`nn.Linear`) and `MatMul.batched`.
    case linear
    /// `ScaledDotProductAttention` (Q K^T, online softmax, P V).
    case attention
    /// Group norm (with its fused SiLU) and layer norm.
    case normalization
    /// SiLU, GELU, quick GELU, GEGLU.
    case activation
    /// Adds, bias adds, concatenations, resizes, layout changes, padding, softmax.
    case elementwise
}

/// Time and call count of one op family.
public struct OpFamilyTiming: Sendable, Equatable {
    public var family: OpFamily
    public var seconds: Double
    public var calls: Int

    public init(family: OpFamily, seconds: Double, calls: Int) {
        self.family = family
        self.seconds = seconds
        self.calls = calls
    }
}

/// Wall-clock time per op family, for `anysize bench --profile`.
///
/// Off by default. Ops call `begin()` on entry and `end(_:_:)` on exit; when profiling is off `begin`
/// returns 0 and `end` returns at once, so the cost is one branch per op. Ops are entered from the thread
/// that runs the model (their worker threads are inside the timed span), so nested work is never counted
/// twice. Recording takes a lock and is safe from any thread.
public enum Profiler {
    nonisolated(unsafe) private static var enabled = false
    private static let lock = NSLock()
    nonisolated(unsafe) private static var seconds = [Double](repeating: 0, count: OpFamily.allCases.count)
    nonisolated(unsafe) private static var calls = [Int](repeating: 0, count: OpFamily.allCases.count)

    /// Whether ops record their time.
    public static var isEnabled: Bool { enabled }

    /// Starts or stops recording (totals are kept; see `reset`).
    public static func setEnabled(_ on: Bool) { enabled = on }

    /// Clears all totals.
    public static func reset() {
        lock.lock()
        defer { lock.unlock() }
        for i in seconds.indices { seconds[i] = 0; calls[i] = 0 }
    }

    /// A timestamp in nanoseconds when profiling is on, 0 otherwise.
    @inline(__always)
    public static func begin() -> UInt64 {
        enabled ? DispatchTime.now().uptimeNanoseconds : 0
    }

    /// Adds the time since `start` (from `begin`) to `family`; does nothing when `start` is 0.
    @inline(__always)
    public static func end(_ family: OpFamily, _ start: UInt64) {
        if start == 0 { return }
        record(family, nanoseconds: DispatchTime.now().uptimeNanoseconds &- start)
    }

    /// Adds `nanoseconds` and one call to `family`.
    public static func record(_ family: OpFamily, nanoseconds: UInt64) {
        let index = OpFamily.allCases.firstIndex(of: family) ?? 0
        lock.lock()
        defer { lock.unlock() }
        seconds[index] += Double(nanoseconds) * 1e-9
        calls[index] += 1
    }

    /// Totals since the last `reset`, in `OpFamily.allCases` order.
    public static func totals() -> [OpFamilyTiming] {
        lock.lock()
        defer { lock.unlock() }
        return OpFamily.allCases.enumerated().map { OpFamilyTiming(family: $1, seconds: seconds[$0], calls: calls[$0]) }
    }
}
