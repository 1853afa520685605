import AnySize
import Foundation

/// The SHA-256 of the single-file models, as A1111 reports them: `sha256` and `hash` (its first 10 hex digits)
/// in `/sdapi/v1/sd-models`, the title "name.safetensors [hash]", `sd_checkpoint_hash` in `/options`, and
/// "Model hash" in infotexts. Hashed once on a background thread at start (the loaded model first) and cached in
/// the job store keyed by path, size and modification time, so a 4 GB file is not read again at every start.
/// Folders (diffusers layout) have no hash, as in A1111.
final class ModelHashes: @unchecked Sendable {
    private let lock = NSLock()
    private var known: [String: String] = [:]
    private var pending: Int = 0
    private let store: JobStore

    init(store: JobStore) {
        self.store = store
    }

    /// The full hex SHA-256 of `entry`'s file, nil for a folder or until it is hashed.
    func sha256(_ entry: ModelEntry) -> String? {
        lock.withLock { known[entry.path] }
    }

    /// A1111's short hash: the first 10 hex digits.
    func shortHash(_ entry: ModelEntry) -> String? {
        sha256(entry).map { String($0.prefix(10)) }
    }

    /// A1111's title: "name [short hash]" once hashed, else the name.
    func title(_ entry: ModelEntry) -> String {
        shortHash(entry).map { "\(entry.name) [\($0)]" } ?? entry.name
    }

    /// Whether every file of `start` has been hashed (or failed).
    var finished: Bool { lock.withLock { pending == 0 } }

    /// Takes the cached hashes from the store and hashes the rest of `entries`' files, in order, on a background
    /// thread. A file that cannot be read keeps a null hash.
    func start(_ entries: [ModelEntry]) {
        var toHash: [(entry: ModelEntry, size: Int64, mtime: Double)] = []
        for entry in entries {
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: entry.path),
                  attributes[.type] as? FileAttributeType == .typeRegular,
                  let size = (attributes[.size] as? NSNumber)?.int64Value,
                  let mtime = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 else { continue }
            if let cached = try? store.modelHash(path: entry.path, size: size, mtime: mtime) {
                lock.withLock { known[entry.path] = cached }
            } else {
                toHash.append((entry, size, mtime))
            }
        }
        guard !toHash.isEmpty else { return }
        lock.withLock { pending = toHash.count }
        let files = toHash
        let thread = Thread { [self] in
            for file in files {
                if let digest = try? SHA256.file(file.entry.path) {
                    try? store.setModelHash(path: file.entry.path, size: file.size, mtime: file.mtime, sha256: digest)
                    lock.withLock { known[file.entry.path] = digest }
                }
                lock.withLock { pending -= 1 }
            }
        }
        thread.name = "anysize-model-hash"
        thread.qualityOfService = .background
        thread.start()
    }

    /// The `sd-models` JSON object of `entry`.
    func json(_ entry: ModelEntry) -> [String: Any] {
        let modelName = URL(fileURLWithPath: entry.path).deletingPathExtension().lastPathComponent
        return ["title": title(entry), "model_name": modelName, "hash": shortHash(entry) ?? NSNull(),
                "sha256": sha256(entry) ?? NSNull(), "filename": entry.path, "config": NSNull()]
    }
}
