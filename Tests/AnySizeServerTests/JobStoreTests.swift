import AnySize
import AnySizeServer
import Foundation
import XCTest

/// The SQLite job store: a stop mid-queue loses no accepted job, `/anysize/v1/jobs/{id}` reports them.
final class JobStoreTests: XCTestCase {
    /// (compose none: the direct 64x64 canvas; `auto` would render the 512-trained tiny model's area.)
    func testRestartRunsEveryAcceptedJobAgain() async throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("anysize-restart-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: state) }
        let first = try await TestServer.start { $0.stateDirectory = state }
        let long = Task { try? await first.post("/sdapi/v1/txt2img", ["prompt": "long", "width": 64, "height": 64, "steps": 300,
                                                                    "sampler_name": "Euler", "seed": -1, "force_task_id": "a",
                                                                    "anysize_compose": "none"] as [String: Any]) }
        _ = try await first.waitForProgress { ($0.state["sampling_step"] as? Int ?? 0) >= 1 }
        var queued: [Task<TestServer.Answer?, Never>] = []
        for (i, id) in ["b", "c"].enumerated() {
            queued.append(Task { try? await first.post("/sdapi/v1/txt2img", ["prompt": "cube \(i)", "width": 64, "height": 64, "steps": 3,
                                                                           "seed": 10 + i, "force_task_id": id, "anysize_compose": "none"] as [String: Any]) })
            _ = try await first.waitForProgress { ($0.state["anysize_queued"] as? Int) == i + 1 }
        }
        let waiting = try await first.get("/anysize/v1/jobs/c").object()
        XCTAssertEqual(waiting["state"] as? String, "queued")
        XCTAssertEqual(waiting["position"] as? Int, 2)
        let taken = try await first.post("/sdapi/v1/txt2img", ["prompt": "x", "force_task_id": "b"])
        XCTAssertEqual(taken.status, 422)
        let running = try await first.get("/anysize/v1/jobs/a").object()
        XCTAssertEqual(running["state"] as? String, "running")
        XCTAssertEqual(running["position"] as? Int, 0)

        await first.stop(keepState: true)
        for task in queued { _ = await task.value }
        _ = await long.value

        let second = try await TestServer.start { $0.stateDirectory = state }
        var results: [String: [String: Any]] = [:]
        for id in ["a", "b", "c"] {
            let done = try await second.waitForJob(id)
            XCTAssertEqual(done["state"] as? String, "done", "\(id): \(done)")
            results[id] = try XCTUnwrap(done["result"] as? [String: Any])
        }
        // The rerun of b equals a fresh request with its parameters; a kept the seed it was given at acceptance.
        let fresh = try await second.post("/sdapi/v1/txt2img", ["prompt": "cube 0", "width": 64, "height": 64, "steps": 3, "seed": 10,
                                                                 "anysize_compose": "none"] as [String: Any])
        XCTAssertEqual((results["b"]?["images"] as? [String])?.first, (try fresh.object()["images"] as? [String])?.first)
        let infoA = try JSONSerialization.jsonObject(with: Data((results["a"]?["info"] as? String ?? "").utf8)) as? [String: Any]
        XCTAssertNotNil(infoA?["seed"] as? Int)
        XCTAssertEqual(infoA?["anysize_interrupted"] as? Bool, false)
        let missing = try await second.get("/anysize/v1/jobs/nope")
        XCTAssertEqual(missing.status, 404)
        await second.stop()
    }

    /// A stop mid-generation ends sampling at the next model call (well before the run would end), and the job,
    /// kept as running in the store, runs again after the restart.
    func testStopMidGenerationIsPromptAndTheJobRunsAgain() async throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("anysize-stop-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: state) }
        let first = try await TestServer.start { $0.stateDirectory = state }
        let run = Task { try? await first.post("/sdapi/v1/txt2img", ["prompt": "long", "width": 128, "height": 96, "steps": 500, "seed": 3,
                                                                   "sampler_name": "Euler", "anysize_compose": "none", "force_task_id": "long"] as [String: Any]) }
        let progress = try await first.waitForProgress { ($0.state["sampling_step"] as? Int ?? 0) >= 3 }
        let stepsLeft = 500 - (progress.state["sampling_step"] as? Int ?? 0)
        let started = Date()
        await first.stop(keepState: true)
        let stopSeconds = Date().timeIntervalSince(started)
        // The waiting client is answered 503, or its connection closes with the server.
        if let answer = await run.value { XCTAssertEqual(answer.status, 503, answer.detail) }
        // eta_relative estimates the rest of the run; the stop took a small part of it.
        let eta = try XCTUnwrap(progress["eta_relative"] as? Double)
        XCTAssertLessThan(stopSeconds, max(2, eta / 4), "stop took \(stopSeconds) s with \(stepsLeft) steps (about \(eta) s) left")

        let second = try await TestServer.start { $0.stateDirectory = state }
        _ = try await second.waitForProgress { ($0.state["sampling_step"] as? Int ?? 0) >= 1 }
        let rerun = try await second.get("/anysize/v1/jobs/long").object()
        XCTAssertEqual(rerun["state"] as? String, "running")
        let interrupted = try await second.request("POST", "/sdapi/v1/interrupt").status
        XCTAssertEqual(interrupted, 200)
        let done = try await second.waitForJob("long")
        await second.stop()
        XCTAssertEqual(done["state"] as? String, "done", "\(done)")
        let info = try JSONSerialization.jsonObject(with: Data((((done["result"] as? [String: Any])?["info"] as? String) ?? "").utf8)) as? [String: Any]
        XCTAssertEqual(info?["seed"] as? Int, 3)
        XCTAssertEqual(info?["anysize_interrupted"] as? Bool, true)
    }
}
