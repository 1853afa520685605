import AnySize
import Foundation
import GRDB

/// The jobs of the server in SQLite (`STATE/jobs.sqlite`): every accepted txt2img/img2img request with its body
/// (seed resolved), its state, and its answer once finished, so a restart loses no accepted job.
final class JobStore: @unchecked Sendable {
    enum State: String, Sendable { case queued, running, done, failed }

    /// One stored job.
    struct Record: Sendable {
        let id: String
        let kind: GenerationJob.Kind
        let body: Data
        let state: State
        let created: Date
        let result: Data?
        let error: String?
        let status: Int?
    }

    private let database: DatabaseQueue

    /// Opens (creating) `directory/jobs.sqlite`.
    init(directory: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            database = try DatabaseQueue(path: URL(fileURLWithPath: directory).appendingPathComponent("jobs.sqlite").path)
            try database.write { db in
                try db.create(table: "job", ifNotExists: true) { t in
                    t.primaryKey("id", .text)
                    t.column("kind", .text).notNull()
                    t.column("body", .blob).notNull()
                    t.column("state", .text).notNull()
                    t.column("created", .double).notNull()
                    t.column("sequence", .integer).notNull()
                    t.column("result", .blob)
                    t.column("error", .text)
                    t.column("status", .integer)
                }
                // The SHA-256 of single-file models, valid while the file keeps its size and modification time.
                try db.create(table: "model_hash", ifNotExists: true) { t in
                    t.primaryKey("path", .text)
                    t.column("size", .integer).notNull()
                    t.column("mtime", .double).notNull()
                    t.column("sha256", .text).notNull()
                }
            }
        } catch let error as DatabaseError {
            throw AnySizeError(.io, "--state \(directory): cannot open the job database (\(error.message ?? "\(error)")); check the folder's permissions")
        }
    }

    /// Records an accepted job (state queued).
    func insert(id: String, kind: GenerationJob.Kind, body: Data) throws {
        try database.write { db in
            let next = try Int.fetchOne(db, sql: "SELECT COALESCE(MAX(sequence), 0) + 1 FROM job") ?? 1
            try db.execute(sql: "INSERT INTO job (id, kind, body, state, created, sequence) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [id, kind.rawValue, body, State.queued.rawValue, Date().timeIntervalSince1970, next])
        }
    }

    func exists(_ id: String) throws -> Bool {
        try database.read { db in try Bool.fetchOne(db, sql: "SELECT COUNT(*) > 0 FROM job WHERE id = ?", arguments: [id]) ?? false }
    }

    func markRunning(_ id: String) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE job SET state = ? WHERE id = ?", arguments: [State.running.rawValue, id])
        }
    }

    /// Stores the answer (JSON) of a finished job, or its error and HTTP status.
    func finish(_ id: String, result: Data?, error: String?, status: Int?) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE job SET state = ?, result = ?, error = ?, status = ? WHERE id = ?",
                           arguments: [(result != nil ? State.done : State.failed).rawValue, result, error, status, id])
        }
    }

    func record(_ id: String) throws -> Record? {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM job WHERE id = ?", arguments: [id]).map(Self.record)
        }
    }

    /// Jobs not finished (queued or interrupted by a stop while running), oldest first.
    func unfinished() throws -> [Record] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM job WHERE state IN (?, ?) ORDER BY sequence",
                             arguments: [State.queued.rawValue, State.running.rawValue]).map(Self.record)
        }
    }

    /// Deletes finished jobs older than `age` seconds.
    func expire(olderThan age: TimeInterval) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM job WHERE state IN (?, ?) AND created < ?",
                           arguments: [State.done.rawValue, State.failed.rawValue, Date().timeIntervalSince1970 - age])
        }
    }

    /// The cached SHA-256 of the file at `path`, if it was hashed with this size and modification time.
    func modelHash(path: String, size: Int64, mtime: Double) throws -> String? {
        try database.read { db in
            try String.fetchOne(db, sql: "SELECT sha256 FROM model_hash WHERE path = ? AND size = ? AND mtime = ?",
                                arguments: [path, size, mtime])
        }
    }

    func setModelHash(path: String, size: Int64, mtime: Double, sha256: String) throws {
        try database.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO model_hash (path, size, mtime, sha256) VALUES (?, ?, ?, ?)",
                           arguments: [path, size, mtime, sha256])
        }
    }

    private static func record(_ row: Row) -> Record {
        Record(id: row["id"], kind: GenerationJob.Kind(rawValue: row["kind"]) ?? .txt2img, body: row["body"],
               state: State(rawValue: row["state"]) ?? .failed, created: Date(timeIntervalSince1970: row["created"]),
               result: row["result"], error: row["error"], status: row["status"])
    }
}
