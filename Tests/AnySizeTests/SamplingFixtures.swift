import AnySize
import Foundation
import XCTest

/// Reads the reference files written by tools/fixtures_sampling.py.
enum SamplingFixtures {
    static func load<T: Decodable>(_ name: String, as type: T.Type) throws -> T {
        let url = try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures/sampling"),
                                "missing fixture Fixtures/sampling/\(name).json; run tools/fixtures_sampling.py")
        return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
    }

    /// Little-endian float32 values from base64.
    static func floats(_ base64: String) throws -> [Float] {
        let data = try XCTUnwrap(Data(base64Encoded: base64), "bad base64 in fixture")
        XCTAssertEqual(data.count % 4, 0)
        return data.withUnsafeBytes { raw in
            (0 ..< data.count / 4).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }

    /// Little-endian float64 values from base64.
    static func doubles(_ base64: String) throws -> [Double] {
        let data = try XCTUnwrap(Data(base64Encoded: base64), "bad base64 in fixture")
        XCTAssertEqual(data.count % 8, 0)
        return data.withUnsafeBytes { raw in
            (0 ..< data.count / 8).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
        }
    }

    /// max |a - b| / max(1, |b|) over paired values.
    static func normalizedError(_ actual: [Float], _ expected: [Float]) -> Float {
        precondition(actual.count == expected.count, "count \(actual.count) vs \(expected.count)")
        var worst: Float = 0
        for (a, b) in zip(actual, expected) { worst = max(worst, abs(a - b) / max(1, abs(b))) }
        return worst
    }
}
