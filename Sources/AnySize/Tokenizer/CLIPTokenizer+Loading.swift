import CZlib
import Foundation

extension CLIPTokenizer {
    /// Reads a diffusers `tokenizer/` folder: `tokenizer.json` if present (what transformers 5 saves),
    /// otherwise `vocab.json` + `merges.txt`; special tokens from `special_tokens_map.json` /
    /// `tokenizer_config.json` (see `init(vocabJSON:merges:configFolder:)`).
    /// - Throws: `AnySizeError` naming the missing or malformed file.
    public init(folder: URL) throws {
        switch try TokenizerFiles.discover(in: folder) {
        case .tokenizerJSON(let url): try self.init(tokenizerJSON: url, configFolder: folder)
        case .vocabAndMerges(let vocab, let merges): try self.init(vocabJSON: vocab, merges: merges, configFolder: folder)
        }
    }

    /// Reads `vocab.json` (token -> id) and `merges.txt` (one `left right` pair a line in rank order; lines
    /// starting with `#version` and empty lines skipped).
    ///
    /// Special tokens come from `configFolder`'s `special_tokens_map.json`, else its `tokenizer_config.json`,
    /// else the CLIP defaults (bos `<|startoftext|>`, eos / unk / pad `<|endoftext|>`). Whether each is
    /// matched before or after normalisation follows what transformers 5 makes of these files: entries of
    /// `added_tokens_decoder` keep their `normalized` flag; otherwise a token named anywhere as a plain
    /// string is matched in the raw text, and one named only as `{"content": ..., "normalized": ...}`
    /// objects takes the last object's flag (order bos, eos, unk, pad).
    public init(vocabJSON: URL, merges mergesURL: URL, configFolder: URL? = nil) throws {
        let vocabData = try Self.read(vocabJSON, what: "the tokenizer vocabulary (vocab.json)")
        let vocabulary: [String: Int]
        do {
            vocabulary = try JSONDecoder().decode([String: Int].self, from: vocabData)
        } catch {
            throw AnySizeError(.corruptFile, "\(vocabJSON.path) is not a JSON object of token -> id (\(error)); "
                               + "use the vocab.json of a diffusers tokenizer folder")
        }
        let mergesData = try Self.read(mergesURL, what: "the BPE merges (merges.txt)")
        let merges = try Self.parseMergesText(mergesData, source: mergesURL.path)
        let specials = try SpecialTokenSettings(folder: configFolder, explicit: [])
        try self.init(vocabulary: vocabulary, merges: merges, specials: specials, source: vocabJSON.path)
    }

    /// Reads an HF `tokenizer.json` (a BPE model: `model.vocab`, `model.merges` as `"a b"` strings or
    /// `["a", "b"]` pairs, `added_tokens`). Its normaliser and pre-tokeniser sections are not read: the
    /// CLIP pipeline is fixed. Special tokens as in `init(vocabJSON:merges:configFolder:)`, with the
    /// `added_tokens` entries keeping their `normalized` flags.
    public init(tokenizerJSON: URL, configFolder: URL? = nil) throws {
        let data = try Self.read(tokenizerJSON, what: "the tokenizer (tokenizer.json)")
        let path = tokenizerJSON.path
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let model = root["model"] as? [String: Any] else {
            throw AnySizeError(.corruptFile, "\(path) is not a tokenizers JSON file (no \"model\" object); "
                               + "save the tokenizer again with transformers")
        }
        guard (model["type"] as? String ?? "BPE") == "BPE",
              (model["end_of_word_suffix"] as? String ?? "</w>") == "</w>" else {
            throw AnySizeError(.unsupportedFormat, "\(path): model is not a CLIP BPE tokenizer (type \(model["type"] ?? "?"), "
                               + "end_of_word_suffix \(model["end_of_word_suffix"] ?? "?")); Stable Diffusion 1.x/2.x use CLIP's")
        }
        guard let rawVocab = model["vocab"] as? [String: Any], let rawMerges = model["merges"] as? [Any] else {
            throw AnySizeError(.corruptFile, "\(path): model.vocab or model.merges is missing; save the tokenizer again")
        }
        var vocabulary = [String: Int](minimumCapacity: rawVocab.count)
        for (token, value) in rawVocab {
            guard let id = value as? Int else {
                throw AnySizeError(.corruptFile, "\(path): vocabulary entry \"\(token)\" has no integer id")
            }
            vocabulary[token] = id
        }
        var merges = [(String, String)]()
        merges.reserveCapacity(rawMerges.count)
        for (index, entry) in rawMerges.enumerated() {
            if let pair = entry as? [String], pair.count == 2 {
                merges.append((pair[0], pair[1]))
            } else if let line = entry as? String, let pair = Self.splitMerge(line) {
                merges.append(pair)
            } else {
                throw AnySizeError(.corruptFile, "\(path): merge \(index + 1) is neither \"a b\" nor [\"a\", \"b\"]")
            }
        }
        var explicit = [AddedToken]()
        for entry in root["added_tokens"] as? [[String: Any]] ?? [] {
            guard let content = entry["content"] as? String, let id = entry["id"] as? Int else {
                throw AnySizeError(.corruptFile, "\(path): an added_tokens entry lacks content or id")
            }
            explicit.append(AddedToken(content: content, id: id, normalized: entry["normalized"] as? Bool ?? false))
        }
        let specials = try SpecialTokenSettings(folder: configFolder, explicit: explicit)
        try self.init(vocabulary: vocabulary, merges: merges, specials: specials, source: path)
    }

