import Foundation

/// The files a run reads (model files, configs, the init image), so that no output replaces one of them.
/// Compared by resolved path and by device and inode, so symbolic and hard links to an input are caught too.
public struct InputFiles: Sendable {
    struct Identity: Sendable {
        let path: String
        let resolved: String
        let device: UInt64
        let inode: UInt64
    }

    private(set) var identities: [Identity] = []

    public init() {}

    /// Adds `path`, or every file below it when it is a folder (a diffusers model folder). Paths that do not
    /// exist are skipped (the loader reports them).
    public mutating func add(_ path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            guard let walker = FileManager.default.enumerator(atPath: path) else { return }
            var count = 0
            while let item = walker.nextObject() as? String, count < 10_000 {
                let child = path + "/" + item
                var childInfo = stat()
                if stat(child, &childInfo) == 0, (childInfo.st_mode & S_IFMT) != S_IFDIR { add(child) }
                count += 1
            }
            return
        }
        identities.append(Identity(path: path, resolved: FileIO.resolvedPath(path) ?? path,
                                   device: UInt64(info.st_dev), inode: UInt64(info.st_ino)))
    }

    /// The input that `path` names (after following links), if any.
    public func input(matching path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        let resolved = FileIO.resolvedPath(path)
        return identities.first {
            ($0.device == UInt64(info.st_dev) && $0.inode == UInt64(info.st_ino)) || $0.resolved == resolved
        }?.path
    }
}

extension FileIO {
    /// Where a write to a path lands.
    enum Destination: Equatable {
        /// A new or regular file, replaced atomically at this resolved path (the target of a symbolic link).
        case file(String)
        /// A character device or FIFO, written to directly.
        case stream
    }

    /// The absolute path with every symbolic link resolved, or nil when it does not exist.
    static func resolvedPath(_ path: String) -> String? {
        guard let pointer = realpath(path, nil) else { return nil }
        defer { free(pointer) }
        return String(cString: pointer)
    }

    /// Classifies `path` for `write(to:_:)`.
    /// - Throws: `AnySizeError(.io)` for an empty name, a folder, a dangling link, a socket or block device, or a
    ///   missing parent folder.
    static func destination(of path: String) throws -> Destination {
        guard !path.isEmpty else {
            throw AnySizeError(.io, "the output path is empty; give a file name such as out.png")
        }
        guard !path.hasSuffix("/") else {
            throw AnySizeError(.io, "cannot write '\(path)': it names a folder (ends in '/'); give the path of a file")
        }
        var link = stat()
        guard lstat(path, &link) == 0 else {
            let (folder, name) = split(path)
            guard errno != ENAMETOOLONG, name.utf8.count <= 255 else {
                throw AnySizeError(.io, "cannot write '\(path)': the file name is too long; use a name of at most 200 characters")
            }
            // A new file: it is created in the (resolved) folder.
            var info = stat()
            guard stat(folder, &info) == 0 else {
                throw AnySizeError(.io, "cannot write '\(path)': folder '\(folder)' does not exist; create it or choose another output path")
            }
            guard (info.st_mode & S_IFMT) == S_IFDIR else {
                throw AnySizeError(.io, "cannot write '\(path)': '\(folder)' is not a folder; choose another output path")
            }
            let resolvedFolder = resolvedPath(folder) ?? folder
            return .file((resolvedFolder == "/" ? "" : resolvedFolder) + "/" + name)
        }
        var info = stat()
        guard stat(path, &info) == 0, let resolved = resolvedPath(path) else {
            throw AnySizeError(.io, "cannot write '\(path)': it is a symbolic link to a missing file (or a loop); remove the link or choose another output path")
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return .file(resolved)
        case S_IFCHR, S_IFIFO: return .stream
        case S_IFDIR:
            throw AnySizeError(.io, "cannot write '\(path)': it is a folder; give the path of a file (inside it or elsewhere)")
        default:
            throw AnySizeError(.io, "cannot write '\(path)': it is not a regular file (a socket or block device); choose another output path")
        }
    }

