import Foundation

/// A token matched as a whole before BPE (a `tokenizers` "added token"), such as `<|endoftext|>`.
public struct AddedToken: Sendable, Equatable {
    public var content: String
    public var id: Int
    /// `true`: matched in the normalised (NFC, lower-cased) text, so `<|ENDOFTEXT|>` matches too;
    /// `false`: matched in the raw prompt only.
    public var normalized: Bool

    public init(content: String, id: Int, normalized: Bool) {
        self.content = content
        self.id = id
        self.normalized = normalized
    }
}

/// CLIP byte-level BPE tokenizer, id for id equal to transformers 5's `CLIPTokenizer` (the tokenizer
/// diffusers' Stable Diffusion pipelines load).
///
/// transformers 5 has one `CLIPTokenizer`, backed by the `tokenizers` library; the former slow Python
/// tokenizer and its `ftfy` / BasicTokenizer clean-up are gone, so `ftfy` being installed or not changes
/// nothing. The pipeline reproduced here:
/// 1. added tokens (`<|startoftext|>`, `<|endoftext|>`, the pad token, ...) with `normalized == false`
///    are cut out of the raw prompt (leftmost, then longest match);
/// 2. each remaining span is normalised: NFC, then each scalar's full lower-case mapping; control
///    characters are kept (they become byte tokens), accents are kept;
/// 3. added tokens with `normalized == true` are cut out of the normalised text;
/// 4. CLIP's split regex `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
///    yields the pieces (whitespace dropped, each digit alone), see `characterClass(of:)`;
/// 5. each piece's UTF-8 bytes are BPE-encoded with the `</w>` end-of-word suffix.
///
/// Note: because the pad token is an added token, a tokenizer padding with `!` (Stable Diffusion 2.x)
/// turns every `!` in a prompt into id 0 instead of BPE-encoding it (`hello!!` -> `hello</w>`, 0, 0),
/// exactly as transformers 5 does.
public struct CLIPTokenizer: Sendable {
    /// CLIP's context length: 77 tokens, of which 75 carry the prompt.
    public static let contextLength = 77

    /// Id of `<|startoftext|>` (49406 in CLIP's vocabulary).
    public let startOfTextID: Int
    /// Id of `<|endoftext|>` (49407 in CLIP's vocabulary).
    public let endOfTextID: Int
    /// Id of the pad token: `<|endoftext|>` for SD 1.x, `!` (id 0) for SD 2.x.
    public let padID: Int
    /// Number of entries in the BPE vocabulary (49408 for CLIP).
    public let vocabularySize: Int
    /// Tokens cut out before BPE.
    public let addedTokens: [AddedToken]

    private let bpe: BytePairEncoder
    private let rawPatterns: [CLIPTextSplitter.Pattern]
    private let normalizedPatterns: [CLIPTextSplitter.Pattern]
    /// Id of `,</w>`, where A1111's chunking prefers to break.
    private let commaID: Int?

