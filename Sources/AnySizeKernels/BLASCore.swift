import Foundation

/// Picks OpenBLAS's kernel family from the CPU's instruction sets when OpenBLAS's own detection falls short.
///
/// A DYNAMIC_ARCH OpenBLAS chooses its kernels once, when it is loaded, from the CPU model number; on CPU
/// models it does not know (new or virtualised Xeons report a generic model) it falls back to "Prescott"
/// (SSE3), several times slower than its AVX2 ("Haswell") or AVX-512 ("SkylakeX") kernels on the same
/// machine. The only supported override is the `OPENBLAS_CORETYPE` environment variable, read at load time,
/// so a program that wants the faster kernels sets it and re-executes itself before doing any work; it sets
/// `OPENBLAS_THREAD_TIMEOUT` the same way (see `threadTimeout`). Explicit values in the environment are always
/// respected.
public enum BLASCoreSelection {
    /// Set (to any value) to keep OpenBLAS's own choices (kernel family and thread timeout).
    public static let optOutVariable = "ANYSIZE_KEEP_BLAS_CORE"

    /// Kernel families by the widest vector instruction set they use: 3 = AVX-512, 2 = AVX2 + FMA, 1 = older.
    static func rank(core: String) -> Int {
        switch core.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": return 3
        case "haswell", "zen", "zen3": return 2
        default: return 1
        }
    }

    /// The best kernel family `flags` (from /proc/cpuinfo) support: "SkylakeX" with AVX-512 F/CD/BW/DQ/VL,
    /// "Haswell" with AVX2 and FMA, nil otherwise.
    public static func preferredCore(cpuFlags flags: Set<String>) -> String? {
        let avx512: Set<String> = ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]
        if avx512.isSubset(of: flags) { return "SkylakeX" }
        if flags.contains("avx2") && flags.contains("fma") { return "Haswell" }
        return nil
    }

    /// The first `flags` line of /proc/cpuinfo (empty where there is none, e.g. macOS).
    public static func cpuFlags() -> Set<String> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return [] }
        for line in text.split(separator: "\n") where line.hasPrefix("flags") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
        }
        return []
    }

    /// The kernel family to switch to, or nil to keep the loaded one: nil when `OPENBLAS_CORETYPE` or the
    /// opt-out variable is set, when OpenBLAS is not a DYNAMIC_ARCH build, or when the loaded family is
    /// already as good as the CPU allows.
    public static func coreToSwitchTo(environment: [String: String], loadedCore: String, configuration: String,
                                      cpuFlags: Set<String>) -> String? {
        if environment["OPENBLAS_CORETYPE"] != nil || environment[optOutVariable] != nil { return nil }
        guard configuration.contains("DYNAMIC_ARCH"), let preferred = preferredCore(cpuFlags: cpuFlags) else { return nil }
        return rank(core: preferred) > rank(core: loadedCore) ? preferred : nil
    }

    /// `OPENBLAS_THREAD_TIMEOUT` this program runs with unless the environment sets one: 2^4 cycles, so an idle
    /// OpenBLAS worker sleeps at once instead of spinning on `sched_yield` for 2^28 cycles after every call.
    /// The kernels here run their own worker threads between BLAS calls (attention, Winograd); OpenBLAS's
    /// spinning workers took CPU time from them: UNet 512x512 batch 2 went from 11.2 to 10.2 s with it.
    public static let threadTimeout = "4"

    /// Variables to set before OpenBLAS loads (empty when nothing needs changing): `OPENBLAS_CORETYPE` when
    /// `coreToSwitchTo` picks a family, `OPENBLAS_THREAD_TIMEOUT` (`threadTimeout`) unless already set or
    /// `optOutVariable` is set.
    public static func environmentToSet(environment: [String: String], loadedCore: String, configuration: String,
                                        cpuFlags: Set<String>) -> [String: String] {
        var variables: [String: String] = [:]
        if let core = coreToSwitchTo(environment: environment, loadedCore: loadedCore, configuration: configuration,
                                     cpuFlags: cpuFlags) {
            variables["OPENBLAS_CORETYPE"] = core
        }
        if environment["OPENBLAS_THREAD_TIMEOUT"] == nil && environment[optOutVariable] == nil {
            variables["OPENBLAS_THREAD_TIMEOUT"] = threadTimeout
        }
        return variables
    }

    /// Re-executes the running program (/proc/self/exe, same arguments) with the variables of
    /// `environmentToSet`, which OpenBLAS reads only when it loads. Call first thing in `main`, before any work.
    /// Returns when nothing needs setting or the re-execution fails (the program then goes on as loaded).
    public static func reexecuteWithPreferredSettingsIfNeeded() {
        let variables = environmentToSet(environment: ProcessInfo.processInfo.environment,
                                         loadedCore: MatMul.blasCoreName, configuration: MatMul.blasConfiguration,
                                         cpuFlags: cpuFlags())
        guard !variables.isEmpty, FileManager.default.isExecutableFile(atPath: "/proc/self/exe") else { return }
        for (name, value) in variables { setenv(name, value, 1) }
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        for name in variables.keys { unsetenv(name) }  // execv returned: it failed; carry on as we were
    }
}