    /// Checks, before any work, that `path` can be written by `write(to:_:)` without harm: `flag` names the option
    /// in messages. Creates and removes a temporary file beside the destination, so a missing or read-only folder,
    /// a file system that takes no new files (`/proc`) or a name that is too long is found now, not after sampling.
    /// - Throws: `AnySizeError(.invalidArgument)` when `path` resolves to one of `inputs`; `.io` otherwise.
    public static func checkOutput(_ path: String, flag: String, inputs: InputFiles) throws {
        let destination: Destination
        do {
            destination = try self.destination(of: path)
        } catch let error as AnySizeError {
            throw AnySizeError(error.kind, "\(flag): \(error.message)")
        }
        if let input = inputs.input(matching: path) {
            throw AnySizeError(.invalidArgument,
                "\(flag) '\(path)' is \(input == path ? "one of this run's inputs" : "the same file as the input '\(input)'"); "
                + "writing it would destroy the input, choose another output path")
        }
        guard case .file(let target) = destination else { return }
        let probe = temporaryPath(for: target)
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard fd >= 0 else {
            let error = folderError(errno, path: path, folder: split(target).folder)
            throw AnySizeError(error.kind, "\(flag): \(error.message)")
        }
        close(fd)
        unlink(probe)
    }
}

/// Temporary files being written, removed when the process gets SIGINT, SIGTERM or SIGHUP
/// (`removeOnSignals()`), so an interrupted write leaves nothing behind.
///
/// The paths live in a fixed table of C strings so the signal handler touches no Swift runtime.
public enum TemporaryFiles {
    static let slotCount = 32
    static let slotSize = 4096
    private nonisolated(unsafe) static let table: UnsafeMutablePointer<CChar> = {
        let table = UnsafeMutablePointer<CChar>.allocate(capacity: slotCount * slotSize)
        table.initialize(repeating: 0, count: slotCount * slotSize)
        return table
    }()
    private static let lock = NSLock()
    private nonisolated(unsafe) static var used = [Bool](repeating: false, count: slotCount)

    /// Installs the handlers (once; idempotent). A handled signal removes the registered files, then ends the
    /// process as the signal would have.
    public static func removeOnSignals() {
        _ = table
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig) { received in
                for slot in 0 ..< TemporaryFiles.slotCount {
                    let path = TemporaryFiles.slotPointer(slot)
                    if path.pointee != 0 { unlink(path) }
                }
                signal(received, SIG_DFL)
                raise(received)
            }
        }
    }

    /// The temporary files being written now.
    public static var registered: [String] {
        lock.lock()
        defer { lock.unlock() }
        return (0 ..< slotCount).filter { used[$0] }.map { String(cString: slotPointer($0)) }
    }

    static func slotPointer(_ slot: Int) -> UnsafeMutablePointer<CChar> { table + slot * slotSize }

    /// Registers `path`; returns its slot (nil when the table is full or the path too long: the file is then
    /// still removed on errors, only not on signals).
    static func register(_ path: String) -> Int? {
        let bytes = Array(path.utf8CString)
        guard bytes.count <= slotSize else { return nil }
        lock.lock()
        defer { lock.unlock() }
        guard let slot = used.firstIndex(of: false) else { return nil }
        used[slot] = true
        let target = slotPointer(slot)
        // The first byte last: the handler sees either an empty slot or a complete path.
        bytes.withUnsafeBufferPointer { source in
            guard let base = source.baseAddress else { return }
            (target + 1).update(from: base + 1, count: bytes.count - 1)
        }
        target.pointee = bytes[0]
        return slot
    }

    static func unregister(_ slot: Int?) {
        guard let slot else { return }
        lock.lock()
        defer { lock.unlock() }
        slotPointer(slot).pointee = 0
        used[slot] = false
    }
}
