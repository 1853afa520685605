import Foundation

/// The default scratch-memory bound for the attention kernel.
public enum AttentionMemory {
    /// 1/16 of physical memory, between 256 MB and 2 GB.
    public static func defaultBudget(physicalMemory: UInt64 = ProcessInfo.processInfo.physicalMemory) -> Int {
        let sixteenth = Int(physicalMemory / 16)
        return min(max(sixteenth, 256 << 20), 2 << 30)
    }
}
