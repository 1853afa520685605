import AnySize
import AnySizeServer
import Foundation
import XCTest

/// A1111's model hashes: the SHA-256 of single-file models (`sha256`, `hash`, the title "name [hash]",
/// `sd_checkpoint_hash`, "Model hash" in infotexts), computed in the background and cached by path, size and
/// modification time; folders have none.
final class ModelHashTests: XCTestCase {
    /// `sha256sum`'s digest of a file, the reference.
    static func reference(_ path: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        process.arguments = [path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(String(decoding: data, as: UTF8.self).prefix(64))
    }

    /// Polls `/sdapi/v1/sd-models` until every `.safetensors` entry has a hash.
    static func hashedModels(_ server: TestServer) async throws -> [String: [String: Any]] {
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            let list = try JSONSerialization.jsonObject(with: try await server.get("/sdapi/v1/sd-models").body) as? [[String: Any]] ?? []
            let files = list.filter { ($0["filename"] as? String)?.hasSuffix(".safetensors") == true }
            if files.allSatisfy({ $0["sha256"] is String }) {
                return Dictionary(list.map { (URL(fileURLWithPath: $0["filename"] as? String ?? "").lastPathComponent, $0) }) { a, _ in a }
            }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        throw AnySizeError(.io, "the model hashes did not arrive in 120 s")
    }

    func testSingleFilesAreHashedAsSha256sumAndReportedAsA1111Does() async throws {
        // Files of sizes around SHA-256's 55/56/64-byte padding boundaries and one of several read chunks, besides
        // the real tiny model file (which the server also loads).
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("anysize-hash-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var generator = SystemRandomNumberGenerator()
        for size in [0, 55, 56, 64, 119, (8 << 20) * 2 + 13] {
            FileManager.default.createFile(atPath: dir + "/bytes-\(size).safetensors",
                                           contents: Data((0 ..< size).map { _ in UInt8.random(in: 0 ... 255, using: &generator) }))
        }
        try FileManager.default.copyItem(atPath: TestServer.fixtures.appendingPathComponent("tiny-sd1.safetensors").path,
                                         toPath: dir + "/tiny-sd1.safetensors")
        let server = try await TestServer.start { $0.modelsDirectory = dir }
        let models = try await Self.hashedModels(server)
        for (name, model) in models where name.hasSuffix(".safetensors") {
            let sha = try Self.reference(dir + "/" + name)
            XCTAssertEqual(model["sha256"] as? String, sha, name)
            XCTAssertEqual(model["hash"] as? String, String(sha.prefix(10)), name)
            XCTAssertEqual(model["title"] as? String, "\(name) [\(sha.prefix(10))]", name)
        }
        XCTAssertTrue(models["tiny-sd1"]?["sha256"] is NSNull, "a folder has no hash")
        XCTAssertEqual(models["tiny-sd1"]?["title"] as? String, "tiny-sd1")

        let sha = try Self.reference(dir + "/tiny-sd1.safetensors")
        let title = "tiny-sd1.safetensors [\(sha.prefix(10))]"
        let set = try await server.post("/sdapi/v1/options", ["sd_model_checkpoint": title])
        XCTAssertEqual(set.status, 200, set.detail)
        let options = try await server.get("/sdapi/v1/options").object()
        XCTAssertEqual(options["sd_model_checkpoint"] as? String, title)
        XCTAssertEqual(options["sd_checkpoint_hash"] as? String, sha)
        let answer = try await server.post("/sdapi/v1/txt2img", ["prompt": "x", "width": 64, "height": 64, "steps": 1] as [String: Any])
        await server.stop()
        XCTAssertEqual(answer.status, 200, answer.detail)
        let info = try XCTUnwrap(JSONSerialization.jsonObject(with: Data((try answer.object()["info"] as? String ?? "").utf8)) as? [String: Any])
        XCTAssertEqual(info["sd_model_hash"] as? String, String(sha.prefix(10)))
        let text = try XCTUnwrap((info["infotexts"] as? [String])?.first)
        XCTAssertTrue(text.contains("Model hash: \(sha.prefix(10)), Model: tiny-sd1.safetensors"), text)
    }

    /// A restart takes the hash from the store while the file keeps its size and modification time (it does not
    /// read the file again), and hashes it again once either changes.
    func testHashesAreCachedByPathSizeAndModificationTime() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("anysize-hash-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let state = dir + "/state"
        let file = dir + "/models/m.safetensors"
        try FileManager.default.createDirectory(atPath: dir + "/models", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: file, contents: Data(repeating: 1, count: 1000))
        // A whole second, so setting it again below gives back exactly the same time.
        let mtime = Date(timeIntervalSince1970: 1_700_000_000)
        try FileManager.default.setAttributes([.modificationDate: mtime], ofItemAtPath: file)
        let first = try await TestServer.start { $0.modelsDirectory = dir + "/models"; $0.stateDirectory = state }
        let original = try await Self.hashedModels(first)["m.safetensors"]?["sha256"] as? String
        await first.stop(keepState: true)
        XCTAssertEqual(original, try Self.reference(file))

        // Same size and modification time, other bytes: the cached hash is reported, so the file was not re-read.
        FileManager.default.createFile(atPath: file, contents: Data(repeating: 2, count: 1000))
        try FileManager.default.setAttributes([.modificationDate: mtime], ofItemAtPath: file)
        let second = try await TestServer.start { $0.modelsDirectory = dir + "/models"; $0.stateDirectory = state }
        let cached = try await Self.hashedModels(second)["m.safetensors"]?["sha256"] as? String
        await second.stop(keepState: true)
        XCTAssertEqual(cached, original)

        // A new modification time: hashed again.
        try FileManager.default.setAttributes([.modificationDate: mtime.addingTimeInterval(10)], ofItemAtPath: file)
        let third = try await TestServer.start { $0.modelsDirectory = dir + "/models"; $0.stateDirectory = state }
        let fresh = try await Self.hashedModels(third)["m.safetensors"]?["sha256"] as? String
        await third.stop(keepState: true)
        XCTAssertEqual(fresh, try Self.reference(file))
        XCTAssertNotEqual(fresh, original)
    }
}
