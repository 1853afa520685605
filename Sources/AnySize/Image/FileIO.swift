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

    /// Writes `bytes` to `path` atomically (see `write(to:_:)`).
    /// - Throws: `AnySizeError(.io)` naming `path` (missing or unwritable folder, full disk, ...).
    public static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        try write(to: path) { sink in try bytes.withUnsafeBytes { try sink($0) } }
    }

    /// Writes what `body` hands to its sink to `path`, never destroying what is there:
    /// - a new or regular file: the data goes to a temporary file in the same folder, which is renamed over the
    ///   file only when complete; readers see either the old file or the complete new one, and on any error (or
    ///   SIGINT/SIGTERM, see `TemporaryFiles`) the temporary file is removed;
    /// - a symbolic link: written through, as above at the file it points to (the link stays);
    /// - a character device or FIFO (`/dev/null`, `/dev/stdout`, a pipe): written to directly;
    /// - a folder or anything else: refused.
    /// - Throws: `AnySizeError(.io)` naming `path`.
    public static func write(to path: String, _ body: (_ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        switch try destination(of: path) {
        case .stream:
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            if fd < 0 { throw AnySizeError(.io, "cannot write '\(path)': \(describe(errno))") }
            defer { close(fd) }
            try body { try writeAll(fd, $0, path: path) }
        case .file(let target):
            try replaceAtomically(target, reportedAs: path, body)
        }
    }

    private static func replaceAtomically(_ target: String, reportedAs path: String,
                                          _ body: (_ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        let (folder, _) = split(target)
        var tempPath = ""
        var fd: Int32 = -1
        for _ in 0 ..< 16 {
            tempPath = temporaryPath(for: target)
            fd = open(tempPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
            if fd >= 0 || errno != EEXIST { break }
        }
        if fd < 0 { throw folderError(errno, path: path, folder: folder) }
        let slot = TemporaryFiles.register(tempPath)
        defer { TemporaryFiles.unregister(slot) }

        var failure: Error?
        do {
            try body { try writeAll(fd, $0, path: path) }
        } catch {
            failure = error
        }
        if failure == nil, fsync(fd) != 0 {
            failure = AnySizeError(.io, "cannot write '\(path)': \(describe(errno))")
        }
        if close(fd) != 0, failure == nil {
            failure = AnySizeError(.io, "cannot write '\(path)': \(describe(errno))")
        }
        if failure == nil, rename(tempPath, target) != 0 {
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

    /// A fresh temporary name beside `target`: `.NAME.<hex>.tmp`, or `.anysize.<hex>.tmp` when NAME is so long
    /// that the suffix would exceed the 255-byte file-name limit.
    static func temporaryPath(for target: String) -> String {
        let (folder, name) = split(target)
        let stem = name.utf8.count <= 200 ? name : "anysize"
        return (folder == "/" ? "" : folder) + "/." + stem + "." + String(UInt64.random(in: 0 ... .max), radix: 16) + ".tmp"
    }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let n = systemWrite(fd, base + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw AnySizeError(.io, "cannot write '\(path)': \(describe(errno)); free disk space or choose another folder")
            }
            offset += n
        }
    }

    /// The folder part (`"."` when there is none) and the last component of a path.
    static func split(_ path: String) -> (folder: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let folder = String(path[..<slash])
        return (folder.isEmpty ? "/" : folder, String(path[path.index(after: slash)...]))
    }

    static func folderError(_ code: Int32, path: String, folder: String) -> AnySizeError {
        var info = stat()
        let folderExists = stat(folder, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
        switch code {
        case ENOENT where folderExists:
            return AnySizeError(.io, "cannot write '\(path)': folder '\(folder)' does not accept new files; choose another output folder")
        case ENOENT:
            return AnySizeError(.io, "cannot write '\(path)': folder '\(folder)' does not exist; create it or choose another output path")
        case ENAMETOOLONG:
            return AnySizeError(.io, "cannot write '\(path)': the file name is too long; use a name of at most 200 characters")
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

/// The POSIX `write`, outside `FileIO` whose own `write(to:_:)` would shadow it.
private func systemWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int { write(fd, bytes, count) }
