import AnySize
import Foundation
import XCTest

/// Locates committed fixtures and compares tensors with the project's normalised error bound.
enum Fixtures {
    static var root: URL {
        get throws {
            guard let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
                throw AnySizeError(.fileNotFound, "test fixtures are missing from the test bundle")
            }
            return url
        }
    }

    static func path(_ relative: String) throws -> String { try root.appendingPathComponent(relative).path }

    /// Decodes the JSON fixture at `relative` (snake_case keys, as the Python fixture scripts write them).
    static func decode<T: Decodable>(_ type: T.Type, _ relative: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(type, from: Data(contentsOf: root.appendingPathComponent(relative)))
    }

    /// The reference index written by tools/make_fixtures.py.
    static func referenceIndex() throws -> [String: Any] {
        var text = try String(contentsOf: root.appendingPathComponent("reference/index.json"), encoding: .utf8)
        // Python's json writes bare -Infinity / Infinity / NaN (e.g. a scheduler's lambda_min_clipped).
        for token in ["-Infinity", "Infinity", "NaN"] { text = text.replacingOccurrences(of: ": \(token)", with: ": \"\(token)\"") }
        guard let index = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw AnySizeError(.corruptFile, "reference/index.json is not an object")
        }
        return index
    }

    static func referenceCases() throws -> [[String: Any]] {
        try referenceIndex()["cases"] as? [[String: Any]] ?? []
    }

    private static let cacheLock = NSLock()
    nonisolated(unsafe) private static var checkpoints: [String: StableDiffusionCheckpoint] = [:]
    nonisolated(unsafe) private static var pipelines: [String: StableDiffusionPipeline] = [:]

    /// A pipeline (built once per process) of the fixture checkpoint at `relative`, a folder or a single file
    /// read with the configs of the folder `configFolder`. Its own load: a pipeline releases the checkpoint's
    /// tensors, so the shared `checkpoint` cache is not used.
    static func pipeline(_ relative: String, configFolder: String? = nil) throws -> StableDiffusionPipeline {
        cacheLock.lock()
        defer { cacheLock.unlock() }
        if let p = pipelines[relative] { return p }
        let checkpoint = try configFolder.map { try StableDiffusionCheckpoint.load(path: try path(relative),
                                                                                   configFolder: try path($0)) }
            ?? StableDiffusionCheckpoint.load(path: try path(relative))
        let p = try StableDiffusionPipeline(checkpoint: checkpoint)
        pipelines[relative] = p
        return p
    }

    /// Loads (once per process) a fixture checkpoint by relative path.
    static func checkpoint(_ relative: String) throws -> StableDiffusionCheckpoint {
        cacheLock.lock()
        defer { cacheLock.unlock() }
        if let c = checkpoints[relative] { return c }
        let c = try StableDiffusionCheckpoint.load(path: try path(relative))
        checkpoints[relative] = c
        return c
    }
}

/// Max-abs difference and the bound tolerance * max(1, max|reference|).
struct Comparison: CustomStringConvertible {
    let maxAbs: Float
    let referenceMax: Float
    let tolerance: Float
    var bound: Float { tolerance * max(1, referenceMax) }
    var passes: Bool { maxAbs <= bound && !maxAbs.isNaN }
    var relative: Float { maxAbs / max(1, referenceMax) }
    var description: String {
        String(format: "max-abs %.3g (relative %.3g, bound %.3g, max|ref| %.3g)", maxAbs, relative, bound, referenceMax)
    }
}

func compare(_ actual: Tensor, _ reference: Tensor, tolerance: Float) -> Comparison {
    precondition(actual.shape == reference.shape, "shape \(actual.shape) vs reference \(reference.shape)")
    var m: Float = 0
    for i in 0 ..< actual.count {
        let d = abs(actual.pointer[i] - reference.pointer[i])
        if d.isNaN { m = .nan; break }
        m = max(m, d)
    }
    return Comparison(maxAbs: m, referenceMax: reference.maxAbs, tolerance: tolerance)
}

func assertClose(_ actual: Tensor, _ reference: Tensor, tolerance: Float, _ label: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.shape, reference.shape, "\(label): shape", file: file, line: line)
    guard actual.shape == reference.shape else { return }
    let c = compare(actual, reference, tolerance: tolerance)
    print("[parity] \(label): \(c)")
    XCTAssertTrue(c.passes, "\(label): \(c)", file: file, line: line)
}
