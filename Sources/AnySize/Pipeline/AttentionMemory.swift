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

    /// `megabytes` in bytes, checked before the shift can overflow: between 1 MB and half of physical memory.
    /// - Throws: `AnySizeError(.invalidArgument)` naming `--attention-memory` and the allowed range.
    public static func budget(megabytes: Int, physicalMemory: UInt64 = ProcessInfo.processInfo.physicalMemory) throws -> Int {
        let limit = Int(clamping: physicalMemory / 2) >> 20
        guard megabytes >= 1, megabytes <= limit else {
            throw AnySizeError(.invalidArgument,
                "--attention-memory \(megabytes) MB is outside 1 to \(limit) MB (half of this machine's memory); "
                + "leave it out for the default (\(defaultBudget(physicalMemory: physicalMemory) >> 20) MB)")
        }
        return megabytes << 20
    }
}
