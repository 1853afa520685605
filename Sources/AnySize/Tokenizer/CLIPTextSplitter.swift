import Foundation

/// The text side of the CLIP tokenizer, as the `tokenizers` pipeline that transformers 5 builds for
/// `CLIPTokenizer`: added tokens matched in the raw text, normaliser (NFC, `\s+` -> " ", lower-case),
/// added tokens matched in the normalised text, then the CLIP split regex followed by the byte-level
/// pre-tokeniser.
enum CLIPTextSplitter {
    /// A prompt cut at added tokens.
    enum Segment {
        case token(Int)
        case text([Unicode.Scalar])
    }

    struct Pattern {
        let scalars: [Unicode.Scalar]
        let id: Int
    }

    /// Cuts `text` at occurrences of `patterns`, leftmost first and, among those starting at the same place,
    /// longest first (the `tokenizers` Aho-Corasick `LeftmostLongest` match).
    static func split(_ text: [Unicode.Scalar], on patterns: [Pattern]) -> [Segment] {
        guard !patterns.isEmpty else { return text.isEmpty ? [] : [.text(text)] }
        var segments = [Segment]()
        var start = 0
        var i = 0
        while i < text.count {
            var best: Pattern?
            for pattern in patterns where pattern.scalars.count <= text.count - i {
                if pattern.scalars.count > (best?.scalars.count ?? 0),
                   text[i..<(i + pattern.scalars.count)].elementsEqual(pattern.scalars) {
                    best = pattern
                }
            }
            if let best {
                if start < i { segments.append(.text(Array(text[start..<i]))) }
                segments.append(.token(best.id))
                i += best.scalars.count
                start = i
            } else {
                i += 1
            }
        }
        if start < text.count { segments.append(.text(Array(text[start...]))) }
        return segments
    }

    /// NFC, then per-scalar full lower-case mapping (Rust `char::to_lowercase`, so no final-sigma rule).
    /// The normaliser's `\s+` -> " " step is left out: the split below drops every `\s` scalar anyway and
    /// no added token contains whitespace.
    static func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var result = [Unicode.Scalar]()
        result.reserveCapacity(text.count)
        if text.allSatisfy({ $0.isASCII }) {
            // ASCII is NFC already.
            for scalar in text {
                let isUpper = scalar.value >= 0x41 && scalar.value <= 0x5A
                result.append(isUpper ? Unicode.Scalar(UInt8(scalar.value + 0x20)) : scalar)
            }
            return result
        }
        var string = String.UnicodeScalarView()
        string.append(contentsOf: text)
        for scalar in String(string).precomposedStringWithCanonicalMapping.unicodeScalars {
            result.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
        }
        return result
    }

    /// Calls `body` with each piece BPE encodes, in order: the matches of CLIP's regex
    /// `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
    /// (unmatched scalars, i.e. whitespace, are dropped), each re-split by the byte-level pre-tokeniser's
    /// GPT-2 regex. That second split only changes the two special-token spellings, which become
    /// `<|`, the word, `|>` (they reach this point only when not extracted as added tokens).
    static func forEachPiece(of text: [Unicode.Scalar], _ body: (ArraySlice<Unicode.Scalar>) -> Void) {
        let n = text.count
        var i = 0
        while i < n {
            if text[i] == "<", let length = specialSpellingLength(text, at: i) {
                body(text[i..<(i + 2)])
                body(text[(i + 2)..<(i + length - 2)])
                body(text[(i + length - 2)..<(i + length)])
                i += length
                continue
            }
            if text[i] == "'", let length = contractionLength(text, at: i) {
                body(text[i..<(i + length)])
                i += length
                continue
            }
            let kind = CLIPTokenizer.characterClass(of: text[i])
            switch kind {
            case .whitespace:
                i += 1
            case .number:
                body(text[i..<(i + 1)])
                i += 1
            case .letter, .other:
                var end = i + 1
                while end < n, CLIPTokenizer.characterClass(of: text[end]) == kind { end += 1 }
                body(text[i..<end])
                i = end
            }
        }
    }

    private static let specialSpellings: [[Unicode.Scalar]] = [
        Array("<|startoftext|>".unicodeScalars), Array("<|endoftext|>".unicodeScalars),
    ]

    private static func specialSpellingLength(_ text: [Unicode.Scalar], at i: Int) -> Int? {
        for spelling in specialSpellings where spelling.count <= text.count - i {
            if text[i..<(i + spelling.count)].elementsEqual(spelling) { return spelling.count }
        }
        return nil
    }

    /// Length of `'s`, `'t`, `'re`, `'ve`, `'m`, `'ll` or `'d` at `i` (which holds an apostrophe).
    private static func contractionLength(_ text: [Unicode.Scalar], at i: Int) -> Int? {
        guard i + 1 < text.count else { return nil }
        switch text[i + 1] {
        case "s", "t", "m", "d":
            return 2
        case "r", "v", "l":
            guard i + 2 < text.count else { return nil }
            let pair = (text[i + 1], text[i + 2])
            return pair == ("r", "e") || pair == ("v", "e") || pair == ("l", "l") ? 3 : nil
        default:
            return nil
        }
    }
}

extension CLIPTokenizer {
    /// How CLIP's split regex sees a scalar.
    public enum CharacterClass: Sendable, Equatable {
        /// `\p{L}`: general categories Lu, Ll, Lt, Lm, Lo.
        case letter
        /// `\p{N}`: Nd, Nl, No.
        case number
        /// `\s`: the Unicode `White_Space` property (25 scalars; not U+001C...U+001F).
        case whitespace
        /// Everything else, unassigned scalars included.
        case other
    }

    /// The class `tokenizers`' regex engine (Oniguruma, Unicode 16.0 tables) gives `scalar`. Scalars first
    /// assigned after Unicode 16.0 count as unassigned (`other`), so results do not depend on the Swift
    /// runtime's newer tables.
    public static func characterClass(of scalar: Unicode.Scalar) -> CharacterClass {
        if scalar.isASCII { return asciiClasses[Int(scalar.value)] }
        let properties = scalar.properties
        if properties.isWhitespace { return .whitespace }
        guard let age = properties.age, age.major < 16 || (age.major == 16 && age.minor == 0) else { return .other }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return .other
        }
    }

    private static let asciiClasses: [CharacterClass] = (0..<128).map { value -> CharacterClass in
        switch value {
        case 0x09...0x0D, 0x20: return .whitespace
        case 0x30...0x39: return .number
        case 0x41...0x5A, 0x61...0x7A: return .letter
        default: return .other
        }
    }
}
