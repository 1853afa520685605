import Foundation

/// Whole-file reads and atomic writes with errors that name the path and say what to do.
public enum FileIO {
    /// Reads a whole file.
    /// - Throws: `AnySizeError` (`.fileNotFound` when it does not exist, `.io` otherwise) naming `path`.
    public static func readBytes(path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let code = errno
            if code == ENOENT {
                throw AnySizeError(.fileNotFound, "'\(path)' does not exist; check the path")
            }
            throw AnySizeError(.io, "cannot read '\(path)': \(describe(code)); check the path and its permissions")
        }
        defer { close(fd) }
        var info = stat()
        if fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
            throw AnySizeError(.io, "cannot read '\(path)': it is a folder, not a file")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(max(Int(info.st_size), 0))
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw AnySizeError(.io, "cannot read '\(path)': \(describe(errno))")
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0 ..< n])
        }
        return bytes
    }

    /// Writes `bytes` to `path` atomically: the data goes to a temporary file in the same folder,
    /// which is then renamed over `path`. Readers see either the old file or the complete new one,
    /// and on any error the temporary file is removed.
    /// - Throws: `AnySizeError(.io)` naming `path` (missing or unwritable folder, full disk, ...).
    public static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let (folder, name) = split(path)
        var tempPath = ""
        var fd: Int32 = -1
        for _ in 0 ..< 16 {
            tempPath = folder + "/." + name + "." + String(UInt64.random(in: 0 ... .max), radix: 16) + ".tmp"
            fd = open(tempPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
            if fd >= 0 || errno != EEXIST { break }
        }
        if fd < 0 { throw folderError(errno, path: path, folder: folder) }

        var failure: AnySizeError?
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return write(fd, base + offset, raw.count - offset)
            }
            if n < 0 {
                if errno == EINTR { continue }
                failure = AnySizeError(.io, "cannot write '\(path)': \(describe(errno)); free disk space or choose another folder")
                break
            }
            offset += n
        }
        if failure == nil, fsync(fd) != 0 {
            failure = AnySizeError(.io, "cannot write '\(path)': \(describe(errno))")
        }
        if close(fd) != 0, failure == nil {
            failure = AnySizeError(.io, "cannot write '\(path)': \(describe(errno))")
        }
        if failure == nil, rename(tempPath, path) != 0 {
            let code = errno
            failure = code == EISDIR || code == ENOTEMPTY || code == EEXIST
                ? AnySizeError(.io, "cannot write '\(path)': a folder of that name exists; choose another file name")
                : AnySizeError(.io, "cannot write '\(path)': \(describe(code))")
        }
        if let failure {
            unlink(tempPath)
            throw failure
        }
    }

    /// The folder part (`"."` when there is none) and the last component of a path.
    static func split(_ path: String) -> (folder: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let folder = String(path[..<slash])
        return (folder.isEmpty ? "/" : folder, String(path[path.index(after: slash)...]))
    }

    private static func folderError(_ code: Int32, path: String, folder: String) -> AnySizeError {
        switch code {
        case ENOENT:
            return AnySizeError(.io, "cannot write '\(path)': folder '\(folder)' does not exist; create it or choose another output path")
        case ENOTDIR:
            return AnySizeError(.io, "cannot write '\(path)': '\(folder)' is not a folder; choose another output path")
        case EACCES, EPERM, EROFS:
            return AnySizeError(.io, "cannot write '\(path)': folder '\(folder)' is not writable (\(describe(code))); choose another output folder")
        default:
            return AnySizeError(.io, "cannot write '\(path)' in folder '\(folder)': \(describe(code))")
        }
    }

    static func describe(_ code: Int32) -> String {
        guard let message = strerror(code) else { return "error \(code)" }
        return String(cString: message)
    }
}
