import Foundation

/// The default scratch-memory bound for the attention kernel.
public enum AttentionMemory {
    /// 1/64 of physical memory, between 256 MB and 1 GB (384 MB on a 24 GB machine).
    ///
    /// Blocks of a few thousand queries by all keys already run at full GEMM speed, so a larger budget buys
    /// little time but costs resident memory: at 1024 x 1024 with guidance, 1/16 of 24 GB let the kernel hold
    /// 1.1 GB of logits, a quarter of SD1.5's weights.
    public static func defaultBudget(physicalMemory: UInt64 = ProcessInfo.processInfo.physicalMemory) -> Int {
        let share = Int(clamping: physicalMemory / 64)
        return min(max(share, 256 << 20), 1 << 30)
    }
}
