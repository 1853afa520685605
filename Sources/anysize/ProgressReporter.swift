import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Progress on stderr: a redrawn bar on a terminal, one line per step otherwise; nothing with `--quiet`.
/// A line printed while the bar is drawn replaces it (the next step draws the bar again below).
final class ProgressReporter {
    let quiet: Bool
    let isTerminal: Bool = isatty(2) != 0
    /// Whether the cursor sits at the end of an unfinished bar line.
    private var barShown = false

    init(quiet: Bool) {
        self.quiet = quiet
    }

    func line(_ text: String) {
        guard !quiet else { return }
        // "\r" + "ESC[K": back to the line start and clear to its end, so no bar characters remain.
        write((barShown ? "\r\u{1B}[K" : "") + text + "\n")
        barShown = false
    }

    func phase(_ name: String, seconds: Double) {
        line(String(format: "%@: %.2f s", name, seconds))
    }

    /// Sampler step `i` of `n` finished.
    func step(_ i: Int, of n: Int, secondsPerStep: Double) {
        guard !quiet else { return }
        let eta = secondsPerStep * Double(n - i)
        let stats = String(format: "step %d/%d  %.2f s/it  ETA %.0f s", i, n, secondsPerStep, eta)
        guard isTerminal else { return line(stats) }
        let width = 30
        let filled = n > 0 ? width * min(i, n) / n : width
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        // Clear to the end of the line: the new text may be shorter than the last ("ETA 10 s" -> "ETA 9 s").
        write("\r[\(bar)] \(stats)\u{1B}[K" + (i >= n ? "\n" : ""))
        barShown = i < n
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