    /// CLIP's own BPE table (OpenAI's `bpe_simple_vocab_16e6.txt.gz`, shipped in this package), for
    /// single-file checkpoints that carry no tokenizer. The vocabulary is built as CLIP / open_clip build
    /// it: the 256 byte characters, the same with `</w>`, the first 48,894 merges joined, `<|startoftext|>`,
    /// `<|endoftext|>` (49,408 entries), equal to openai/clip-vit-large-patch14's `vocab.json`.
    ///
    /// - Parameter padWithEndOfText: `true` pads with `<|endoftext|>` as the SD 1.x `tokenizer/` folder does;
    ///   `false` pads with `!` (id 0) as SD 2.x does. Special tokens are matched as transformers 5 matches
    ///   them with those folders' config files (runwayml SD 1.5: `<|startoftext|>` after normalisation,
    ///   `<|endoftext|>` raw; SD 2.1: both after normalisation, `!` raw).
    public static func bundled(padWithEndOfText: Bool = true) throws -> CLIPTokenizer {
        let (vocabulary, merges) = try bundledTable.get()
        let bos = "<|startoftext|>", eos = "<|endoftext|>", pad = padWithEndOfText ? eos : "!"
        var added = [AddedToken(content: bos, id: vocabulary.count - 2, normalized: true),
                     AddedToken(content: eos, id: vocabulary.count - 1, normalized: !padWithEndOfText)]
        if !padWithEndOfText { added.append(AddedToken(content: pad, id: vocabulary[pad] ?? 0, normalized: false)) }
        return try CLIPTokenizer(vocabulary: vocabulary, merges: merges, startOfText: bos, endOfText: eos,
                                 padding: pad, unknown: eos, addedTokens: added, source: "bundled CLIP BPE table")
    }

    /// Number of merges CLIP uses from its table (`49152 - 256 - 2`).
    private static let clipMergeCount = 48_894

    private static let bundledTable: Result<([String: Int], [(String, String)]), AnySizeError> = Result {
        let name = "bpe_simple_vocab_16e6.txt"
        guard let url = Bundle.module.url(forResource: name, withExtension: "gz", subdirectory: "Resources") else {
            throw AnySizeError(.fileNotFound, "the bundled \(name).gz is missing from AnySize's resources; "
                               + "reinstall AnySize or load the model's tokenizer/ folder")
        }
        let text = try gunzip(read(url, what: "the bundled CLIP BPE table"), source: url.path)
        // The first line is a header; merges follow, one a line.
        let lines = text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        guard lines.count > clipMergeCount else {
            throw AnySizeError(.corruptFile, "\(url.path) has \(lines.count) lines, fewer than CLIP's \(clipMergeCount) merges")
        }
        var merges = [(String, String)]()
        merges.reserveCapacity(clipMergeCount)
        for (index, line) in lines[1...clipMergeCount].enumerated() {
            guard let pair = splitMerge(String(decoding: line, as: UTF8.self)) else {
                throw AnySizeError(.corruptFile, "\(url.path): line \(index + 2) is not a merge \"a b\"")
            }
            merges.append(pair)
        }
        let characters = ByteLevelAlphabet.vocabularyOrder.map { String(ByteLevelAlphabet.characters[Int($0)]) }
        var tokens = characters + characters.map { $0 + "</w>" }
        tokens += merges.map { $0.0 + $0.1 }
        tokens += ["<|startoftext|>", "<|endoftext|>"]
        var vocabulary = [String: Int](minimumCapacity: tokens.count)
        for (id, token) in tokens.enumerated() { vocabulary[token] = id }
        return (vocabulary, merges)
    }.mapError { $0 as? AnySizeError ?? AnySizeError(.io, "bundled CLIP BPE table: \($0)") }

    private init(vocabulary: [String: Int], merges: [(String, String)], specials: SpecialTokenSettings,
                 source: String) throws {
        var added = specials.explicit
        for (content, normalized) in specials.named where !added.contains(where: { $0.content == content }) {
            guard let id = vocabulary[content] else {
                throw AnySizeError(.corruptFile, "\(source): the special token \"\(content)\" is not in the vocabulary; "
                                   + "check special_tokens_map.json / tokenizer_config.json")
            }
            added.append(AddedToken(content: content, id: id, normalized: normalized))
        }
        try self.init(vocabulary: vocabulary, merges: merges, startOfText: specials.bos, endOfText: specials.eos,
                      padding: specials.pad, unknown: specials.unk, addedTokens: added, source: source)
    }

