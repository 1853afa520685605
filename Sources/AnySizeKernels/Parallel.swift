import Dispatch
import Foundation

/// Work splitting across the machine's cores.
public enum Parallel {
    /// Number of worker threads used by the kernels (all active cores by default).
    nonisolated(unsafe) public static var threadCount: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Runs `body(range)` over `0 ..< count` split into contiguous ranges, one per worker.
    /// Work smaller than `minimumPerThread` items per worker runs on fewer threads.
    public static func forRanges(_ count: Int, minimumPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let workers = min(threadCount, max(1, count / max(minimumPerThread, 1)))
        if workers == 1 { body(0 ..< count); return }
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let start = count * w / workers, end = count * (w + 1) / workers
            if start < end { body(start ..< end) }
        }
    }

    /// Runs `body(i)` for every `i` in `0 ..< count`, spread over the workers.
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        forRanges(count) { range in for i in range { body(i) } }
    }
}
