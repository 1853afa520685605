import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Progress on stderr: a redrawn bar on a terminal, one line per step otherwise; nothing with `--quiet`.
struct ProgressReporter {
    let quiet: Bool
    let isTerminal: Bool = isatty(2) != 0

    func line(_ text: String) {
        guard !quiet else { return }
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    func phase(_ name: String, seconds: Double) {
        line(String(format: "%@: %.2f s", name, seconds))
    }

    func step(_ i: Int, of n: Int, secondsPerStep: Double) {
        guard !quiet else { return }
        let eta = secondsPerStep * Double(n - i)
        let stats = String(format: "step %d/%d  %.2f s/it  ETA %.0f s", i, n, secondsPerStep, eta)
        if isTerminal {
            let width = 30
            let filled = n > 0 ? width * i / n : width
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            FileHandle.standardError.write(Data("\r[\(bar)] \(stats)\(i == n ? "\n" : "")".utf8))
        } else {
            line(stats)
        }
    }
}