    static func read(_ url: URL, what: String) throws -> Data {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw AnySizeError(.fileNotFound, "\(url.path) not found: \(what) is needed; point to a diffusers "
                               + "tokenizer/ folder (vocab.json + merges.txt, or tokenizer.json)")
        }
        do {
            return try Data(contentsOf: url)
        } catch {
            throw AnySizeError(.io, "cannot read \(url.path) (\(what)): \(error)")
        }
    }

    static func parseMergesText(_ data: Data, source: String) throws -> [(String, String)] {
        var merges = [(String, String)]()
        for (index, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            var text = String(decoding: line, as: UTF8.self)
            if text.hasSuffix("\r") { text.removeLast() }
            if text.isEmpty || text.hasPrefix("#version") { continue }
            guard let pair = splitMerge(text) else {
                throw AnySizeError(.corruptFile, "\(source): line \(index + 1) is not a merge \"left right\"; "
                                   + "use the merges.txt saved with the vocabulary")
            }
            merges.append(pair)
        }
        return merges
    }

    /// `"a b"` -> `("a", "b")`; nil unless exactly one space separates two non-empty tokens.
    static func splitMerge(_ line: String) -> (String, String)? {
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
        return (String(parts[0]), String(parts[1]))
    }

    /// Decompresses gzip (or zlib) data.
    static func gunzip(_ data: Data, source: String) throws -> Data {
        var stream = z_stream()
        // windowBits 15 + 32: accept gzip and zlib headers.
        guard anysize_inflateInit2(&stream, 15 + 32) == Z_OK else {
            throw AnySizeError(.io, "zlib could not start inflating \(source)")
        }
        defer { inflateEnd(&stream) }
        var output = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var status = Z_OK
        data.withUnsafeBytes { (input: UnsafeRawBufferPointer) in
            stream.next_in = UnsafeMutablePointer(mutating: input.bindMemory(to: Bytef.self).baseAddress)
            stream.avail_in = uInt(input.count)
            while status == Z_OK {
                buffer.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(out.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    if let base = out.baseAddress { output.append(base, count: out.count - Int(stream.avail_out)) }
                }
            }
        }
        guard status == Z_STREAM_END else {
            throw AnySizeError(.corruptFile, "\(source) is not valid gzip data (zlib status \(status)); reinstall the file")
        }
        return output
    }
}

/// The special tokens of a tokenizer folder, resolved as transformers 5 resolves them.
private struct SpecialTokenSettings {
    var bos = "<|startoftext|>", eos = "<|endoftext|>", unk = "<|endoftext|>", pad = "<|endoftext|>"
    /// Tokens listed with ids (tokenizer.json `added_tokens`, tokenizer_config.json `added_tokens_decoder`).
    var explicit: [AddedToken]
    /// The named tokens' contents and `normalized` flags, in bos, eos, unk, pad order, without repeats.
    var named: [(String, Bool)] = []

    init(folder: URL?, explicit: [AddedToken]) throws {
        self.explicit = explicit
        var map = [String: Any](), config = [String: Any]()
        if let folder {
            map = try Self.object(folder.appendingPathComponent("special_tokens_map.json"))
            config = try Self.object(folder.appendingPathComponent("tokenizer_config.json"))
        }
        if let decoder = config["added_tokens_decoder"] as? [String: Any] {
            for (key, value) in decoder.sorted(by: { (Int($0.key) ?? 0) < (Int($1.key) ?? 0) }) {
                guard let id = Int(key), let entry = value as? [String: Any], let content = entry["content"] as? String,
                      !self.explicit.contains(where: { $0.content == content }) else { continue }
                self.explicit.append(AddedToken(content: content, id: id, normalized: entry["normalized"] as? Bool ?? false))
            }
        }
        // Per content: nil once named as a plain string (raw match), else the last object's flag.
        var flags = [(content: String, flag: Bool?, isString: Bool)]()
        for role in ["bos_token", "eos_token", "unk_token", "pad_token"] {
            let value = map[role].flatMap { $0 is NSNull ? nil : $0 } ?? config[role].flatMap { $0 is NSNull ? nil : $0 }
            var content: String?
            var normalized: Bool?
            if let string = value as? String {
                content = string
            } else if let object = value as? [String: Any], let string = object["content"] as? String {
                content = string
                normalized = object["normalized"] as? Bool ?? false
            }
            guard let content else { continue }
            switch role {
            case "bos_token": bos = content
            case "eos_token": eos = content
            case "unk_token": unk = content
            default: pad = content
            }
            if let index = flags.firstIndex(where: { $0.content == content }) {
                if normalized == nil { flags[index].isString = true } else { flags[index].flag = normalized }
            } else {
                flags.append((content, normalized, normalized == nil))
            }
        }
        for content in [bos, eos, unk, pad] where !flags.contains(where: { $0.content == content }) {
            flags.append((content, nil, true))
        }
        named = flags.map { ($0.content, $0.isString ? false : ($0.flag ?? false)) }
    }

    private static func object(_ url: URL) throws -> [String: Any] {
        guard FileManager.default.fileExists(atPath: url.path) else { return [:] }
        let data = try CLIPTokenizer.read(url, what: "the tokenizer configuration")
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw AnySizeError(.corruptFile, "\(url.path) is not a JSON object; restore it from the model's tokenizer/ folder")
        }
        return object
    }
}
