import AnySize
import Foundation
import XCTest

/// CLIPTokenizer against transformers 5.23 `CLIPTokenizer` ids written by tools/fixtures_tokenizer.py.
final class TokenizerTests: XCTestCase {
    private struct Entry {
        let text: String
        let ids: [Int]
        let ids2: [Int]
        let sd1: [Int]
        let sd2: [Int]
    }

    private func fixtureFolder() throws -> URL {
        let fixtures = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        return fixtures.appendingPathComponent("tokenizer")
    }

    private func corpus() throws -> [String: Any] {
        let data = try Data(contentsOf: fixtureFolder().appendingPathComponent("corpus.json"))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    private func entries() throws -> [Entry] {
        let prompts = try XCTUnwrap(corpus()["prompts"] as? [[String: Any]])
        return try prompts.map { row in
            let ids = try XCTUnwrap(row["ids"] as? [Int])
            return Entry(text: try XCTUnwrap(row["text"] as? String), ids: ids, ids2: row["ids2"] as? [Int] ?? ids,
                         sd1: try XCTUnwrap(row["sd1"] as? [Int]), sd2: try XCTUnwrap(row["sd2"] as? [Int]))
        }
    }

    /// Reference input_ids are stored without the pad ids after the end token.
    private func padded(_ ids: [Int], pad: Int) -> [Int] {
        ids + Array(repeating: pad, count: 77 - ids.count)
    }

    /// Compares every prompt; returns the number of mismatching prompts, reporting the first few.
    private func mismatches(_ tokenizer: CLIPTokenizer, _ cases: [(text: String, ids: [Int], window: [Int])],
                            label: String) -> Int {
        var failed = 0
        for item in cases {
            let ids = tokenizer.encode(item.text)
            let window = tokenizer.tokenize(item.text)
            if ids != item.ids || window != item.window {
                failed += 1
                if failed <= 5 {
                    print("\(label) mismatch for \(item.text.debugDescription):\n  ours \(ids)\n  ref  \(item.ids)\n"
                          + "  pieces \(tokenizer.preTokenize(item.text))")
                }
            }
        }
        print("\(label): \(failed) mismatches of \(cases.count) prompts")
        return failed
    }

    func testBundledSD1MatchesTransformers() throws {
        let start = Date()
        let tokenizer = try CLIPTokenizer.bundled()
        let loadSeconds = Date().timeIntervalSince(start)
        XCTAssertEqual(tokenizer.vocabularySize, 49408)
        XCTAssertEqual(tokenizer.startOfTextID, 49406)
        XCTAssertEqual(tokenizer.endOfTextID, 49407)
        XCTAssertEqual(tokenizer.padID, 49407)
        let cases = try entries()
        XCTAssertGreaterThanOrEqual(cases.count, 200)
        let encodeStart = Date()
        let failed = mismatches(tokenizer, cases.map { ($0.text, $0.ids, padded($0.sd1, pad: 49407)) }, label: "SD1")
        print(String(format: "bundled load %.3f s, corpus encode+tokenize %.3f s", loadSeconds,
                     Date().timeIntervalSince(encodeStart)))
        XCTAssertEqual(failed, 0)
    }

    func testBundledSD2MatchesTransformers() throws {
        let tokenizer = try CLIPTokenizer.bundled(padWithEndOfText: false)
        XCTAssertEqual(tokenizer.padID, 0)
        XCTAssertEqual(tokenizer.endOfTextID, 49407)
        let cases = try entries()
        XCTAssertTrue(cases.contains { $0.ids2 != $0.ids }, "corpus should exercise '!' as SD2's pad token")
        let failed = mismatches(tokenizer, cases.map { ($0.text, $0.ids2, padded($0.sd2, pad: 0)) }, label: "SD2")
        XCTAssertEqual(failed, 0)
        XCTAssertEqual(tokenizer.encode("hello!!"), [3306, 0, 0])
    }

    func testTinyFoldersMatchTransformers() throws {
        let tiny = try XCTUnwrap(corpus()["tiny"] as? [String: [String: Any]])
        XCTAssertEqual(Set(tiny.keys), ["tiny", "tiny-sd2", "tiny-json", "tiny-json-legacy"])
        for (name, info) in tiny.sorted(by: { $0.key < $1.key }) {
            let folder = try fixtureFolder().appendingPathComponent(name)
            let pad = try XCTUnwrap(info["pad_id"] as? Int)
            let rows = try XCTUnwrap(info["prompts"] as? [[String: Any]])
            let cases = try rows.map { row in
                (text: try XCTUnwrap(row["text"] as? String), ids: try XCTUnwrap(row["ids"] as? [Int]),
                 window: padded(try XCTUnwrap(row["input_ids"] as? [Int]), pad: pad))
            }
            let tokenizer = try CLIPTokenizer(folder: folder)
            XCTAssertEqual(tokenizer.vocabularySize, 256 * 2 + 500 + 2, name)
            XCTAssertEqual(tokenizer.padID, pad, name)
            XCTAssertEqual(mismatches(tokenizer, cases, label: name), 0, name)
        }
        // The explicit readers agree with the folder reader.
        let base = try fixtureFolder()
        let files = try CLIPTokenizer(vocabJSON: base.appendingPathComponent("tiny/vocab.json"),
                                      merges: base.appendingPathComponent("tiny/merges.txt"),
                                      configFolder: base.appendingPathComponent("tiny"))
        let json = try CLIPTokenizer(tokenizerJSON: base.appendingPathComponent("tiny-json/tokenizer.json"))
        for text in ["a photo of a cat", "(masterpiece:1.2), [cat|dog] 😀 日本", "Ελληνικά"] {
            XCTAssertEqual(files.encode(text), json.encode(text), text)
        }
    }

    func testCharacterClassesMatchTokenizersRegexEngine() throws {
        let data = try Data(contentsOf: fixtureFolder().appendingPathComponent("classes.json"))
        let ranges = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: [[Int]]])
        var expected = [CLIPTokenizer.CharacterClass](repeating: .other, count: 0x110000)
        for (key, kind) in [("L", CLIPTokenizer.CharacterClass.letter), ("N", .number), ("S", .whitespace)] {
            for range in try XCTUnwrap(ranges[key]) { for value in range[0]...range[1] { expected[value] = kind } }
        }
        var failed = 0
        var examples = [String]()
        for value in 0..<0x110000 {
            guard let scalar = Unicode.Scalar(value) else { continue }
            if CLIPTokenizer.characterClass(of: scalar) != expected[value] {
                failed += 1
                if examples.count < 10 { examples.append(String(value, radix: 16)) }
            }
        }
        print("character classes: \(failed) mismatches of 1,112,064 scalars \(examples)")
        XCTAssertEqual(failed, 0)
    }

    func testTokenizeTruncatesAndPads() throws {
        let tokenizer = try CLIPTokenizer.bundled()
        XCTAssertEqual(tokenizer.tokenize("a photo of a cat"),
                       [49406, 320, 1125, 539, 320, 2368, 49407] + Array(repeating: 49407, count: 70))
        XCTAssertEqual(tokenizer.tokenize(""), [49406] + Array(repeating: 49407, count: 76))
        let long = String(repeating: "cat ", count: 100)
        let window = tokenizer.tokenize(long)
        XCTAssertEqual(window.count, 77)
        XCTAssertEqual(window[0], 49406)
        XCTAssertEqual(Array(window[1...75]), Array(repeating: 2368, count: 75))
        XCTAssertEqual(window[76], 49407)
        XCTAssertEqual(tokenizer.tokenize("a cat", maxLength: 4), [49406, 320, 2368, 49407])
    }

    func testChunkedWindows() throws {
        let tokenizer = try CLIPTokenizer.bundled()
        let bos = tokenizer.startOfTextID, eos = tokenizer.endOfTextID
        // ~200 tokens without commas: plain chunks of 75.
        let prompt = (0..<200).map { ["red", "blue", "green", "cat", "dog"][$0 % 5] }.joined(separator: " ")
        let ids = tokenizer.encode(prompt)
        XCTAssertEqual(ids.count, 200)
        let windows = tokenizer.chunkedWindows(prompt)
        XCTAssertEqual(windows.count, 3)
        for window in windows {
            XCTAssertEqual(window.count, 77)
            XCTAssertEqual(window.first, bos)
        }
        XCTAssertEqual(windows.flatMap { $0[1...75] }.prefix(200), ids[...])
        XCTAssertEqual(Array(windows[2][51...]), Array(repeating: eos, count: 26))
        // A negative prompt padded to the prompt's window count: empty-prompt windows.
        let negative = tokenizer.chunkedWindows("blurry", minimumChunks: windows.count)
        XCTAssertEqual(negative.count, 3)
        XCTAssertEqual(negative[0], tokenizer.tokenize("blurry"))
        XCTAssertEqual(negative[1], tokenizer.tokenize(""))
        XCTAssertEqual(negative[2], tokenizer.tokenize(""))
        XCTAssertEqual(tokenizer.chunkedWindows(""), [tokenizer.tokenize("")])
        XCTAssertEqual(tokenizer.chunkedWindows("a photo of a cat"), [tokenizer.tokenize("a photo of a cat")])
        // Exactly 75 tokens fit one window.
        XCTAssertEqual(tokenizer.chunkedWindows(String(repeating: "cat ", count: 75)).count, 1)
        XCTAssertEqual(tokenizer.chunkedWindows(String(repeating: "cat ", count: 76)).count, 2)

        // A1111 comma backtracking: 70 x "a", ",", 10 x "b": the first chunk ends at the comma.
        let comma = 267, a = 320, b = 321
        let commaPrompt = Array(repeating: "a", count: 70).joined(separator: " ") + ", "
            + Array(repeating: "b", count: 10).joined(separator: " ")
        XCTAssertEqual(tokenizer.encode(commaPrompt), Array(repeating: a, count: 70) + [comma] + Array(repeating: b, count: 10))
        let backtracked = tokenizer.chunkedWindows(commaPrompt)
        XCTAssertEqual(backtracked, [
            [bos] + Array(repeating: a, count: 70) + [comma, eos] + Array(repeating: eos, count: 4),
            [bos] + Array(repeating: b, count: 10) + [eos] + Array(repeating: eos, count: 65),
        ])
        let plain = tokenizer.chunkedWindows(commaPrompt, commaBacktrack: 0)
        XCTAssertEqual(plain, [
            [bos] + Array(repeating: a, count: 70) + [comma] + Array(repeating: b, count: 4) + [eos],
            [bos] + Array(repeating: b, count: 6) + [eos] + Array(repeating: eos, count: 69),
        ])
        // SD 2.x windows pad with "!" (id 0) after the end token.
        let sd2 = try CLIPTokenizer.bundled(padWithEndOfText: false)
        let sd2Windows = sd2.chunkedWindows(prompt, minimumChunks: 4)
        XCTAssertEqual(sd2Windows.count, 4)
        XCTAssertEqual(Array(sd2Windows[2][51...]), [eos] + Array(repeating: 0, count: 25))
        XCTAssertEqual(sd2Windows[3], [bos, eos] + Array(repeating: 0, count: 75))
    }

    private func assertError(_ kind: AnySizeError.Kind, mentioning needle: String, _ body: () throws -> Void,
                             file: StaticString = #filePath, line: UInt = #line) {
        do {
            try body()
            XCTFail("expected an error mentioning \(needle)", file: file, line: line)
        } catch let error as AnySizeError {
            XCTAssertEqual(error.kind, kind, error.message, file: file, line: line)
            XCTAssertTrue(error.message.contains(needle), error.message, file: file, line: line)
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
    }

    func testBadInputErrorsNameThePath() throws {
        let temp = FileManager.default.temporaryDirectory
            .appendingPathComponent("anysize-tokenizer-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: temp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: temp) }
        let tiny = try fixtureFolder().appendingPathComponent("tiny")

        // Missing folder: the vocab.json path is named.
        let missing = temp.appendingPathComponent("nowhere")
        assertError(.fileNotFound, mentioning: missing.appendingPathComponent("vocab.json").path) {
            _ = try CLIPTokenizer(folder: missing)
        }
        // vocab.json present, merges.txt missing.
        let noMerges = temp.appendingPathComponent("no-merges")
        try FileManager.default.createDirectory(at: noMerges, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: tiny.appendingPathComponent("vocab.json"),
                                         to: noMerges.appendingPathComponent("vocab.json"))
        assertError(.fileNotFound, mentioning: noMerges.appendingPathComponent("merges.txt").path) {
            _ = try CLIPTokenizer(folder: noMerges)
        }
        // A malformed merges line.
        try "#version: 0.2\ni n\nthree parts here\n".write(to: noMerges.appendingPathComponent("merges.txt"),
                                                           atomically: true, encoding: .utf8)
        assertError(.corruptFile, mentioning: "line 3") { _ = try CLIPTokenizer(folder: noMerges) }
        // A merge whose tokens are not in the vocabulary.
        try "#version: 0.2\nzz qq\n".write(to: noMerges.appendingPathComponent("merges.txt"),
                                           atomically: true, encoding: .utf8)
        assertError(.corruptFile, mentioning: "zz qq") { _ = try CLIPTokenizer(folder: noMerges) }
        // vocab.json that is not token -> id.
        let badVocab = temp.appendingPathComponent("bad-vocab.json")
        try "[1, 2, 3]".write(to: badVocab, atomically: true, encoding: .utf8)
        assertError(.corruptFile, mentioning: badVocab.path) {
            _ = try CLIPTokenizer(vocabJSON: badVocab, merges: tiny.appendingPathComponent("merges.txt"))
        }
        // tokenizer.json without a model.
        let badJSON = temp.appendingPathComponent("tokenizer.json")
        try "{\"version\": \"1.0\"}".write(to: badJSON, atomically: true, encoding: .utf8)
        assertError(.corruptFile, mentioning: badJSON.path) { _ = try CLIPTokenizer(tokenizerJSON: badJSON) }
        // A pad token that is not in the vocabulary.
        let badPad = temp.appendingPathComponent("bad-pad")
        try FileManager.default.createDirectory(at: badPad, withIntermediateDirectories: true)
        for name in ["vocab.json", "merges.txt"] {
            try FileManager.default.copyItem(at: tiny.appendingPathComponent(name), to: badPad.appendingPathComponent(name))
        }
        try "{\"pad_token\": \"<pad>\"}".write(to: badPad.appendingPathComponent("special_tokens_map.json"),
                                             atomically: true, encoding: .utf8)
        assertError(.corruptFile, mentioning: "<pad>") { _ = try CLIPTokenizer(folder: badPad) }
    }
}
