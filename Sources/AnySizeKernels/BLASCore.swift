import Foundation

/// Picks OpenBLAS's kernel family from the CPU's instruction sets when OpenBLAS's own detection falls short.
///
/// A DYNAMIC_ARCH OpenBLAS chooses its kernels once, when it is loaded, from the CPU model number; on CPU
/// models it does not know (new or virtualised Xeons report a generic model) it falls back to "Prescott"
/// (SSE3), several times slower than its AVX2 ("Haswell") or AVX-512 ("SkylakeX") kernels on the same
/// machine. The only supported override is the `OPENBLAS_CORETYPE` environment variable, read at load time,
/// so a program that wants the faster kernels sets it and re-executes itself before doing any work.
/// An explicit `OPENBLAS_CORETYPE` in the environment is always respected.
public enum BLASCoreSelection {
    /// Set (to any value) to keep OpenBLAS's own choice.
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

    /// Re-executes the running program (/proc/self/exe, same arguments) with `OPENBLAS_CORETYPE` set when
    /// `coreToSwitchTo` says so. Call first thing in `main`, before any work. Returns when no switch is
    /// needed or the re-execution fails (the program then goes on with the loaded kernels).
    public static func reexecuteWithPreferredCoreIfNeeded() {
        let environment = ProcessInfo.processInfo.environment
        guard let core = coreToSwitchTo(environment: environment, loadedCore: MatMul.blasCoreName,
                                        configuration: MatMul.blasConfiguration, cpuFlags: cpuFlags()),
              FileManager.default.isExecutableFile(atPath: "/proc/self/exe") else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        unsetenv("OPENBLAS_CORETYPE")  // execv returned: it failed; carry on as we were
    }
}
