import Foundation

/// GPT-2 / CLIP `bytes_to_unicode`: every byte gets a printable character so that BPE tokens are text.
/// Printable Latin-1 bytes (`!`...`~`, `¡`...`¬`, `®`...`ÿ`) stand for themselves; the other 68 bytes are
/// mapped, in increasing order, to U+0100, U+0101, ...
enum ByteLevelAlphabet {
    /// Bytes in the order CLIP lists them at the start of its vocabulary (ids 0...255).
    static let vocabularyOrder: [UInt8] = {
        var printable = Array(UInt8(ascii: "!")...UInt8(ascii: "~")) + Array(UInt8(0xA1)...UInt8(0xAC))
        printable += Array(UInt8(0xAE)...UInt8(0xFF))
        let others = (0...255).map(UInt8.init).filter { !printable.contains($0) }
        return printable + others
    }()

    /// `characters[b]` is the character standing for byte `b`.
    static let characters: [Character] = {
        var table = [Character](repeating: " ", count: 256)
        var next: UInt32 = 256
        for byte in 0...255 {
            let isPrintable = (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
            let value = isPrintable ? UInt32(byte) : next
            if !isPrintable { next += 1 }
            // Every value here is a valid scalar (< U+0200).
            table[byte] = Character(Unicode.Scalar(value) ?? " ")
        }
        return table
    }()
}

/// Byte-level BPE with CLIP's end-of-word suffix `</w>`, working on vocabulary ids.
///
/// A word (the UTF-8 bytes of one pre-tokenised piece) starts as one symbol per byte, the last one carrying
/// `</w>`; then, as in CLIP's `bpe()`, the adjacent pair with the lowest merge rank is merged everywhere
/// (left to right, non-overlapping) until no adjacent pair has a rank. For merge tables learned by BPE
/// (a merge's result only takes part in later merges) this equals the priority-queue order of the
/// `tokenizers` BPE model. Results are cached per word.
struct BytePairEncoder: @unchecked Sendable {
    private struct Merge {
        var rank: Int32
        var result: Int32
    }

    /// Vocabulary id of each byte's character, and of the character followed by `</w>`
    /// (`unknownID` where the vocabulary lacks it, as `tokenizers` does).
    private let byteSymbol: [Int32]
    private let finalByteSymbol: [Int32]
    /// (left id << 32 | right id) -> rank and merged id.
    private let merges: [UInt64: Merge]
    private let cache = WordCache()

    /// - Throws: `AnySizeError` when a merge names a token that is not in the vocabulary.
    init(vocabulary: [String: Int], merges pairs: [(String, String)], unknownID: Int, source: String) throws {
        var byteSymbol = [Int32](repeating: Int32(unknownID), count: 256)
        var finalByteSymbol = byteSymbol
        for byte in 0..<256 {
            let character = String(ByteLevelAlphabet.characters[byte])
            if let id = vocabulary[character] { byteSymbol[byte] = Int32(id) }
            if let id = vocabulary[character + "</w>"] { finalByteSymbol[byte] = Int32(id) }
        }
        var table = [UInt64: Merge](minimumCapacity: pairs.count)
        for (rank, pair) in pairs.enumerated() {
            guard let left = vocabulary[pair.0], let right = vocabulary[pair.1],
                  let result = vocabulary[pair.0 + pair.1] else {
                throw AnySizeError(.corruptFile, "\(source): merge \(rank + 1) \"\(pair.0) \(pair.1)\" uses a token "
                                   + "that is not in the vocabulary; use the vocabulary and merges saved together")
            }
            let key = UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))
            // A repeated pair takes its last rank, as in CLIP's `dict(zip(merges, ranks))` and `tokenizers`.
            table[key] = Merge(rank: Int32(rank), result: Int32(result))
        }
        self.byteSymbol = byteSymbol
        self.finalByteSymbol = finalByteSymbol
        self.merges = table
    }

    /// Appends the ids of one word (non-empty UTF-8 bytes of a pre-tokenised piece) to `ids`.
    func encode(word: [UInt8], into ids: inout [Int]) {
        precondition(!word.isEmpty, "BPE word must not be empty")
        if let cached = cache.lookup(word) {
            ids.append(contentsOf: cached.lazy.map { Int($0) })
            return
        }
        var symbols = word.dropLast().map { byteSymbol[Int($0)] }
        symbols.append(finalByteSymbol[Int(word[word.count - 1])])
        var merged = [Int32]()
        merged.reserveCapacity(symbols.count)
        while symbols.count > 1 {
            // The adjacent pair with the lowest rank.
            var best: (key: UInt64, merge: Merge)?
            for i in 0..<(symbols.count - 1) {
                let key = UInt64(UInt32(symbols[i])) << 32 | UInt64(UInt32(symbols[i + 1]))
                if let merge = merges[key], merge.rank < (best?.merge.rank ?? .max) { best = (key, merge) }
            }
            guard let (key, merge) = best else { break }
            // Merge every occurrence, left to right.
            merged.removeAll(keepingCapacity: true)
            var i = 0
            while i < symbols.count {
                if i + 1 < symbols.count,
                   UInt64(UInt32(symbols[i])) << 32 | UInt64(UInt32(symbols[i + 1])) == key {
                    merged.append(merge.result)
                    i += 2
                } else {
                    merged.append(symbols[i])
                    i += 1
                }
            }
            swap(&symbols, &merged)
        }
        cache.store(word, symbols)
        ids.append(contentsOf: symbols.lazy.map { Int($0) })
    }
}

/// Thread-safe word -> ids cache, keyed by exact bytes (Swift `String` equality would merge canonically
/// equivalent spellings that byte-level BPE keeps apart). Cleared when it reaches `capacity` words.
private final class WordCache: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [[UInt8]: [Int32]] = [:]
    private let capacity = 20_000

    func lookup(_ word: [UInt8]) -> [Int32]? {
        lock.lock()
        defer { lock.unlock() }
        return entries[word]
    }

    func store(_ word: [UInt8], _ ids: [Int32]) {
        lock.lock()
        defer { lock.unlock() }
        if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
        entries[word] = ids
    }
}