    /// Builds a tokenizer from a vocabulary (`vocab.json`) and merges in rank order (`merges.txt`).
    ///
    /// - Parameters:
    ///   - startOfText, endOfText, padding, unknown: contents of the bos, eos, pad and unk tokens.
    ///   - addedTokens: every token cut out before BPE. `nil`: the four special tokens above, matched in
    ///     the raw text (what transformers 5 builds when a folder names them as plain strings).
    ///   - source: names the files in error messages.
    /// - Throws: `AnySizeError` when a merge or a special token is not in the vocabulary.
    public init(vocabulary: [String: Int], merges: [(String, String)],
                startOfText: String = "<|startoftext|>", endOfText: String = "<|endoftext|>",
                padding: String = "<|endoftext|>", unknown: String = "<|endoftext|>",
                addedTokens: [AddedToken]? = nil, source: String = "CLIP vocabulary") throws {
        func id(of content: String, role: String) throws -> Int {
            if let token = addedTokens?.first(where: { $0.content == content }) { return token.id }
            if let id = vocabulary[content] { return id }
            throw AnySizeError(.corruptFile, "\(source): the \(role) token \"\(content)\" is not in the vocabulary; "
                               + "check special_tokens_map.json / tokenizer_config.json")
        }
        let bos = try id(of: startOfText, role: "start-of-text")
        let eos = try id(of: endOfText, role: "end-of-text")
        let pad = try id(of: padding, role: "pad")
        let unk = try id(of: unknown, role: "unknown")
        var added = addedTokens ?? []
        if addedTokens == nil {
            for (content, id) in [(startOfText, bos), (endOfText, eos), (unknown, unk), (padding, pad)]
            where !added.contains(where: { $0.content == content }) {
                added.append(AddedToken(content: content, id: id, normalized: false))
            }
        }
        self.bpe = try BytePairEncoder(vocabulary: vocabulary, merges: merges, unknownID: unk, source: source)
        self.startOfTextID = bos
        self.endOfTextID = eos
        self.padID = pad
        self.vocabularySize = vocabulary.count
        self.addedTokens = added
        let nonEmpty = added.filter { !$0.content.isEmpty }
        self.rawPatterns = nonEmpty.filter { !$0.normalized }
            .map { CLIPTextSplitter.Pattern(scalars: Array($0.content.unicodeScalars), id: $0.id) }
        self.normalizedPatterns = nonEmpty.filter { $0.normalized }
            .map { CLIPTextSplitter.Pattern(scalars: Array($0.content.unicodeScalars), id: $0.id) }
        self.commaID = vocabulary[",</w>"]
    }

    /// Token ids of `text` without start/end tokens, untruncated
    /// (transformers: `tokenizer(text, add_special_tokens=False).input_ids`).
    public func encode(_ text: String) -> [Int] {
        var ids = [Int]()
        var bytes = [UInt8]()
        forEachPart(of: text) { part in
            switch part {
            case .token(let id):
                ids.append(id)
            case .text(let piece):
                bytes.removeAll(keepingCapacity: true)
                for scalar in piece { UTF8.encode(scalar) { bytes.append($0) } }
                bpe.encode(word: bytes, into: &ids)
            }
        }
        return ids
    }

    /// The pieces BPE encodes (normalised, split) and the added tokens' contents, in order; for inspection.
    public func preTokenize(_ text: String) -> [String] {
        var pieces = [String]()
        forEachPart(of: text) { part in
            switch part {
            case .token(let id):
                pieces.append(addedTokens.first { $0.id == id }?.content ?? "")
            case .text(let piece):
                var view = String.UnicodeScalarView()
                view.append(contentsOf: piece)
                pieces.append(String(view))
            }
        }
        return pieces
    }

    private enum Part {
        case token(Int)
        case text(ArraySlice<Unicode.Scalar>)
    }

    private func forEachPart(of text: String, _ body: (Part) -> Void) {
        for raw in CLIPTextSplitter.split(Array(text.unicodeScalars), on: rawPatterns) {
            switch raw {
            case .token(let id):
                body(.token(id))
            case .text(let span):
                for normalized in CLIPTextSplitter.split(CLIPTextSplitter.normalize(span), on: normalizedPatterns) {
                    switch normalized {
                    case .token(let id):
                        body(.token(id))
                    case .text(let normalizedSpan):
                        CLIPTextSplitter.forEachPiece(of: normalizedSpan) { body(.text($0)) }
                    }
                }
            }
        }
    }

    /// One context window as diffusers builds it (`padding="max_length", truncation=True`):
    /// start token, the first `maxLength - 2` ids of `encode(prompt)`, end token, pad ids up to `maxLength`.
    public func tokenize(_ prompt: String, maxLength: Int = CLIPTokenizer.contextLength) -> [Int] {
        precondition(maxLength >= 2, "maxLength must leave room for the start and end tokens")
        let body = encode(prompt).prefix(maxLength - 2)
        return window(body, length: maxLength)
    }

