import AnySize
import Foundation
import XCTest

/// A1111 prompt syntax: parser, chunks and weighted embeddings against tools/fixtures_prompts.py.
final class PromptWeightingTests: XCTestCase {
    private func fixture(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.path("prompts/" + name)))
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw AnySizeError(.corruptFile, "prompts/\(name) is not an object")
        }
        return object
    }

    func testExamples() {
        func runs(_ text: String) -> [String] {
            PromptParser.parse(text).map { String(format: "%@:%.4f", $0.text, $0.weight) }
        }
        XCTAssertEqual(runs("a (red:1.2) car and a [blue] bike"),
                       ["a :1.0000", "red:1.2000", " car and a :1.0000", "blue:0.9091", " bike:1.0000"])
        XCTAssertEqual(runs("((cat))"), ["cat:1.2100"])
        XCTAssertEqual(runs("(a (b:2) c)"), ["a :1.1000", "b:2.2000", " c:1.1000"])
        XCTAssertEqual(runs("\\(literal\\) \\[too\\]"), ["(literal) [too]:1.0000"])
        XCTAssertEqual(runs("((unclosed"), ["unclosed:1.2100"])
        XCTAssertEqual(runs("stray) ]"), ["stray) ]:1.0000"])
        XCTAssertEqual(runs("a BREAK b"), ["a:1.0000", "BREAK:-1.0000", "b:1.0000"])
        XCTAssertEqual(runs("aBREAKb"), ["aBREAKb:1.0000"])
        XCTAssertEqual(runs(""), [":1.0000"])

        // Chunks: "a (red:1.2) car" gives start, a, red (x1.2), car, end, pads; a BREAK starts a second window.
        let tokenizer = try? CLIPTokenizer.bundled()
        guard let tokenizer else { return XCTFail("bundled tokenizer") }
        let chunks = tokenizer.weightedChunks(PromptParser.parse("a (red:1.2) car BREAK [cat]"))
        XCTAssertEqual(chunks.count, 2)
        XCTAssertEqual(Array(chunks[0].ids.prefix(5)), [49406, 320, 736, 1615, 49407])
        XCTAssertEqual(Array(chunks[0].weights.prefix(5)), [1, 1, 1.2, 1, 1])
        XCTAssertEqual(Array(chunks[1].ids.prefix(3)), [49406, 2368, 49407])
        XCTAssertEqual(Array(chunks[1].weights.prefix(3)), [1, Float(1 / 1.1), 1])
        XCTAssertTrue(chunks.allSatisfy { $0.ids.count == 77 && $0.weights.count == 77 })
        XCTAssertFalse(tokenizer.weightedChunks(PromptParser.parse("a red car")).contains { $0.isWeighted })
    }

    func testParserAndChunksMatchReference() throws {
        let cases = try fixture("parse.json")["cases"] as? [[String: Any]] ?? []
        XCTAssertGreaterThan(cases.count, 40)
        let sd1 = try CLIPTokenizer.bundled(), sd2 = try CLIPTokenizer.bundled(padWithEndOfText: false)
        for c in cases {
            let prompt = c["prompt"] as? String ?? ""
            let expected = (c["runs"] as? [[Any]] ?? []).map {
                PromptRun(text: $0[0] as? String ?? "", weight: ($0[1] as? NSNumber)?.doubleValue ?? .nan)
            }
            // Foundation's JSON reader on Linux may miss the last bit of a decimal: texts exact, weights to 1e-12.
            let runs = PromptParser.parse(prompt)
            XCTAssertEqual(runs.map(\.text), expected.map(\.text), "runs of \(prompt.debugDescription)")
            XCTAssertTrue(runs.count == expected.count && zip(runs, expected).allSatisfy { abs($0.weight - $1.weight) <= 1e-12 },
                          "weights of \(prompt.debugDescription): \(runs.map(\.weight)) vs \(expected.map(\.weight))")
            for (name, tokenizer) in [("sd1", sd1), ("sd2", sd2)] {
                let reference = c[name] as? [[String: Any]] ?? []
                let chunks = tokenizer.weightedChunks(runs)
                XCTAssertEqual(chunks.map(\.ids), reference.map { $0["ids"] as? [Int] ?? [] },
                               "\(name) ids of \(prompt.debugDescription)")
                let weights = reference.flatMap { ($0["weights"] as? [NSNumber] ?? []).map { Float($0.doubleValue) } }
                let actual = chunks.flatMap(\.weights)
                XCTAssertTrue(actual.count == weights.count && zip(actual, weights).allSatisfy { abs($0 - $1) <= 1e-6 },
                              "\(name) weights of \(prompt.debugDescription)")
            }
        }
    }

    func testWeightedEmbeddingsMatchReference() throws {
        let index = try fixture("embeddings.json")["cases"] as? [[String: Any]] ?? []
        XCTAssertEqual(index.count, 16)
        let references = try SafeTensorsFile(path: try Fixtures.path("prompts/embeddings.safetensors"))
        for c in index {
            let key = c["key"] as? String ?? "", model = c["model"] as? String ?? ""
            let pipeline = try Fixtures.pipeline(model)
            let (positive, negative) = try pipeline.encodePrompts(
                [(c["prompt"] as? String ?? "", c["negative"] as? String ?? "")], clipSkip: c["clip_skip"] as? Int ?? 1)
            assertClose(positive, try references.tensor(key + "/positive"), tolerance: 1e-4, "\(key) positive")
            assertClose(negative, try references.tensor(key + "/negative"), tolerance: 1e-4, "\(key) negative")
        }
    }

    func testPlainSyntaxIgnoresEmphasis() throws {
        let pipeline = try Fixtures.pipeline("tiny-sd1")
        let plain = try pipeline.encodePrompts([("(red:1.5) fox", "")], clipSkip: 1, syntax: .plain).positive
        let encoder = try pipeline.textEncoder()
        let unweighted = try encoder([pipeline.tokenizer.tokenize("(red:1.5) fox")])
        assertClose(plain, unweighted, tolerance: 0, "plain syntax = unweighted ids of the literal text")
        let weighted = try pipeline.encodePrompts([("(red:1.5) fox", "")], clipSkip: 1).positive
        XCTAssertGreaterThan(compare(weighted, unweighted, tolerance: 0).maxAbs, 1e-3, "a1111 syntax weights the run")
    }
}