    /// Context windows for a prompt of any length, by the AUTOMATIC1111 web UI rule, without its emphasis syntax:
    /// `weightedChunks` of the whole prompt as one run.
    public func chunkedWindows(_ prompt: String, minimumChunks: Int = 1, commaBacktrack: Int = 20) -> [[Int]] {
        weightedChunks([PromptRun(text: prompt, weight: 1)], minimumChunks: minimumChunks,
                       commaBacktrack: commaBacktrack).map(\.ids)
    }

    /// 77-id context windows and per-id weights for parsed prompt runs, by the AUTOMATIC1111 web UI rule
    /// (`modules/sd_hijack_clip.py`, `tokenize_line`; embeddings of textual inversion are not supported).
    ///
    /// Each run is encoded on its own and its ids are dealt into chunks of 75, each id carrying its run's weight.
    /// When a chunk is full and the next id is not a comma (`,</w>`), and the chunk's last comma is among its last
    /// `commaBacktrack` ids (A1111's default setting: 20), the ids after that comma move to the next chunk, so
    /// chunks tend to end at a comma; `commaBacktrack: 0` gives plain 75-id chunks. A `PromptRun.chunkBreak`
    /// closes the current chunk (even an empty one). Each chunk becomes a 77-id window: start token, the chunk,
    /// end token, pad ids (A1111 pads with end tokens, then for SD 2.x overwrites everything after the first end
    /// token with the pad id: the same thing), with weight 1 outside the chunk's own ids. An empty prompt gives
    /// one window; windows of the empty prompt are appended until there are `minimumChunks`, so a negative
    /// prompt can match a longer prompt's window count.
    public func weightedChunks(_ runs: [PromptRun], minimumChunks: Int = 1, commaBacktrack: Int = 20) -> [PromptChunk] {
        let chunkLength = Self.contextLength - 2
        var chunks = [PromptChunk]()
        var ids = [Int](), weights = [Float]()
        var lastComma = -1
        func close() {
            chunks.append(PromptChunk(ids: window(ids[...], length: Self.contextLength),
                                      weights: [1] + weights + Array(repeating: 1, count: Self.contextLength - 1 - weights.count)))
            ids = []
            weights = []
            lastComma = -1
        }
        for run in runs {
            if run.isChunkBreak {
                close()
                continue
            }
            let weight = Float(run.weight)
            for id in encode(run.text) {
                if id == commaID {
                    lastComma = ids.count
                } else if commaBacktrack > 0, ids.count == chunkLength, lastComma != -1,
                          ids.count - lastComma <= commaBacktrack {
                    let movedIDs = Array(ids[(lastComma + 1)...]), movedWeights = Array(weights[(lastComma + 1)...])
                    ids.removeSubrange((lastComma + 1)...)
                    weights.removeSubrange((lastComma + 1)...)
                    close()
                    ids = movedIDs
                    weights = movedWeights
                }
                if ids.count == chunkLength { close() }
                ids.append(id)
                weights.append(weight)
            }
        }
        if !ids.isEmpty || chunks.isEmpty { close() }
        while chunks.count < minimumChunks { close() }
        return chunks
    }

    private func window(_ body: ArraySlice<Int>, length: Int) -> [Int] {
        var ids = [startOfTextID]
        ids.reserveCapacity(length)
        ids.append(contentsOf: body)
        ids.append(endOfTextID)
        ids.append(contentsOf: repeatElement(padID, count: length - ids.count))
        return ids
    }
}

/// One 77-id context window and the emphasis weight of each id (1 for the start, end and pad ids).
public struct PromptChunk: Sendable, Equatable {
    public var ids: [Int]
    public var weights: [Float]

    /// Whether any id carries a weight other than 1.
    public var isWeighted: Bool { weights.contains { $0 != 1 } }
}
